"""``vmimage vhd resize``: grow with a GPT inside, shrink only over zeros, CHS like qemu-img.

Growing a disk is where the GPT goes wrong (rulings): its backup header stays in the middle
of the bigger disk, and firmware and ``sfdisk --verify`` complain. The oracle here is sfdisk
itself reading the resized disk, plus qemu-img reading the VHD.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from tests.vhd_util import (
    Extent,
    GiB,
    MiB,
    assert_sparse,
    file_state,
    make_sparse,
    qemu_compare,
    qemu_info,
    read_footer,
    run,
    vmimage,
    vmimage_ok,
)
from vmimage.disk import convert as conv
from vmimage.disk import vhd

SECTOR = 512
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def _gpt_disk(path: Path, size: int) -> tuple[Path, list[Extent]]:
    """A raw disk with a GPT written by sfdisk (first partition at LBA 2048, as Azure wants)
    and random data inside both partitions."""
    make_sparse(path, size, [])
    part1 = 64 * MiB if size >= GiB else 20 * MiB
    table = (f"label: gpt\nstart=2048, size={part1 // SECTOR}, type={LINUX}\n"
             f"start={2048 + part1 // SECTOR}, type={LINUX}\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True,
                   capture_output=True)
    extents = [Extent(MiB + 777, os.urandom(300_000)),
               Extent(MiB + part1 + 4096, os.urandom(200_000))]
    fd = os.open(path, os.O_WRONLY)
    try:
        for e in extents:
            os.pwrite(fd, e.data, e.offset)
    finally:
        os.close(fd)
    return path, extents


def _sfdisk_view(vhd_path: Path, size: int, work: Path) -> tuple[str, dict[str, object]]:
    """sfdisk's verdict and table on the disk inside a fixed VHD: a fixed VHD is the raw disk
    plus a footer, so a sparse copy cut to the virtual size is exactly what a VM sees."""
    disk = work / "view.raw"
    subprocess.run(["cp", "--sparse=always", str(vhd_path), str(disk)], check=True)
    os.truncate(disk, size)
    verify = run(["sfdisk", "--verify", str(disk)], check=False)
    table = json.loads(run(["sfdisk", "-J", str(disk)]).stdout)["partitiontable"]
    disk.unlink()
    return verify.stdout + verify.stderr, table


def _gpt_header(path: Path, lba: int) -> tuple[bytes, int, int, int, int]:
    """Signature, my LBA, alternate LBA, last usable LBA and entries LBA of a GPT header."""
    with open(path, "rb") as f:
        f.seek(lba * SECTOR)
        raw = f.read(SECTOR)
    sig, = struct.unpack_from("<8s", raw, 0)
    my_lba, alt_lba, _first, last_usable = struct.unpack_from("<QQQQ", raw, 24)
    entries_lba, = struct.unpack_from("<Q", raw, 72)
    return sig, my_lba, alt_lba, last_usable, entries_lba


@pytest.mark.parametrize(("old", "new"), [(64 * MiB, 128 * MiB), (30 * GiB, 40 * GiB)])
def test_grow_moves_gpt_backup_to_the_new_end(tmp_path: Path, old: int, new: int) -> None:
    """After growing, sfdisk finds no error, the backup header sits in the new last sector,
    the partitions and their data are untouched, and the old footer's place holds zeros."""
    raw, extents = _gpt_disk(tmp_path / "disk.raw", old)
    before_verdict, before = _sfdisk_view(raw, old, tmp_path)
    assert "No errors detected" in before_verdict
    img = tmp_path / "disk.vhd"
    vmimage_ok("vhd", "convert", raw, img)

    res = vmimage_ok("vhd", "resize", img, "--size", str(new))
    assert "grow" in res.stdout
    assert qemu_info(img, "vpc")["virtual-size"] == new
    assert img.stat().st_size == new + vhd.FOOTER_SIZE
    footer = read_footer(img)
    assert footer.problems() == []
    assert footer.current_size == new
    assert (footer.cylinders, footer.heads, footer.sectors_per_track) == vhd.chs_geometry(new)

    verdict, after = _sfdisk_view(img, new, tmp_path)
    assert "No errors detected" in verdict, verdict
    for complaint in ("not on the end", "mismatch", "error detected"):
        assert complaint not in verdict, verdict
    last = new // SECTOR - 1
    assert after["lastlba"] == last - 33  # 32 sectors of entries and the header behind them
    assert after["partitions"] == before["partitions"]
    assert after["id"] == before["id"]

    sig, my_lba, alt_lba, _, entries_lba = _gpt_header(img, last)
    assert (sig, my_lba, alt_lba, entries_lba) == (b"EFI PART", last, 1, last - 32)
    assert _gpt_header(img, 1)[2] == last  # the primary points at the new backup

    with open(img, "rb") as f:
        f.seek(old)
        assert f.read(vhd.FOOTER_SIZE) == bytes(vhd.FOOTER_SIZE)  # the old footer
        f.seek((old // SECTOR - 33) * SECTOR)
        assert f.read(33 * SECTOR) == bytes(33 * SECTOR)  # the old backup, gone
        for e in extents:
            f.seek(e.offset)
            assert f.read(len(e.data)) == e.data
    assert_sparse(img, sum(len(e.data) for e in extents), slack=512 * 1024)


def test_grow_without_gpt_keeps_data(tmp_path: Path) -> None:
    """A disk with no partition table grows as plain bytes: qemu-img finds it equal to the
    original raw image (the new space reads as zeros)."""
    raw = make_sparse(tmp_path / "d.raw", 64 * MiB,
                      [Extent(5000, os.urandom(70_000)), Extent(64 * MiB - 512, os.urandom(512))])
    img = tmp_path / "d.vhd"
    vmimage_ok("vhd", "convert", raw, img)
    vmimage_ok("vhd", "resize", img, "--size", "100MiB")
    assert qemu_info(img, "vpc")["virtual-size"] == 100 * MiB
    assert qemu_compare(raw, "raw", img, "vpc") == 0


def test_shrink_refused_when_the_tail_holds_data(tmp_path: Path) -> None:
    """Cutting off data is never silent: exit 2, one line, and the file is not touched."""
    img = Path(conv.create(tmp_path / "d.vhd", 128 * MiB).output)
    with open(img, "r+b") as f:
        f.seek(100 * MiB + 3)
        f.write(b"precious")
    before = file_state(img)
    res = vmimage("vhd", "resize", img, "--size", "64M")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert str(img) in res.stderr and "cannot shrink" in res.stderr
    assert file_state(img) == before


@pytest.mark.parametrize("written_zeros", [False, True])
def test_shrink_allowed_over_zeros(tmp_path: Path, written_zeros: bool) -> None:
    """A tail of zeros may go, whether it is a hole or zeros written out (allocated)."""
    raw = make_sparse(tmp_path / "d.raw", 128 * MiB, [Extent(MiB, os.urandom(100_000))])
    if written_zeros:
        with open(raw, "r+b") as f:
            f.seek(90 * MiB)
            f.write(bytes(4 * MiB))
    img = tmp_path / "d.vhd"
    vmimage_ok("vhd", "convert", raw, img)
    res = vmimage_ok("vhd", "resize", img, "--size", "64M")
    assert "shrink" in res.stdout
    assert qemu_info(img, "vpc")["virtual-size"] == 64 * MiB
    assert img.stat().st_size == 64 * MiB + vhd.FOOTER_SIZE
    assert read_footer(img).problems() == []
    assert qemu_compare(raw, "raw", img, "vpc") == 0  # the rest of raw is zeros


@pytest.mark.parametrize(("size", "problem"), [("100000000", "whole number of MiB"),
                                               ("10M", "smaller than"),
                                               ("100P", "larger than")])
def test_resize_refuses_bad_sizes(tmp_path: Path, size: str, problem: str) -> None:
    img = Path(conv.create(tmp_path / "d.vhd", 64 * MiB).output)
    before = file_state(img)
    res = vmimage("vhd", "resize", img, "--size", size)
    assert res.returncode == 2
    assert problem in res.stderr
    assert file_state(img) == before


def test_resize_refuses_a_dynamic_vhd(tmp_path: Path) -> None:
    img = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(img), "64M"])
    before = file_state(img)
    res = vmimage("vhd", "resize", img, "--size", "128M")
    assert res.returncode == 2
    assert "resize takes a fixed VHD" in res.stderr
    assert file_state(img) == before


