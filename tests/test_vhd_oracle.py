"""qemu-img is the peer: it reads what we write, we read what it writes, and both agree on
every byte (``qemu-img compare``) and on the exact virtual size.

Why an oracle: our VHD reader and writer follow the spec, and a test that only round-trips
through our own code would agree with itself even if we misread the spec. qemu-img is an
independent implementation that Azure's own tooling interoperates with.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.vhd_util import (
    Extent,
    GiB,
    KiB,
    MiB,
    allocated,
    assert_sparse,
    data_bytes,
    inspect_json,
    make_sparse,
    qemu_compare,
    qemu_convert,
    qemu_info,
    read_footer,
    scattered,
    vmimage,
    vmimage_ok,
)
from vmimage.disk import vhd
from vmimage.disk.convert import round_up_mib
from vmimage.disk.inspect import open_disk
from vmimage.disk.sources import DynamicVhdSource
from vmimage.units import parse_size

#: Not a whole MiB (three sectors over), so every conversion must round up, never cut.
ODD_SIZE = 100 * MiB + 3 * 512

#: qemu output format, its ``-o`` options, the format qemu-img needs to read it back, and the
#: format ``vmimage vhd inspect`` must report.
QEMU_FORMATS = {
    "vhd-fixed-force-size": ("vpc", "subformat=fixed,force_size=on", "vpc", "vhd-fixed"),
    "vhd-fixed-chs": ("vpc", "subformat=fixed", "vpc", "vhd-fixed"),
    "vhd-dynamic": ("vpc", "subformat=dynamic", "vpc", "vhd-dynamic"),
    "vhd-dynamic-force-size": ("vpc", "subformat=dynamic,force_size=on", "vpc", "vhd-dynamic"),
    "qcow2": ("qcow2", None, "qcow2", "qcow2"),
    "vmdk": ("vmdk", None, "vmdk", "vmdk"),
    "vhdx": ("vhdx", None, "vhdx", "vhdx"),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Extent]]:
    """A 100 MiB + 3 sectors raw image with random data at scattered, unaligned offsets."""
    extents = scattered(ODD_SIZE, seed=7)
    return make_sparse(tmp_path_factory.mktemp("src") / "src.raw", ODD_SIZE, extents), extents


def _check_fixed_vhd(path: Path, size: int) -> None:
    """What every VHD we write must be: qemu-img reads the exact size; our footer is clean."""
    assert qemu_info(path, "vpc")["virtual-size"] == size
    assert path.stat().st_size == size + vhd.FOOTER_SIZE
    footer = read_footer(path)
    assert footer.problems() == []
    assert (footer.disk_type, footer.current_size, footer.original_size) == (
        vhd.DISK_FIXED, size, size)


# --- what we write, qemu-img reads --------------------------------------------------------


@pytest.mark.parametrize("size", ["20MiB", "64M", "300M", "30G", "127GiB"])
def test_create_is_read_by_qemu_at_exact_size(tmp_path: Path, size: str) -> None:
    """An empty data disk: qemu-img sees exactly the size asked for, all zeros, and the file
    occupies almost nothing (it is a hole plus a footer)."""
    out = tmp_path / "empty.vhd"
    vmimage_ok("vhd", "create", out, "--size", size)
    expected = parse_size(size)
    _check_fixed_vhd(out, expected)
    assert allocated(out) <= 8 * KiB
    zeros = make_sparse(tmp_path / "zeros.raw", expected, [])
    assert qemu_compare(zeros, "raw", out, "vpc") == 0


def test_convert_raw_rounds_up_and_compares_equal(
        tmp_path: Path, source: tuple[Path, list[Extent]]) -> None:
    """raw -> fixed VHD: the size rounds up to the next MiB, data and holes are preserved."""
    raw, extents = source
    info = inspect_json(raw)
    assert (info["format"], info["virtual_size"], info["file_size"]) == ("raw", ODD_SIZE,
                                                                          ODD_SIZE)
    assert info["allocated_bytes"] == allocated(raw)
    assert info["whole_mib"] is False and info["footer"] is None
    out = tmp_path / "out.vhd"
    res = vmimage_ok("vhd", "convert", raw, out)
    assert str(out) in res.stdout
    _check_fixed_vhd(out, round_up_mib(ODD_SIZE))
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))
    assert not out.with_name(out.name + ".partial").exists()


def test_convert_with_size_pads_with_zeros(tmp_path: Path,
                                           source: tuple[Path, list[Extent]]) -> None:
    """``--size`` larger than the disk: the extra space is zeros, and a hole."""
    raw, extents = source
    out = tmp_path / "out.vhd"
    vmimage_ok("vhd", "convert", raw, out, "--size", "1G")
    _check_fixed_vhd(out, GiB)
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))


@pytest.mark.parametrize("name", sorted(QEMU_FORMATS))
def test_convert_from_qemu_formats(tmp_path: Path, source: tuple[Path, list[Extent]],
                                   name: str) -> None:
    """qemu-img writes the format, we read it (format and size), convert it, and qemu-img
    finds our fixed VHD equal both to its own file and to the original raw image."""
    raw, extents = source
    out_fmt, options, read_fmt, our_name = QEMU_FORMATS[name]
    theirs = tmp_path / f"theirs.{name}"
    qemu_convert(raw, "raw", theirs, out_fmt, options)
    qemu_size = qemu_info(theirs, read_fmt)["virtual-size"]
    assert isinstance(qemu_size, int)

    info = inspect_json(theirs)
    assert info["format"] == our_name
    assert info["virtual_size"] == qemu_size
    assert info["file_size"] == theirs.stat().st_size

    out = tmp_path / "ours.vhd"
    vmimage_ok("vhd", "convert", theirs, out)
    _check_fixed_vhd(out, round_up_mib(qemu_size))
    assert qemu_compare(theirs, read_fmt, out, "vpc") == 0
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))


def test_qemu_fixed_vhd_footer_decoded(tmp_path: Path, source: tuple[Path, list[Extent]]) -> None:
    """Every footer field qemu-img writes is decoded, and its checksum is accepted."""
    raw, _ = source
    theirs = tmp_path / "theirs.vhd"
    qemu_convert(raw, "raw", theirs, "vpc", "subformat=fixed,force_size=on")
    info = inspect_json(theirs)
    footer = info["footer"]
    assert isinstance(footer, dict)
    assert footer["cookie"] == "conectix"
    assert footer["checksum_ok"] is True
    assert footer["disk_type"] == "fixed"
    assert footer["data_offset"] == "0xffffffffffffffff"
    assert footer["current_size"] == ODD_SIZE
    # force_size: qemu writes the maximum geometry so that readers take current_size.
    assert footer["geometry"] == {"cylinders": 65535, "heads": 16, "sectors_per_track": 255,
                                  "size": 65535 * 16 * 255 * 512}
    assert info["whole_mib"] is False
    problems = info["problems"]
    assert isinstance(problems, list)
    assert any("whole number of MiB" in p for p in problems)


def test_in_place_appends_only_a_footer(tmp_path: Path,
                                        source: tuple[Path, list[Extent]]) -> None:
    """``--in-place`` leaves the data where it is: the file grows by the MiB rounding (a hole)
    and the footer, and qemu-img reads the same bytes as the original raw image."""
    raw, extents = source
    work = tmp_path / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(raw), str(work)], check=True)
    inode = work.stat().st_ino
    vmimage_ok("vhd", "convert", "--in-place", work)
    _check_fixed_vhd(work, round_up_mib(ODD_SIZE))
    assert work.stat().st_ino == inode  # the same file, not a copy renamed over it
    assert qemu_compare(raw, "raw", work, "vpc") == 0
    assert_sparse(work, data_bytes(extents))


def test_in_place_refuses_a_vhd(tmp_path: Path) -> None:
    """A second ``--in-place`` must not stack a second footer on the first."""
    disk = make_sparse(tmp_path / "disk.img", 32 * MiB, [Extent(0, b"x" * 512)])
    vmimage_ok("vhd", "convert", "--in-place", disk)
    before = disk.read_bytes()
    res = vmimage("vhd", "convert", "--in-place", disk)
    assert res.returncode == 2
    assert "already a fixed VHD" in res.stderr
    assert disk.read_bytes() == before


def test_dynamic_vhd_sector_bitmap_is_honoured(tmp_path: Path,
                                               source: tuple[Path, list[Extent]]) -> None:
    """A sector whose bit is clear in its block's bitmap reads as zeros (the spec), even if the
    block holds bytes there. qemu-img ignores the bitmap, so the expectation is the raw data
    with those sectors zeroed, not qemu's reading. Both of our paths must agree: the converter
    (kernel copies of the present runs) and the reader the checks use (``read``)."""
    raw, _ = source
    dyn = tmp_path / "dyn.vhd"
    qemu_convert(raw, "raw", dyn, "vpc", "subformat=dynamic")
    _, reader = open_disk(dyn)
    try:
        assert isinstance(reader, DynamicVhdSource)
        bitmaps = {i: e * vhd.SECTOR for i, e in enumerate(reader.bat) if e != vhd.BAT_UNUSED}
        block_size, size = reader.header.block_size, reader.size
    finally:
        reader.close()
    last = max(bitmaps)
    sectors_in_last = -(-(size - last * block_size) // vhd.SECTOR)
    # One sector alone, a whole bitmap byte and a run across bytes, the first and last sectors
    # of a block, and the last sector of the disk.
    cleared = {0: [3, *range(8, 16), *range(20, 37), block_size // vhd.SECTOR - 1],
               last: [0, sectors_in_last - 1]}
    expected = bytearray(raw.read_bytes().ljust(size, b"\0"))
    with open(dyn, "r+b") as f:
        for block, sectors in cleared.items():
            f.seek(bitmaps[block])
            bitmap = bytearray(f.read(vhd.SECTOR))
            for sector in sectors:
                bitmap[sector // 8] &= ~(0x80 >> (sector % 8))
                at = block * block_size + sector * vhd.SECTOR
                expected[at:at + vhd.SECTOR] = bytes(vhd.SECTOR)
            f.seek(bitmaps[block])
            f.write(bitmap)
    out = tmp_path / "out.vhd"
    vmimage_ok("vhd", "convert", dyn, out)
    with open(out, "rb") as f:
        assert f.read(size) == bytes(expected)
    _, reader = open_disk(dyn)
    try:
        assert reader.read(0, size) == bytes(expected)
    finally:
        reader.close()


# --- a disk of real size: 30 GiB, never written whole --------------------------------------

BIG = 30 * GiB


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Extent]]:
    """30 GiB, 3 MiB of data: at the start, in the middle, and in the very last sector."""
    extents = [Extent(0, os.urandom(MiB)), Extent(15 * GiB + 12345, os.urandom(2 * MiB)),
               Extent(BIG - 512, os.urandom(512))]
    return make_sparse(tmp_path_factory.mktemp("big") / "big.raw", BIG, extents), extents


def test_30gib_convert_exact_size_and_sparse(tmp_path: Path,
                                             big_raw: tuple[Path, list[Extent]]) -> None:
    """Where CHS rounding would bite: a spec-geometry 30 GiB footer describes 30 GiB less
    480 KiB. qemu-img must read exactly 30 GiB from our file, and the last sector must survive."""
    raw, extents = big_raw
    out = tmp_path / "big.vhd"
    vmimage_ok("vhd", "convert", raw, out)
    _check_fixed_vhd(out, BIG)
    footer = read_footer(out)
    assert footer.chs_size < BIG  # the geometry alone would cut the disk
    assert footer.creator_application in vhd.QEMU_TRUSTED_CREATORS
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))
    with open(out, "rb") as f:
        f.seek(BIG - 512)
        assert f.read(512) == extents[-1].data


def test_30gib_in_place(tmp_path: Path, big_raw: tuple[Path, list[Extent]]) -> None:
    """In place on 30 GiB: same bytes, 512 more, nothing copied."""
    raw, extents = big_raw
    work = tmp_path / "big.raw"
    subprocess.run(["cp", "--sparse=always", str(raw), str(work)], check=True)
    vmimage_ok("vhd", "convert", "--in-place", work)
    _check_fixed_vhd(work, BIG)
    assert qemu_compare(raw, "raw", work, "vpc") == 0
    assert_sparse(work, data_bytes(extents))


@pytest.mark.parametrize("options", ["subformat=fixed,force_size=on", "subformat=fixed",
                                     "subformat=dynamic"])
def test_30gib_qemu_vhd_read_and_converted(tmp_path: Path, big_raw: tuple[Path, list[Extent]],
                                           options: str) -> None:
    """qemu-img's 30 GiB VHDs: we report its size (exact with force_size, CHS-rounded up
    without), and our conversion is whole MiB, equal, and sparse."""
    raw, extents = big_raw
    theirs = tmp_path / "theirs.vhd"
    qemu_convert(raw, "raw", theirs, "vpc", options)
    qemu_size = qemu_info(theirs, "vpc")["virtual-size"]
    assert isinstance(qemu_size, int)
    if "force_size" in options:
        assert qemu_size == BIG
    else:
        assert qemu_size > BIG and qemu_size % MiB  # CHS-rounded: not a whole MiB
    info = inspect_json(theirs)
    assert info["virtual_size"] == qemu_size
    assert info["format"] == ("vhd-dynamic" if "dynamic" in options else "vhd-fixed")
    out = tmp_path / "ours.vhd"
    vmimage_ok("vhd", "convert", theirs, out)
    _check_fixed_vhd(out, round_up_mib(qemu_size))
    assert qemu_compare(theirs, "vpc", out, "vpc") == 0
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))
