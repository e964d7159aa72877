"""LVM2 metadata read by :mod:`vmimage.targets.lvmmeta`, checked against lvm2 itself.

The slow tests build PVs with the real ``pvcreate``/``vgcreate``/``lvcreate`` on loop devices
over a sparse disk file and compare ``read_layout``/``linear_extent`` with what ``pvs`` and
``lvs --segments`` report. Bytes too: every extent of a PV's data area gets a marker naming
it, written where lvm2's report (not our reader) says the extent is; the bytes at
``linear_extent``'s offset must then hold the markers of the extents ``lvs`` lists for the LV,
in order, and pyvslvm (an independent LVM reader) must read the same bytes from the LV. The
kernel here has no device-mapper, so an LV cannot be activated and read with ``dd``; where it
has one, ``test_bytes_match_the_activated_lv`` does exactly that.

The fast tests build a PV byte by byte (label, PV header, metadata area, text; checksums
right), which one slow test shows lvm2 reads as we do, wrapped text included; then break it
in every way the reader checks, each in a child bounded in time and memory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import shutil
import string
import struct
import subprocess
import uuid as uuid_module
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import run_bounded
from vmimage.targets import lvmmeta
from vmimage.targets.base import UnreadableError
from vmimage.targets.lvmmeta import (
    LogicalVolume,
    PvLayout,
    Segment,
    linear_extent,
    lvm_crc,
    parse_config,
    read_layout,
)

KiB = 1024
MiB = 1024 * KiB
SECTOR = 512


def _lvm_missing() -> str | None:
    if not shutil.which("lvm"):
        return "lvm2 is not installed (apt-get install lvm2): no oracle for the LVM layout"
    if not shutil.which("losetup"):
        return "losetup is not installed"
    if os.geteuid() != 0:
        return "pvcreate on a loop device needs root"
    return None


LVM_MISSING = _lvm_missing()
real_lvm = pytest.mark.skipif(LVM_MISSING is not None, reason=LVM_MISSING or "")


def run(*cmd: str | os.PathLike[str], check: bool = True) -> str:
    """A tool's standard output; never reads standard input, fails with its error output."""
    done = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False,
                          env={**os.environ, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"})
    if check and done.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}: "
                             f"{done.stderr.strip()}")
    return done.stdout


def _dm_usable() -> bool:
    return bool(shutil.which("dmsetup")) and os.geteuid() == 0 and \
        subprocess.run(["dmsetup", "version"], capture_output=True, check=False).returncode == 0


class FileReader:
    """The disk file read the way vmimage reads a disk: bytes at an offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as fh:
            return os.pread(fh.fileno(), length, offset)


class BytesReader:
    def __init__(self, data: bytes | bytearray) -> None:
        self.data = bytes(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length] if offset >= 0 else b""


# ---- lvm2 on loop devices ---------------------------------------------------------------------

class Lvm:
    """lvm2 commands that see only this test's loop devices (a filter in ``--config``): a host
    volume group is never read or changed, and two tests running at once never meet."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk
        self.devices: dict[str, tuple[int, int]] = {}  # loop device: (offset, size) on the disk
        self.vgs: list[str] = []

    def attach(self, offset: int, size: int) -> str:
        device = run("losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size),
                     self.disk).strip()
        self.devices[device] = (offset, size)
        return device

    def config(self) -> str:
        accept = "".join(f'"a|^{re.escape(d)}$|", ' for d in self.devices)
        return (f'devices {{ use_devicesfile=0 filter=[ {accept}"r|.*|" ] }} '
                "backup { backup=0 archive=0 } activation { udev_sync=0 udev_rules=0 }")

    def __call__(self, tool: str, *args: str, check: bool = True) -> str:
        return run(tool, "--config", self.config(), *args, check=check)

    def vgcreate(self, *args: str) -> str:
        name = f"vmtest_lvmmeta_{uuid_module.uuid4().hex[:10]}"
        self.vgs.append(name)
        self("vgcreate", "-y", name, *args)
        return name

    def lvcreate(self, vg: str, name: str, extents: int, *extra: str) -> None:
        """No device-mapper here (rulings): create inactive, without zeroing or wiping."""
        self("lvcreate", "--driverloaded", "n", "-an", "-Zn", "-Wn", "-y", "-l", str(extents),
             "-n", name, vg, *extra)

    def close(self) -> None:
        for vg in self.vgs:
            self("vgchange", "-an", vg, check=False)
        for device in self.devices:
            run("losetup", "-d", device, check=False)


@pytest.fixture
def lvm(tmp_path: Path) -> Iterator[Lvm]:
    """A 160 MiB sparse disk and lvm2 limited to the loop devices made over it; on the way
    out every VG is deactivated, every loop device detached, and that is checked."""
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as fh:
        fh.truncate(160 * MiB)
    session = Lvm(disk)
    try:
        yield session
    finally:
        session.close()
    assert not run("losetup", "-j", disk).strip(), "a loop device is left over the disk"
    if _dm_usable():
        left = run("dmsetup", "ls")
        assert not any(vg.replace("-", "--") in left for vg in session.vgs), left


def read_pv(lvm: Lvm, device: str) -> PvLayout:
    offset, size = lvm.devices[device]
    return read_layout(FileReader(lvm.disk), offset, size, name=device)


def pv_report(lvm: Lvm, device: str) -> dict[str, str]:
    fields = "pv_uuid,pe_start,vg_extent_size,pv_pe_count,vg_name,vg_uuid,vg_seqno"
    row = lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|",
              "-o", fields, device).strip()
    return dict(zip(fields.split(","), (v.strip() for v in row.split("|")), strict=True))


SegmentRow = tuple[int, int, str, tuple[tuple[str, int, int], ...]]


def lvs_segments(lvm: Lvm, vg: str) -> dict[str, list[SegmentRow]]:
    """``lvs -a --segments``: per LV (hidden ones too) (start, extents, type, PE ranges);
    the ranges only for linear and striped segments, whose ranges name devices."""
    out = lvm("lvs", "-a", "--segments", "--noheadings", "--separator", "|", "--units", "b",
              "--nosuffix", "-o", "lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges,segtype", vg)
    found: dict[str, list[SegmentRow]] = {}
    for line in out.splitlines():
        name, start, count, ranges, segtype = (f.strip() for f in line.split("|"))
        spans: list[tuple[str, int, int]] = []
        if segtype in ("linear", "striped"):
            for spec in ranges.split():  # "/dev/loop3:0-9"
                where, span = spec.rsplit(":", 1)
                first, last = (int(x) for x in span.split("-"))
                spans.append((where, first, last))
        found.setdefault(name.strip("[]"), []).append((int(start), int(count), segtype,
                                                       tuple(spans)))
    return found


