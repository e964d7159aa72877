"""vmimage's own VHDX decoding (``vmimage.disk.vhdx``) against qemu-img's reading of the same
files: block size, virtual size, and where every stored block lives.

Why: vmimage refuses a VHDX when its BAT places a block past the end of the file, so a misread
BAT (the chunk ratio, the interleaved sector bitmap entries, the 1 MiB offset unit) would
refuse good files or pass cut ones. qemu-img wrote each file from a known raw disk, so the bytes
at every offset our BAT decoding gives must be that block of the raw disk. (``qemu-img map``
cannot say: its VHDX driver reports neither offsets nor holes.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.vhd_util import Extent, KiB, MiB, make_sparse, qemu_convert, qemu_info, scattered
from vmimage.disk import vhdx

SIZE = 520 * MiB


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extents = scattered(SIZE, seed=5, count=12, max_len=200 * KiB)
    extents.append(Extent(256 * MiB - 100, os.urandom(200)))  # across a 256 MiB block boundary
    return make_sparse(tmp_path_factory.mktemp("vhdx") / "src.raw", SIZE, extents)


def _decode(path: Path) -> tuple[vhdx.Layout, list[vhdx.StoredBlock]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        def read(offset: int, n: int) -> bytes:
            return os.pread(fd, n, offset)

        layout = vhdx.read_layout(read, os.fstat(fd).st_size)
        vhdx.check_length(read, layout, os.fstat(fd).st_size)
        return layout, list(vhdx.stored_blocks(read, layout))
    finally:
        os.close(fd)


def test_crc32c_check_value() -> None:
    """The Castagnoli CRC's published check value (RFC 3720, B.4)."""
    assert vhdx.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("options", ["block_size=1M", None, "block_size=32M", "block_size=256M",
                                     "subformat=fixed"])
def test_layout_matches_qemu(tmp_path: Path, raw: Path, options: str | None) -> None:
    path = tmp_path / "disk.vhdx"
    qemu_convert(raw, "raw", path, "vhdx", options)
    info = qemu_info(path, "vhdx")
    layout, stored = _decode(path)  # check_length passes: qemu-img's files are whole
    assert layout.block_size == info["cluster-size"]
    assert layout.virtual_size == info["virtual-size"]
    assert not layout.header.log_pending and not layout.has_parent
    # Where the BAT says each block is, the file holds that block of the raw disk qemu-img
    # converted; every block the BAT leaves out is zeros in the raw disk.
    placed = {b.payload: b.offset for b in stored if b.payload is not None}
    bs = layout.block_size
    with open(raw, "rb") as src, open(path, "rb") as image:
        for block in range(layout.data_blocks):
            src.seek(block * bs)
            expected = src.read(min(bs, SIZE - block * bs))
            if block in placed:
                image.seek(placed[block])
                assert image.read(len(expected)) == expected, f"block {block}"
            else:
                assert expected == bytes(len(expected)), f"block {block} holds data"
    assert placed  # the data is somewhere