# --- CHS geometry: the same as qemu-img's ---------------------------------------------------


@pytest.mark.parametrize("size", [20 * MiB, 64 * MiB, 100 * MiB + 3 * SECTOR, 127 * MiB,
                                  500 * MiB, 2 * GiB, 4 * GiB, 30 * GiB, 127 * GiB,
                                  128 * GiB, 200 * GiB])
def test_chs_geometry_matches_qemu(tmp_path: Path, size: int) -> None:
    """qemu-img without force_size rounds the size up to a CHS product and writes that
    geometry; for that size, our footer must carry the same cylinders, heads and sectors.
    Above 127.5 GiB both use the maximum 65535/16/255."""
    theirs = tmp_path / "q.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(theirs),
         str(size)])
    qemu = read_footer(theirs)
    assert qemu.checksum_ok
    ours = vhd.Footer.new(qemu.current_size)
    assert (ours.cylinders, ours.heads, ours.sectors_per_track) == (
        qemu.cylinders, qemu.heads, qemu.sectors_per_track)
    assert qemu.current_size >= size
    if qemu.current_size < vhd.MAX_CHS_SECTORS * SECTOR:
        assert qemu.chs_size == qemu.current_size


@pytest.mark.parametrize("size", ["64M", "1000M", "30G", "200G"])
def test_resized_footer_geometry_and_size_read_by_qemu(tmp_path: Path, size: str) -> None:
    """After a resize the geometry is recomputed and qemu-img still reads the exact size."""
    img = Path(conv.create(tmp_path / "d.vhd", 20 * MiB).output)
    vmimage_ok("vhd", "resize", img, "--size", size)
    footer = read_footer(img)
    assert footer.checksum_ok
    assert (footer.cylinders, footer.heads, footer.sectors_per_track) == vhd.chs_geometry(
        footer.current_size)
    assert qemu_info(img, "vpc")["virtual-size"] == footer.current_size