def our_segments(layout: PvLayout, device_of: dict[str, str]) -> dict[str, list[SegmentRow]]:
    """The layout in the shape of :func:`lvs_segments` (lvm2 calls one stripe ``linear``)."""
    found: dict[str, list[SegmentRow]] = {}
    for lv in layout.lvs:
        rows = found.setdefault(lv.name, [])
        for seg in lv.segments:
            if seg.type != "striped":
                rows.append((seg.start_extent, seg.extent_count, seg.type, ()))
                continue
            per = seg.extent_count // len(seg.stripes)
            rows.append((seg.start_extent, seg.extent_count,
                         "linear" if len(seg.stripes) == 1 else "striped",
                         tuple((device_of[pv], first, first + per - 1)
                               for pv, first in seg.stripes)))
    return found


def merged(rows: list[SegmentRow]) -> list[SegmentRow]:
    """Linear segments that follow each other in the LV and on the device joined into one,
    as lvm2 does when it loads metadata (so ``lvs`` never shows them apart)."""
    out: list[SegmentRow] = []
    for row in rows:
        if out and out[-1][2] == row[2] == "linear" and out[-1][0] + out[-1][1] == row[0] \
                and out[-1][3][0][0] == row[3][0][0] and out[-1][3][0][2] + 1 == row[3][0][1]:
            last = out.pop()
            row = (last[0], last[1] + row[1], "linear",
                   ((row[3][0][0], last[3][0][1], row[3][0][2]),))
        out.append(row)
    return out


def expected_extent(rows: list[SegmentRow], device: str, pe_start: int,
                    extent: int) -> tuple[int, int] | None:
    """What ``linear_extent`` must say, worked out from lvm2's report alone."""
    spans = [span for row in rows for span in row[3]]
    if not rows or any(row[2] != "linear" for row in rows) or \
            any(where != device for where, _, _ in spans):
        return None
    if any(a[2] + 1 != b[1] for a, b in itertools.pairwise(spans)):
        return None
    total = sum(last - first + 1 for _, first, last in spans)
    return pe_start + spans[0][1] * extent, total * extent


def snapshot_lvs(lvm: Lvm, vg: str) -> set[str]:
    """The LVs ``lvs`` marks as an old-style snapshot's origin (``o``) or store (``s``)."""
    rows = lvm("lvs", "-a", "--noheadings", "-o", "lv_name,lv_attr", vg).split("\n")
    return {name.strip("[]") for name, attr in (row.split() for row in rows if row.strip())
            if attr[0] in "oOsS"}


def check_against_lvm(lvm: Lvm, vg: str) -> dict[str, PvLayout]:
    """Read every PV of ``vg`` and compare with ``pvs`` and ``lvs``; the layouts by device.

    lvm2 hides the LV that holds an old-style snapshot's ``snapshot`` segment even from
    ``lvs -a``: it is left out of the comparison."""
    devices = [d for d in lvm.devices if pv_report(lvm, d)["vg_name"] == vg]
    layouts = {d: read_pv(lvm, d) for d in devices}
    device_of = {layout.pv_name: d for d, layout in layouts.items()}
    assert len(device_of) == len(devices)  # each PV found itself under its own name
    oracle = lvs_segments(lvm, vg)
    snapshots = snapshot_lvs(lvm, vg)
    for device, layout in layouts.items():
        report = pv_report(lvm, device)
        assert (layout.vg_name, layout.vg_uuid, layout.seqno) == (
            vg, report["vg_uuid"], int(report["vg_seqno"]))
        assert layout.pv_uuid == report["pv_uuid"]
        assert (layout.pe_start, layout.extent_size, layout.pe_count) == (
            int(report["pe_start"]), int(report["vg_extent_size"]), int(report["pv_pe_count"]))
        ours = {name: merged(rows) for name, rows in our_segments(layout, device_of).items()
                if any(row[2] != "snapshot" for row in rows)}
        assert ours == oracle
        assert {lv.name for lv in layout.lvs if lv.in_snapshot} == snapshots
        for name, rows in oracle.items():
            expected = None if name in snapshots else expected_extent(
                rows, device, layout.pe_start, layout.extent_size)
            assert linear_extent(layout, name) == expected, name
    return layouts


def marker(pv_offset: int, pe: int) -> bytes:
    return f"<PV at {pv_offset}: extent {pe:07d}>".encode()


def mark_extents(lvm: Lvm, device: str) -> None:
    """A marker at both ends of every extent, placed where ``pvs`` says extents are."""
    offset, _ = lvm.devices[device]
    report = pv_report(lvm, device)
    pe_start, extent = int(report["pe_start"]), int(report["vg_extent_size"])
    with open(lvm.disk, "r+b") as fh:
        for pe in range(int(report["pv_pe_count"])):
            at = offset + pe_start + pe * extent
            os.pwrite(fh.fileno(), marker(offset, pe), at)
            os.pwrite(fh.fileno(), marker(offset, pe), at + extent - len(marker(offset, pe)))


def check_bytes(lvm: Lvm, vg: str, layouts: dict[str, PvLayout]) -> int:
    """Each LV that ``linear_extent`` places: the disk at that offset holds the markers of the
    extents ``lvs`` lists, in order. Returns how many LVs were checked."""
    checked = 0
    with open(lvm.disk, "rb") as fh:
        for device, layout in layouts.items():
            pv_offset = lvm.devices[device][0]
            for name, rows in lvs_segments(lvm, vg).items():
                placed = linear_extent(layout, name)
                if placed is None:
                    continue
                pes = [pe for row in rows for _, a, b in row[3] for pe in range(a, b + 1)]
                start, size = placed
                assert size == len(pes) * layout.extent_size
                for index, pe in enumerate(pes):
                    mark = marker(pv_offset, pe)
                    at = pv_offset + start + index * layout.extent_size
                    assert os.pread(fh.fileno(), len(mark), at) == mark
                    end = at + layout.extent_size - len(mark)
                    assert os.pread(fh.fileno(), len(mark), end) == mark
                checked += 1
    return checked


def pyvslvm_contents(disk: Path, offset: int, size: int) -> dict[str, bytes]:
    """Each LV's bytes through pyvslvm, which maps extents on its own; LVs it cannot open
    (libvslvm 20260901 fails on an LV of several segments) are left out."""
    import pyvslvm

    from vmimage.disk.sources import FdReader, FileWindow

    fd = os.open(disk, os.O_RDONLY)
    try:
        windows = [FileWindow(FdReader(fd), offset, size) for _ in range(2)]
        handle = pyvslvm.handle()
        handle.open_file_object(windows[0])
        handle.get_volume_group()
        handle.open_physical_volume_files_as_file_objects([windows[1]])
        vg = handle.get_volume_group()
        found = {}
        for index in range(vg.get_number_of_logical_volumes()):
            try:
                lv = vg.get_logical_volume(index)
            except OSError:
                continue
            found[lv.get_name()] = bytes(lv.read_buffer_at_offset(lv.get_size(), 0))
        handle.close()
        return found
    finally:
        os.close(fd)


