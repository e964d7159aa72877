"""Blocks that a source stores but that hold only zeros become holes in vmimage's output, as
qemu-img makes them (rulings, "Image formats").

Why: Disk2VHD, and any tool that preallocates or zero-fills, writes every block of a disk, so a
dynamic VHD of a 30 GiB disk holding 2 GB of data is a 30 GiB file of mostly zeros. Copying the
stored blocks as they are made outputs as large as the virtual disk (257 MB for a 256 MiB disk
of zeros, where qemu-img makes 8 KiB), and an upload then sends every zero.

The sources are real: qemu-img creates each format and ``qemu-io`` writes zeros over the whole
disk (without detect-zeroes, so every block is allocated and holds zero bytes), then a few
patterns at unaligned offsets. qemu-img's own conversion of the same source is the yardstick.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vhd_util import (
    KiB,
    MiB,
    allocated,
    inspect_json,
    qemu_compare,
    qemu_convert,
    run,
    vmimage_ok,
)
from vmimage.disk.sparse import BLOCK, copy_nonzero

SIZE = 64 * MiB

#: name: (qemu-img create format, its -o options, the format qemu-img reads it as)
SOURCES = {
    "raw": ("raw", None, "raw"),
    "vhd-fixed": ("vpc", "subformat=fixed,force_size=on", "vpc"),
    "vhd-dynamic": ("vpc", "subformat=dynamic", "vpc"),
    "qcow2": ("qcow2", None, "qcow2"),
}

#: (offset, length, byte): a sector inside a block, a run across a 2 MiB VHD block boundary,
#: the last sector.
PATTERNS = [(5000 * KiB + 512, 3 * KiB, 0xAB), (2 * MiB - 1536, 5000, 0x5C),
            (SIZE - 512, 512, 0x77)]


def _zero_filled(tmp: Path, name: str) -> Path:
    fmt, options, read_fmt = SOURCES[name]
    path = tmp / f"zeros.{name}"
    cmd = ["qemu-img", "create", "-q", "-f", fmt]
    if options:
        cmd += ["-o", options]
    run([*cmd, str(path), str(SIZE)])
    writes = [f"write -P 0 0 {SIZE}"]
    writes += [f"write -P {byte} {offset} {length}" for offset, length, byte in PATTERNS]
    for command in writes:
        run(["qemu-io", "-f", read_fmt, "-c", command, str(path)])
    assert allocated(path) >= SIZE  # the zeros are stored, not holes
    return path


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_stored_zeros_become_holes(tmp_path: Path, name: str) -> None:
    source = _zero_filled(tmp_path, name)
    read_fmt = SOURCES[name][2]
    if name == "vhd-dynamic":
        info = inspect_json(source)
        assert info["allocated_blocks"] == SIZE // (2 * MiB)  # every block is in the BAT
    ours, theirs = tmp_path / "ours.vhd", tmp_path / "theirs.vhd"
    vmimage_ok("vhd", "convert", source, ours)
    qemu_convert(source, read_fmt, theirs, "vpc", "subformat=fixed,force_size=on")

    assert qemu_compare(source, read_fmt, ours, "vpc") == 0
    # qemu-img allocates the patterns' blocks and its footer; allow a few blocks of slack for
    # where the two tools cut runs differently, nothing near the 64 MiB of zeros.
    assert allocated(ours) <= allocated(theirs) + 64 * KiB, (allocated(ours), allocated(theirs))
    with open(ours, "rb") as f:
        for offset, length, byte in PATTERNS:
            f.seek(offset)
            assert f.read(length) == bytes([byte]) * length


# --- the copy itself, on any alignment -----------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(shift=st.integers(0, 64).map(lambda n: n * 512),
       writes=st.lists(st.tuples(st.integers(0, 3 * MiB), st.integers(1, 300 * KiB),
                                 st.sampled_from([0, 0, 1, 0xFF])), max_size=8))
def test_copy_nonzero_keeps_data_and_makes_holes(shift: int, writes: list[tuple[int, int, int]]
                                                 ) -> None:
    """Source ranges written with zeros or data, copied to an output offset ``shift`` bytes
    further (a dynamic VHD's data sits a sector bitmap past its block): the output holds the
    same bytes, and occupies no more than its non-zero 4 KiB blocks."""
    length = 3 * MiB + 300 * KiB
    expected = bytearray(shift + length)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.open(Path(tmp) / "src", os.O_RDWR | os.O_CREAT)
        dst = os.open(Path(tmp) / "dst", os.O_RDWR | os.O_CREAT)
        try:
            os.ftruncate(src, length)
            for offset, n, byte in writes:
                n = min(n, length - offset)
                os.pwrite(src, bytes([byte]) * n, offset)
                expected[shift + offset:shift + offset + n] = bytes([byte]) * n
            os.ftruncate(dst, shift + length)
            read, written = copy_nonzero(src, dst, 0, length, shift)
            assert os.pread(dst, shift + length, 0) == bytes(expected)
            nonzero_blocks = sum(1 for b in range(0, len(expected), BLOCK)
                                 if any(expected[b:b + BLOCK]))
            assert written <= nonzero_blocks * BLOCK
            assert os.fstat(dst).st_blocks * 512 <= nonzero_blocks * BLOCK
            assert read <= length
        finally:
            os.close(src)
            os.close(dst)