def check_pyvslvm(lvm: Lvm, device: str, layout: PvLayout) -> int:
    """The bytes at ``linear_extent``'s offset are the LV's bytes as pyvslvm reads them."""
    offset, size = lvm.devices[device]
    checked = 0
    with open(lvm.disk, "rb") as fh:
        for name, content in pyvslvm_contents(lvm.disk, offset, size).items():
            placed = linear_extent(layout, name)
            assert placed is not None, name  # libvslvm opened it: one segment, linear
            assert os.pread(fh.fileno(), placed[1], offset + placed[0]) == content, name
            checked += 1
    return checked


def tag(n: int) -> str:
    """A long LV tag: metadata text that grows fast, so the circular buffer wraps soon."""
    return f"t{n}_" + "x" * 1000


# ---- real lvm2 --------------------------------------------------------------------------------

@pytest.mark.slow
@real_lvm
def test_one_linear_lv(lvm: Lvm) -> None:
    device = lvm.attach(MiB, 64 * MiB)
    lvm("pvcreate", "-ff", "-y", device)
    vg = lvm.vgcreate("-s", "4m", device)
    lvm.lvcreate(vg, "root", 10)
    layout = check_against_lvm(lvm, vg)[device]
    assert (layout.pv_name, layout.pe_start, layout.extent_size) == ("pv0", MiB, 4 * MiB)
    assert linear_extent(layout, "root") == (MiB, 40 * MiB)
    assert layout.device_size == 64 * MiB
    mark_extents(lvm, device)
    assert check_bytes(lvm, vg, {device: layout}) == 1
    assert check_pyvslvm(lvm, device, layout) == 1
    with pytest.raises(KeyError):
        linear_extent(layout, "nosuch")


@pytest.mark.slow
@real_lvm
def test_two_lvs_and_lvs_extended_later(lvm: Lvm) -> None:
    """``a`` is extended after ``b`` took the extents after it: two segments apart on the PV.
    ``c`` is extended into the free extents right after it: lvm2 merges the two pieces into
    one segment (the two-segment contiguous case is made by hand below, and lvm2 reads it)."""
    device = lvm.attach(MiB, 64 * MiB)
    lvm("pvcreate", "-ff", "-y", device)
    vg = lvm.vgcreate("-s", "1m", device)
    lvm.lvcreate(vg, "a", 3)
    lvm.lvcreate(vg, "b", 4)
    check_against_lvm(lvm, vg)
    lvm("lvextend", "--driverloaded", "n", "-l", "+2", f"{vg}/a")
    lvm.lvcreate(vg, "c", 2)
    lvm("lvextend", "--driverloaded", "n", "-l", "+3", f"{vg}/c")
    layout = check_against_lvm(lvm, vg)[device]
    a, c = layout.lv("a"), layout.lv("c")
    assert [(s.start_extent, s.extent_count, s.stripes) for s in a.segments] == [
        (0, 3, (("pv0", 0),)), (3, 2, (("pv0", 7),))]
    assert linear_extent(layout, "a") is None
    assert linear_extent(layout, "b") == (layout.pe_start + 3 * MiB, 4 * MiB)
    assert [(s.start_extent, s.extent_count) for s in c.segments] == [(0, 5)]
    assert linear_extent(layout, "c") == (layout.pe_start + 9 * MiB, 5 * MiB)
    mark_extents(lvm, device)
    assert check_bytes(lvm, vg, {device: layout}) == 2
    assert check_pyvslvm(lvm, device, layout) == 2  # b and c; libvslvm cannot open a


def raw_locn(lvm: Lvm, device: str) -> tuple[int, int, int]:
    """(mda size, text offset, text size) of the first metadata area, read here with struct
    (lvm2 puts it at 4 KiB), to know whether the text wraps."""
    offset, _ = lvm.devices[device]
    with open(lvm.disk, "rb") as fh:
        header = os.pread(fh.fileno(), SECTOR, offset + 4096)
    assert header[4:20] == lvmmeta.MDA_MAGIC
    (size,) = struct.unpack_from("<Q", header, 32)
    text_offset, text_size = struct.unpack_from("<QQ", header, 40)
    return size, text_offset, text_size


@pytest.mark.slow
@real_lvm
def test_commits_move_the_text_round_the_circular_buffer(lvm: Lvm) -> None:
    """A 32 KiB metadata area (lvm2's least) and a KiB of tags per commit: each commit puts
    the text further into the buffer, one of them across its end."""
    device = lvm.attach(MiB, 32 * MiB)
    lvm("pvcreate", "-ff", "-y", "--metadatasize", "32k", "--dataalignment", "4k", device)
    vg = lvm.vgcreate("-s", "1m", device)
    positions, seqnos = [], []
    for n in range(1, 8):
        lvm.lvcreate(vg, f"lv{n}", 1, "--addtag", tag(n))
        layout = check_against_lvm(lvm, vg)[device]
        positions.append(raw_locn(lvm, device))
        seqnos.append(layout.seqno)
        assert len(layout.lvs) == n
    assert seqnos == sorted(set(seqnos))
    assert positions[1][1] > positions[0][1] > SECTOR  # further into the buffer
    wrapped = [n for n, (size, at, length) in enumerate(positions, 1) if at + length > size]
    assert wrapped, positions  # lvm2 2.03.16: the 6th commit wraps
    mark_extents(lvm, device)
    assert check_bytes(lvm, vg, {device: layout}) == 7


@pytest.mark.slow
@real_lvm
def test_two_pvs_striped_and_linear(lvm: Lvm) -> None:
    first = lvm.attach(MiB, 32 * MiB)
    second = lvm.attach(40 * MiB, 32 * MiB)
    lvm("pvcreate", "-ff", "-y", first, second)
    vg = lvm.vgcreate("-s", "1m", first, second)
    lvm.lvcreate(vg, "st", 4, "-i", "2")
    lvm.lvcreate(vg, "on2", 3, second)
    lvm.lvcreate(vg, "on1", 2, first)
    layouts = check_against_lvm(lvm, vg)
    one, two = layouts[first], layouts[second]
    assert {one.pv_name, two.pv_name} == {"pv0", "pv1"}
    assert one.lvs == two.lvs  # both PVs carry the whole VG's metadata
    assert linear_extent(one, "st") is linear_extent(two, "st") is None
    assert linear_extent(one, "on2") is None and linear_extent(two, "on2") is not None
    assert linear_extent(two, "on1") is None and linear_extent(one, "on1") is not None
    for device in (first, second):
        mark_extents(lvm, device)
    assert check_bytes(lvm, vg, layouts) == 2


def _lvm_id() -> str:
    chars = string.ascii_letters + string.digits
    raw = "".join(random.choice(chars) for _ in range(32))
    return lvmmeta._dashed(raw)


def _lv_text(name: str, segments: list[str], visible: bool = True) -> str:
    status = '"READ", "WRITE", "VISIBLE"' if visible else '"READ", "WRITE"'
    body = "".join(f"segment{i} {{\n{seg}}}\n" for i, seg in enumerate(segments, 1))
    return (f'{name} {{\nid = "{_lvm_id()}"\nstatus = [{status}]\nflags = []\n'
            f"segment_count = {len(segments)}\n{body}}}\n")


def _linear(first: int, count: int, start: int = 0, pv: str = "pv0") -> str:
    return (f'start_extent = {start}\nextent_count = {count}\ntype = "striped"\n'
            f'stripe_count = 1\nstripes = [\n"{pv}", {first}\n]\n')


def _restore(lvm: Lvm, vg: str, tmp: Path, lvs_text: str) -> None:
    """Add LVs to the VG's metadata text and have lvm2 write it (``vgcfgrestore``): how a
    thin pool or a raid1 LV gets on disk without device-mapper. lvm2 checks and rewrites the
    text, so what lands on the PV is lvm2's own."""
    backup = tmp / f"{vg}.vg"
    lvm("vgcfgbackup", "-f", str(backup), vg)
    text = backup.read_text()
    end = text.rindex("\n\t}\n")  # the end of logical_volumes
    backup.write_text(text[:end] + "\n" + lvs_text + text[end:])
    lvm("vgcfgrestore", "--force", "-f", str(backup), vg)


@pytest.mark.slow
@real_lvm
def test_thin_raid_and_snapshot_are_not_linear(lvm: Lvm, tmp_path: Path) -> None:
    device = lvm.attach(MiB, 64 * MiB)
    lvm("pvcreate", "-ff", "-y", device)
    vg = lvm.vgcreate("-s", "1m", device)
    lvm.lvcreate(vg, "root", 4)
    lvm.lvcreate(vg, "orig", 3)
    thin_pool = ('start_extent = 0\nextent_count = 4\ntype = "thin-pool"\n'
                 'metadata = "pool_tmeta"\npool = "pool_tdata"\ntransaction_id = 1\n'
                 'chunk_size = 128\ndiscards = "passdown"\nzero_new_blocks = 1\n')
    thin = ('start_extent = 0\nextent_count = 8\ntype = "thin"\nthin_pool = "pool"\n'
            "transaction_id = 0\ndevice_id = 1\n")
    raid1 = ('start_extent = 0\nextent_count = 2\ntype = "raid1"\ndevice_count = 2\n'
             'region_size = 1024\nraids = [\n"r1_rmeta_0", "r1_rimage_0",\n'
             '"r1_rmeta_1", "r1_rimage_1"\n]\n')
    snapshot = ('start_extent = 0\nextent_count = 3\ntype = "snapshot"\nchunk_size = 8\n'
                'origin = "orig"\ncow_store = "snap"\n')
    _restore(lvm, vg, tmp_path, "".join([
        _lv_text("pool", [thin_pool]), _lv_text("th", [thin]),
        _lv_text("lvol0_pmspare", [_linear(20, 1)], False),
        _lv_text("pool_tmeta", [_linear(21, 1)], False),
        _lv_text("pool_tdata", [_linear(22, 4)], False),
        _lv_text("r1", [raid1]), _lv_text("r1_rmeta_0", [_linear(30, 1)], False),
        _lv_text("r1_rimage_0", [_linear(31, 2)], False),
        _lv_text("r1_rmeta_1", [_linear(33, 1)], False),
        _lv_text("r1_rimage_1", [_linear(34, 2)], False),
        _lv_text("snap", [_linear(40, 2)]), _lv_text("snapshot0", [snapshot])]))
    layout = check_against_lvm(lvm, vg)[device]
    types = {lv.name: lv.segments[0].type for lv in layout.lvs}
    assert (types["pool"], types["th"], types["r1"]) == ("thin-pool", "thin", "raid1")
    assert {lv.name for lv in layout.lvs if lv.in_snapshot} == {"orig", "snap"}
    for name in ("pool", "th", "r1", "orig", "snap", "snapshot0"):
        assert linear_extent(layout, name) is None
    assert linear_extent(layout, "pool_tdata") == (layout.pe_start + 22 * MiB, 4 * MiB)
    mark_extents(lvm, device)
    assert check_bytes(lvm, vg, {device: layout}) == 8  # root and the seven hidden linear LVs


def _mda_locations(lvm: Lvm, device: str) -> list[tuple[int, int]]:
    """The PV header's metadata areas, parsed here with struct."""
    offset, _ = lvm.devices[device]
    with open(lvm.disk, "rb") as fh:
        sector = os.pread(fh.fileno(), SECTOR, offset + SECTOR)
    assert sector[:8] == b"LABELONE"
    at, lists = 32 + 32 + 8, []
    for _ in range(2):
        areas = []
        while True:
            area = struct.unpack_from("<QQ", sector, at)
            at += 16
            if not area[0]:
                break
            areas.append(area)
        lists.append(areas)
    return lists[1]


@pytest.mark.slow
@real_lvm
def test_the_second_metadata_copy_when_the_first_is_damaged(lvm: Lvm) -> None:
    device = lvm.attach(MiB, 64 * MiB)
    lvm("pvcreate", "-ff", "-y", "--pvmetadatacopies", "2", device)
    vg = lvm.vgcreate("-s", "4m", device)
    lvm.lvcreate(vg, "root", 5)
    whole = check_against_lvm(lvm, vg)[device]
    mdas = _mda_locations(lvm, device)
    assert len(mdas) == 2
    offset, _ = lvm.devices[device]
    with open(lvm.disk, "r+b") as fh:
        os.pwrite(fh.fileno(), b"X", offset + mdas[0][0] + 8)  # inside the magic
        assert read_pv(lvm, device) == whole
        os.pwrite(fh.fileno(), b"X", offset + mdas[1][0] + 8)
    with pytest.raises(UnreadableError, match=r"metadata area at byte 4096: no LVM2"):
        read_pv(lvm, device)


@pytest.mark.slow
@real_lvm
def test_lvm_reads_the_synthetic_pv_as_we_do(lvm: Lvm) -> None:
    """The PV built byte by byte below, its text wrapped round the end of the circular
    buffer, is one lvm2 reads; and it agrees with us on an LV of two segments that follow
    each other on the PV (lvm2 reports them as one range) and on one whose two segments are
    swapped on the PV."""
    vg = f"vmtest_lvmmeta_{uuid_module.uuid4().hex[:10]}"
    lvm.vgs.append(vg)
    text = vg_text({"joined": [_linear(1, 2), _linear(3, 2, start=2)],
                    "swapped": [_linear(6, 1), _linear(5, 1, start=1)]}, vg=vg)
    encoded = text.encode() + b"\0"
    at = MDA_SIZE - 1024
    assert at + len(encoded) > MDA_SIZE  # wraps
    data = build_pv(encoded, text_offset=at)
    with open(lvm.disk, "r+b") as fh:
        os.pwrite(fh.fileno(), data, MiB)
    device = lvm.attach(MiB, PV_SIZE)
    layout = check_against_lvm(lvm, vg)[device]
    assert [len(lv.segments) for lv in layout.lvs] == [2, 2]
    assert lvs_segments(lvm, vg)["joined"][0][3] == ((device, 1, 4),)  # merged by lvm2
    assert linear_extent(layout, "joined") == (MiB + MiB, 4 * MiB)
    assert linear_extent(layout, "swapped") is None
    mark_extents(lvm, device)
    assert check_bytes(lvm, vg, {device: layout}) == 1


@pytest.mark.slow
@real_lvm
@pytest.mark.skipif(not _dm_usable(), reason="the kernel has no device-mapper (dmsetup version "
                    "fails): an LV cannot be activated; the other tests check the bytes "
                    "through lvm2's extent report and pyvslvm instead")
def test_bytes_match_the_activated_lv(lvm: Lvm) -> None:  # pragma: no cover - no dm here
    device = lvm.attach(MiB, 64 * MiB)
    lvm("pvcreate", "-ff", "-y", device)
    vg = lvm.vgcreate("-s", "1m", device)
    lvm.lvcreate(vg, "a", 3)
    lvm.lvcreate(vg, "b", 4)
    lvm("lvextend", "--driverloaded", "n", "-l", "+2", f"{vg}/a")
    layout = check_against_lvm(lvm, vg)[device]
    mark_extents(lvm, device)
    placed = linear_extent(layout, "b")
    assert placed is not None
    try:
        lvm("lvchange", "-ay", f"{vg}/b")
        node = f"/dev/mapper/{vg.replace('-', '--')}-b"
        run("dmsetup", "mknodes", check=False)
        with open(node, "rb") as lv, open(lvm.disk, "rb") as disk:
            assert lv.read() == os.pread(disk.fileno(), placed[1], MiB + placed[0])
    finally:
        lvm("vgchange", "-an", vg, check=False)


# ---- a PV built byte by byte ------------------------------------------------------------------

PV_UUID = "Hgae22cx9tjxZ2u7e7UuULIl9H4P1fj9"
PV_SIZE = 8 * MiB
MDA_SIZE = MiB - 4096  # lvm2's default: from 4 KiB to pe_start
PE_COUNT = 7  # extents of 1 MiB from 1 MiB


def vg_text(lvs: dict[str, list[str]], *, vg: str = "synth", pv_uuid: str = PV_UUID,
            seqno: int = 3, pe_count: int = PE_COUNT) -> str:
    """Metadata text as lvm2 2.03 writes it, for LVs given as their segments' bodies."""
    lv_part = "".join(_lv_text(name, segs) for name, segs in lvs.items())
    return (f'{vg} {{\nid = "{_lvm_id()}"\nseqno = {seqno}\nformat = "lvm2"\n'
            'status = ["RESIZEABLE", "READ", "WRITE"]\nflags = []\nextent_size = 2048\n'
            "max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {\n\npv0 {\n"
            f'id = "{lvmmeta._dashed(pv_uuid)}"\ndevice = "/dev/loop9"\n\n'
            'status = ["ALLOCATABLE"]\nflags = []\n'
            f"dev_size = {PV_SIZE // SECTOR}\npe_start = 2048\npe_count = {pe_count}\n}}\n}}\n"
            + (f"\nlogical_volumes {{\n\n{lv_part}}}\n" if lvs else "")
            + '\n}\n# Generated by LVM2 version 2.03.16(2) (2022-05-18)\n\n'
            'contents = "Text Format Volume Group"\nversion = 1\n\n'
            'description = "quoted \\"words\\" and a \\\\ backslash"\n\n'
            'creation_host = "vm"\t# Linux vm\ncreation_time = 1796014746\t# 2026\n\n')


def mda_header(start: int, size: int, text: bytes, text_offset: int, *, flags: int = 0,
               version: int = 1, magic: bytes = lvmmeta.MDA_MAGIC) -> bytes:
    body = magic + struct.pack("<IQQ", version, start, size)
    body += struct.pack("<QQII", text_offset, len(text), lvm_crc(text), flags)
    body = body.ljust(SECTOR - 4, b"\0")
    return struct.pack("<I", lvm_crc(body)) + body


def label_sector(*, uuid: bytes = PV_UUID.encode(), size: int = PV_SIZE,
                 mdas: list[tuple[int, int]] | None = None, sector: int = 1,
                 label_type: bytes = b"LVM2 001", pvh_offset: int = 32) -> bytes:
    mdas = [(4096, MDA_SIZE)] if mdas is None else mdas
    pvh = uuid + struct.pack("<Q", size) + struct.pack("<QQ", MiB, 0) + bytes(16)
    pvh += b"".join(struct.pack("<QQ", *m) for m in mdas) + bytes(16)
    pvh += struct.pack("<II", 2, 1) + bytes(16)  # extension: version 2, "used", no boot areas
    tail = struct.pack("<I", pvh_offset) + label_type + bytes(pvh_offset - 32) + pvh
    tail = tail.ljust(SECTOR - 20, b"\0")[:SECTOR - 20]
    return b"LABELONE" + struct.pack("<QI", sector, lvm_crc(tail)) + tail


def build_pv(text: bytes, *, text_offset: int = SECTOR, mda_size: int = MDA_SIZE,
             label: bytes | None = None, header: bytes | None = None,
             size: int = PV_SIZE) -> bytearray:
    """A PV of ``size`` bytes: label in sector 1, one metadata area at 4 KiB holding
    ``text`` at ``text_offset`` (wrapped after the header when it runs past the end)."""
    data = bytearray(size)
    data[SECTOR:2 * SECTOR] = label if label is not None else label_sector()
    start = 4096
    data[start:start + SECTOR] = header if header is not None else \
        mda_header(start, mda_size, text, text_offset)
    first = min(len(text), mda_size - text_offset)
    data[start + text_offset:start + text_offset + first] = text[:first]
    rest = text[first:]
    data[start + SECTOR:start + SECTOR + len(rest)] = rest
    return data


BASE_LVS = {"root": [_linear(0, 4)], "swap": [_linear(4, 2)]}


def base_text(seqno: int = 3) -> str:
    return vg_text(BASE_LVS, seqno=seqno)


def test_lvm_crc_is_lvms_checksum() -> None:
    """lvm2's calc_crc, bit by bit: seeded, reflected 0xEDB88320, no final inversion."""
    def reference(data: bytes) -> int:
        crc = lvmmeta.INITIAL_CRC
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
        return crc
    for data in (b"", b"a", bytes(range(256)), os.urandom(1000)):
        assert lvm_crc(data) == reference(data)


def test_the_synthetic_pv() -> None:
    layout = read_layout(BytesReader(build_pv(base_text().encode() + b"\0")), 0, PV_SIZE)
    assert (layout.vg_name, layout.pv_name, layout.pv_uuid, layout.seqno) == (
        "synth", "pv0", lvmmeta._dashed(PV_UUID), 3)
    assert (layout.extent_size, layout.pe_start, layout.pe_count) == (MiB, MiB, PE_COUNT)
    assert layout.lvs == (
        LogicalVolume("root", (Segment(0, 4, "striped", (("pv0", 0),)),)),
        LogicalVolume("swap", (Segment(0, 2, "striped", (("pv0", 4),)),)))
    assert linear_extent(layout, "root") == (MiB, 4 * MiB)
    assert linear_extent(layout, "swap") == (5 * MiB, 2 * MiB)


def test_the_pv_at_an_offset_of_the_disk() -> None:
    disk = bytes(3 * MiB) + build_pv(base_text().encode()) + bytes(MiB)
    layout = read_layout(BytesReader(disk), 3 * MiB, PV_SIZE)
    assert linear_extent(layout, "root") == (MiB, 4 * MiB)


@pytest.mark.parametrize("at", [SECTOR, 4096, MDA_SIZE - 2000, MDA_SIZE - 1, MDA_SIZE - 700,
                                MDA_SIZE - SECTOR])
def test_text_wrapped_round_the_buffer_reads_the_same(at: int) -> None:
    text = base_text().encode() + b"\0"
    plain = read_layout(BytesReader(build_pv(text)), 0, PV_SIZE)
    assert read_layout(BytesReader(build_pv(text, text_offset=at)), 0, PV_SIZE) == plain


def test_the_newest_copy_wins_and_a_damaged_one_is_skipped() -> None:
    second = PV_SIZE - 64 * KiB
    mdas = [(4096, MDA_SIZE), (second, 64 * KiB)]
    old, new = base_text(seqno=3).encode(), base_text(seqno=4).encode()
    data = build_pv(old, label=label_sector(mdas=mdas))
    data[second:second + SECTOR] = mda_header(second, 64 * KiB, new, SECTOR)
    data[second + SECTOR:second + SECTOR + len(new)] = new
    assert read_layout(BytesReader(data), 0, PV_SIZE).seqno == 4
    data[second + 8] ^= 1
    assert read_layout(BytesReader(data), 0, PV_SIZE).seqno == 3


def test_a_vg_without_lvs() -> None:
    layout = read_layout(BytesReader(build_pv(vg_text({}).encode())), 0, PV_SIZE)
    assert layout.lvs == ()


def test_parse_config() -> None:
    doc = parse_config('# a comment\nvg {\n  a = 1  # trailing\n  b = -2\n  c = 1.5\n'
                       '  d = "x \\"y\\" \\\\ z # not a comment"\n  e = \'single\'\n'
                       '  f = []\n  g = [ "pv0", 0,\n "pv1", 12 ]\n  sub-1.x+ { }\n}\n')
    assert doc == {"vg": {"a": 1, "b": -2, "c": 1.5, "d": 'x "y" \\ z # not a comment',
                          "e": "single", "f": [], "g": ["pv0", 0, "pv1", 12],
                          "sub-1.x+": {}}}
    assert parse_config("") == {}
    nested = "".join(f"s{i} {{ " for i in range(lvmmeta.DEPTH_MAX)) + "}" * lvmmeta.DEPTH_MAX
    assert parse_config(nested)["s0"]


@pytest.mark.parametrize(("text", "problem"), [
    ("vg {\n a = 1\n", "line 3: unbalanced braces: a section is never closed"),
    ("vg { }\n}\n", "line 2: unbalanced braces: a '}' closes no section"),
    ("a = 1\na = 2\n", "line 2: 'a' appears twice"),
    ("a 1\n", "expected '=' or '{' after 'a'"),
    ("a =\n", "expected a value, found the end of the text"),
    ("a = ]", "expected a value, found ']'"),
    ('a = "never closed\n', "a string is never closed"),
    ("a = [1 2]", "expected ',' or ']' in a list"),
    ("a = [1, [2]]", "expected a value, found '['"),
    ("a = 99999999999999999999999", "does not fit in 64 bits"),
    ("a = " + "9" * 5000, "a number of 5000 characters"),
    ("= 1", "expected a name, found '='"),
    ("s { " * 33 + "}" * 33, "sections nested deeper than 32"),
])
def test_config_errors(text: str, problem: str) -> None:
    with pytest.raises(UnreadableError, match=re.escape(problem)):
        parse_config(text)


def _set(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _text_case(change: Callable[[str], str]) -> bytes:
    return bytes(build_pv(change(base_text()).encode() + b"\0"))


def _label_case(**kwargs: object) -> bytes:
    return bytes(build_pv(base_text().encode(), label=label_sector(**kwargs)))


def _header_case(**kwargs: object) -> bytes:
    text = base_text().encode()
    fields: dict[str, object] = {"start": 4096, "size": MDA_SIZE, "text": text,
                                 "text_offset": SECTOR, **kwargs}
    return bytes(build_pv(text, header=mda_header(**fields)))


def _flip(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x20
    return bytes(changed)


def _no_list_end() -> bytes:
    sector = bytearray(label_sector())
    sector[32 + 40:] = b"\x01" * (SECTOR - 72)
    tail = bytes(sector[20:])
    sector[16:20] = struct.pack("<I", lvm_crc(tail))
    return bytes(build_pv(base_text().encode(), label=bytes(sector)))


def _raw_locn(offset: int, size: int) -> bytes:
    """A header whose raw_locn says ``size`` bytes at ``offset``, checksum made right."""
    header = bytearray(mda_header(4096, MDA_SIZE, b"", SECTOR))
    header[40:56] = struct.pack("<QQ", offset, size)
    header[:4] = struct.pack("<I", lvm_crc(bytes(header[4:])))
    return bytes(build_pv(b"", header=bytes(header)))


GOOD = bytes(build_pv(base_text().encode() + b"\0"))
HOSTILE: dict[str, tuple[Callable[[], bytes], int, str]] = {
    # name: (the PV's bytes, the partition size, what the error says)
    "empty disk": (lambda: b"", PV_SIZE, "cut short"),
    "truncated label": (lambda: GOOD[:600], PV_SIZE, "the LVM label sectors: cut short, the "
                                                     "disk ends at byte 600"),
    "truncated text": (lambda: GOOD[:4096 + 700], PV_SIZE, "cut short"),
    "tiny partition": (lambda: GOOD, 100, "too small for an LVM label"),
    "no label": (lambda: bytes(PV_SIZE), PV_SIZE, "no LVM label (LABELONE)"),
    "label checksum": (lambda: _flip(GOOD, SECTOR + 40), PV_SIZE, "fails its checksum"),
    "label sector": (lambda: _label_case(sector=3), PV_SIZE, "says it is in sector 3"),
    "label type": (lambda: _label_case(label_type=b"LVM1 001"), PV_SIZE, "unknown type"),
    "pv header offset": (lambda: _label_case(pvh_offset=480), PV_SIZE,
                         "PV header at offset 480"),
    "pv uuid": (lambda: _label_case(uuid=b"\0" * 32), PV_SIZE, "UUID is not one LVM writes"),
    "area list end": (_no_list_end, PV_SIZE, "list of data areas has no end"),
    "no metadata area": (lambda: _label_case(mdas=[]), PV_SIZE, "holds no metadata area"),
    "mda far outside": (lambda: _label_case(mdas=[(2**63, 2**63)]), PV_SIZE,
                        "does not fit in the 8388608-byte partition"),
    "mda past the end": (lambda: _label_case(mdas=[(4096, PV_SIZE)]), PV_SIZE,
                         "does not fit"),
    "mda too small": (lambda: _label_case(mdas=[(4096, 100)]), PV_SIZE, "does not fit"),
    "mda magic": (lambda: _header_case(magic=b"\x20LVM2 x[5A%r0N*<"), PV_SIZE,
                  "no LVM2 metadata header"),
    "mda version": (lambda: _header_case(version=2), PV_SIZE, "no LVM2 metadata header"),
    "mda checksum": (lambda: _flip(GOOD, 4096 + 30), PV_SIZE, "the header fails its checksum"),
    "mda start": (lambda: _header_case(start=8192), PV_SIZE, "says it starts at 8192"),
    "mda size": (lambda: _header_case(size=2 * MiB), PV_SIZE, "holds 2097152 bytes"),
    "text outside the area": (lambda: _raw_locn(MDA_SIZE + SECTOR, 100), PV_SIZE,
                              "lies outside the area"),
    "text in the header": (lambda: _raw_locn(100, 100), PV_SIZE, "lies outside the area"),
    "text larger than the area": (lambda: _raw_locn(SECTOR, MDA_SIZE), PV_SIZE,
                                  "lies outside the area"),
    "text over 1 MiB": (lambda: _raw_locn(SECTOR, 2**63), PV_SIZE, "over the 1048576-byte"),
    "text checksum": (lambda: _flip(GOOD, 4096 + SECTOR + 10), PV_SIZE,
                      "metadata text fails its checksum"),
    "orphan pv": (lambda: _raw_locn(0, 0), PV_SIZE, "a PV in no volume group"),
    "ignored mda": (lambda: _header_case(flags=1), PV_SIZE, "marked ignored"),
    "unbalanced open": (lambda: _text_case(lambda t: _set(t, "flags = []", "flags { ")),
                        PV_SIZE, "a section is never closed"),
    "unbalanced close": (lambda: _text_case(lambda t: _set(t, "flags = []", "}")), PV_SIZE,
                         "a '}' closes no section"),
    "deep nesting": (lambda: _text_case(lambda t: "x { " * 10000 + t), PV_SIZE,
                     "nested deeper than 32"),
    "huge extent size": (lambda: _text_case(lambda t: _set(
        t, "extent_size = 2048", "extent_size = 99999999999999999999")), PV_SIZE,
        "does not fit in 64 bits"),
    "zero extent size": (lambda: _text_case(lambda t: _set(
        t, "extent_size = 2048", "extent_size = 0")), PV_SIZE, "extent_size is 0"),
    "extent size as a string": (lambda: _text_case(lambda t: _set(
        t, "extent_size = 2048", 'extent_size = "2048"')), PV_SIZE, "extent_size is '2048'"),
    "huge pe_count": (lambda: _text_case(lambda t: _set(
        t, f"pe_count = {PE_COUNT}", "pe_count = 18446744073709551615")), PV_SIZE,
        "run past the 8388608-byte partition"),
    "pe_start past the end": (lambda: _text_case(lambda t: _set(
        t, "pe_start = 2048", "pe_start = 99999999")), PV_SIZE, "pe_start is 99999999"),
    "huge segment_count": (lambda: _text_case(lambda t: t.replace(
        "segment_count = 1", "segment_count = 1000000000")), PV_SIZE,
        "segment_count is 1000000000, not an integer in 0..4096"),
    "missing segment": (lambda: _text_case(lambda t: _set(
        t, "segment_count = 1", "segment_count = 2")), PV_SIZE, "no section 'segment2'"),
    "stripes short": (lambda: _text_case(lambda t: _set(
        t, "stripe_count = 1", "stripe_count = 2")), PV_SIZE, "not a list of 2"),
    "stripe on no pv": (lambda: _text_case(lambda t: _set(t, '"pv0", 4', '"pv7", 4')),
                        PV_SIZE, "names no PV of the group"),
    "segment past pe_count": (lambda: _text_case(lambda t: _set(
        t, '"pv0", 4', '"pv0", 6')), PV_SIZE, "extents 6-7 of pv0, which has 7"),
    "pv not listed": (lambda: _text_case(lambda t: _set(t, lvmmeta._dashed(PV_UUID),
                                                        "aaaaaa-" * 6 + "aaaaaa")),
                      PV_SIZE, "does not list this PV"),
    "snapshot of nothing": (lambda: _text_case(lambda t: _set(t, "logical_volumes {", (
        'logical_volumes {\ns0 { segment_count = 1 segment1 { start_extent = 0 extent_count = 1'
        ' type = "snapshot" origin = "root" cow_store = "gone" } }\n'))), PV_SIZE,
        "a snapshot names LV 'gone', which is not there"),
    "two vgs": (lambda: _text_case(lambda t: t + "other { }\n"), PV_SIZE,
                "2 volume groups in the text"),
    "no vg": (lambda: bytes(build_pv(b"\0")), PV_SIZE, "0 volume groups"),
    "too many lvs": (lambda: _text_case(lambda t: _set(t, "logical_volumes {", "".join(
        ["logical_volumes {"] + [f" l{i} {{ segment_count = 0 }}"
                                 for i in range(lvmmeta.LV_MAX + 1)]))), PV_SIZE,
                     "4099 logical volumes (at most 4096)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pv(case: str) -> None:
    """Each damage ends in the typed one-line error naming it, in bounded time and memory."""
    make, size, problem = HOSTILE[case]
    data = make()
    ending = run_bounded(lambda: read_layout(BytesReader(data), 0, size, name="pv"),
                         seconds=10, memory=256 * MiB)
    assert ending.kind == "input-error", ending
    assert ending.detail.startswith("pv: ") and problem in ending.detail, ending.detail


@pytest.mark.parametrize("text", [
    "{" * MiB, '"' * MiB, "a = [" + "1, " * 300_000, "#" * MiB, "x" * MiB, "a = " + "9" * MiB,
    "a { " * 300_000, "[" * MiB, "a = 1\n" * 150_000,
])
def test_a_megabyte_of_hostile_text_is_cheap(text: str) -> None:
    """Each token costs one regular-expression match: linear in the text, which is at most a
    MiB (a second or so; the bound is loose for a loaded CI machine)."""
    text = text[:lvmmeta.TEXT_MAX]
    ending = run_bounded(lambda: parse_config(text), seconds=30, memory=256 * MiB)
    assert ending.ok, ending


def test_a_megabyte_of_lvs_is_read_in_bounded_time() -> None:
    lvs = {f"lv{i}": [_linear(i % PE_COUNT, 1)] for i in range(lvmmeta.LV_MAX)}
    text = vg_text(lvs).encode()
    assert 500 * KiB < len(text) <= lvmmeta.TEXT_MAX
    data = build_pv(text)
    ending = run_bounded(lambda: read_layout(BytesReader(data), 0, PV_SIZE),
                         seconds=30, memory=512 * MiB)
    assert ending.kind == "returned", ending
    with pytest.raises(UnreadableError, match="over the 1048576 limit"):
        parse_config(" " * (lvmmeta.TEXT_MAX + 1))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="locate no partition"):
        read_layout(BytesReader(GOOD), -1, PV_SIZE)
    with pytest.raises(ValueError, match="locate no partition"):
        read_layout(BytesReader(GOOD), 0, 0)


def _layout(*segments: tuple[int, int, str, tuple[tuple[str, int], ...]],
            size: int = PV_SIZE, in_snapshot: bool = False) -> PvLayout:
    return PvLayout("vg", "id", 1, MiB, "pv0", "uuid", MiB, PE_COUNT, size, size,
                    (LogicalVolume("lv", tuple(Segment(*s) for s in segments), in_snapshot),))


@pytest.mark.parametrize(("segments", "expected"), [
    ([(0, 2, "striped", (("pv0", 1),))], (2 * MiB, 2 * MiB)),
    ([(0, 2, "striped", (("pv0", 1),)), (2, 3, "striped", (("pv0", 3),))], (2 * MiB, 5 * MiB)),
    ([(2, 3, "striped", (("pv0", 3),)), (0, 2, "striped", (("pv0", 1),))], (2 * MiB, 5 * MiB)),
    ([(0, 2, "striped", (("pv0", 3),)), (2, 2, "striped", (("pv0", 1),))], None),  # swapped
    ([(0, 2, "striped", (("pv0", 1),)), (2, 2, "striped", (("pv0", 4),))], None),  # a gap
    ([(0, 2, "striped", (("pv0", 1),)), (3, 2, "striped", (("pv0", 3),))], None),  # LV hole
    ([(1, 2, "striped", (("pv0", 1),))], None),  # does not start at extent 0
    ([(0, 2, "striped", (("pv1", 1),))], None),  # another PV
    ([(0, 2, "striped", (("pv0", 1),)), (2, 1, "striped", (("pv1", 0),))], None),
    ([(0, 4, "striped", (("pv0", 0), ("pv0", 2)))], None),  # two stripes
    ([(0, 4, "thin", ())], None),
    ([(0, 4, "raid1", ())], None),
    ([], None),
    ([(0, 7, "striped", (("pv0", 1),))], None),  # past the end of a hand-made layout
])
def test_linear_extent(segments: list[tuple[int, int, str, tuple[tuple[str, int], ...]]],
                       expected: tuple[int, int] | None) -> None:
    assert linear_extent(_layout(*segments), "lv") == expected


FUZZ = settings(max_examples=int(os.environ.get("VMIMAGE_FUZZ_EXAMPLES", "60")),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('{}[]=,"\'#\\ \n\tab1-.+')), max_size=300))
def test_fuzz_config_text(text: str) -> None:
    try:
        parse_config(text)
    except UnreadableError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.data())
def test_fuzz_text_checksums_made_right(data: st.DataObject) -> None:
    """Mutated metadata text with its checksum made right, so the parser and the checks on
    what the text means are reached: a layout or the typed error, never anything else."""
    text = bytearray(base_text().encode())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(text) - 1))
        text[at] = data.draw(st.sampled_from(b'{}[]=,"#\\ 0123456789axp\n\0'))
    at = data.draw(st.sampled_from([SECTOR, MDA_SIZE - 300]))
    pv = build_pv(bytes(text), text_offset=at)
    with contextlib.suppress(UnreadableError):
        layout = read_layout(BytesReader(pv), 0, PV_SIZE)
        for lv in layout.lvs:
            placed = linear_extent(layout, lv.name)
            assert placed is None or placed[0] + placed[1] <= PV_SIZE


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 4096 + SECTOR + 200))
def test_fuzz_binary_structures(junk: bytes, at: int) -> None:
    pv = bytearray(GOOD[:2 * MiB])
    pv[at:at + len(junk)] = junk
    with contextlib.suppress(UnreadableError):
        read_layout(BytesReader(pv), 0, PV_SIZE)


def test_linear_extent_of_a_snapshot_origin() -> None:
    assert linear_extent(_layout((0, 2, "striped", (("pv0", 1),)), in_snapshot=True), "lv") is None
