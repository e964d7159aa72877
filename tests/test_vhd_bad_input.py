"""The bad-input corpus: every broken file gets one clear line, exit code 2, and stays untouched.

Each case is built from real bytes: qemu-img's own VHDs, VHDXs and qcow2s, then cut or edited at
the byte level (a differencing disk cannot be made by qemu-img, so it is crafted from a dynamic
one by setting the disk type and fixing the checksum). Every applicable command runs through
the real CLI.

Some files can be described but not read truthfully (a differencing disk, a VHDX log never
replayed, a dynamic VHD whose two footers disagree): ``vhd inspect`` lists the problem and
exits 0, ``convert`` refuses, and ``--in-place``/``resize`` refuse them for their format.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.vhd_util import (
    VMIMAGE,
    Extent,
    MiB,
    file_state,
    inspect_json,
    make_sparse,
    qemu_compare,
    qemu_convert,
    read_footer,
    run,
    vmimage,
    vmimage_ok,
    write_at,
)
from vmimage.disk import convert as conv
from vmimage.disk import vhd, vhdx

ALL = ("inspect", "validate", "convert", "in-place", "resize")


def _command(name: str, path: Path, out: Path) -> list[str]:
    return {
        "inspect": ["vhd", "inspect", str(path)],
        "validate": ["vhd", "validate", str(path), "--role", "data"],
        "convert": ["vhd", "convert", str(path), str(out)],
        "in-place": ["vhd", "convert", "--in-place", str(path)],
        "resize": ["vhd", "resize", str(path), "--size", "128M"],
    }[name]


# --- building the corpus ------------------------------------------------------------------


def _fixed(tmp: Path) -> Path:
    raw = make_sparse(tmp / "src.raw", 64 * MiB, [Extent(4096, os.urandom(100_000))])
    out = tmp / "fixed.vhd"
    qemu_convert(raw, "raw", out, "vpc", "subformat=fixed,force_size=on")
    raw.unlink()
    return out


def _dynamic(tmp: Path) -> Path:
    raw = make_sparse(tmp / "src.raw", 64 * MiB,
                      [Extent(4096, os.urandom(100_000)), Extent(40 * MiB, os.urandom(5000))])
    out = tmp / "dynamic.vhd"
    qemu_convert(raw, "raw", out, "vpc", "subformat=dynamic")
    raw.unlink()
    return out


def _rewrite_footer(path: Path, **fields: object) -> None:
    """Change footer fields and give it a correct checksum again (every copy of it)."""
    footer = replace(read_footer(path), **fields).with_checksum()
    size = path.stat().st_size
    write_at(path, size - vhd.FOOTER_SIZE, footer.pack())
    with open(path, "rb") as f:
        if f.read(8) == vhd.COOKIE:  # a dynamic disk's copy at offset 0
            write_at(path, 0, footer.pack())


def _dynamic_layout(path: Path) -> tuple[int, vhd.DynamicHeader]:
    footer = read_footer(path)
    with open(path, "rb") as f:
        f.seek(footer.data_offset)
        return footer.data_offset, vhd.DynamicHeader.unpack(f.read(1024))


def empty(tmp: Path) -> Path:
    path = tmp / "empty.vhd"
    path.touch()
    return path


def directory(tmp: Path) -> Path:
    path = tmp / "dir.vhd"
    path.mkdir()
    (path / "inside").write_bytes(b"x")
    return path


def short_footer(tmp: Path) -> Path:
    """The first 300 bytes of a real footer."""
    path = tmp / "short.vhd"
    path.write_bytes(vhd.Footer.new(64 * MiB).pack()[:300])
    return path


def short_junk(tmp: Path) -> Path:
    """A .vhd of 100 random bytes: not even the start of a footer."""
    path = tmp / "junk.vhd"
    path.write_bytes(os.urandom(100))
    return path


def fixed_cut_in_footer(tmp: Path) -> Path:
    """A fixed VHD whose copy stopped 100 bytes before the end."""
    path = _fixed(tmp)
    os.truncate(path, path.stat().st_size - 100)
    return path


def fixed_cut_short(tmp: Path) -> Path:
    """A fixed VHD missing its last MiB: the footer is gone altogether."""
    path = _fixed(tmp)
    os.truncate(path, path.stat().st_size - MiB)
    return path


def dynamic_cut_short(tmp: Path) -> Path:
    """A dynamic VHD without its trailing footer (the copy at offset 0 survives)."""
    path = _dynamic(tmp)
    os.truncate(path, path.stat().st_size - vhd.FOOTER_SIZE)
    return path


def wrong_cookie(tmp: Path) -> Path:
    path = _fixed(tmp)
    _rewrite_footer(path, cookie=b"conectiz")
    return path


def wrong_checksum(tmp: Path) -> Path:
    path = _fixed(tmp)
    footer = read_footer(path)
    bad = replace(footer, checksum=footer.checksum ^ 0x10)
    write_at(path, path.stat().st_size - vhd.FOOTER_SIZE, bad.pack())
    return path


def bad_header_checksum(tmp: Path) -> Path:
    path = _dynamic(tmp)
    offset, header = _dynamic_layout(path)
    write_at(path, offset, replace(header, checksum=header.checksum ^ 1).pack())
    return path


def bat_past_end(tmp: Path) -> Path:
    """The first allocated block's BAT entry points 100 sectors beyond the end of the file."""
    path = _dynamic(tmp)
    _, header = _dynamic_layout(path)
    with open(path, "rb") as f:
        f.seek(header.table_offset)
        bat = vhd.unpack_bat(f.read(header.max_table_entries * 4), header.max_table_entries)
    first = next(i for i, e in enumerate(bat) if e != vhd.BAT_UNUSED)
    beyond = path.stat().st_size // vhd.SECTOR + 100
    write_at(path, header.table_offset + 4 * first, struct.pack(">I", beyond))
    return path


def bat_larger_than_file(tmp: Path) -> Path:
    """The header claims 2**28 BAT entries (1 GiB of table) in a file of a few MiB."""
    path = _dynamic(tmp)
    offset, header = _dynamic_layout(path)
    bigger = replace(header, max_table_entries=2**28, checksum=0)
    raw = bytearray(bigger.pack())
    struct.pack_into(">I", raw, 36, vhd.checksum(bytes(raw), 36))
    write_at(path, offset, bytes(raw))
    return path


def overflow_2_63(tmp: Path) -> Path:
    """current_size 2**63 with a correct checksum: a hostile or corrupt footer."""
    path = _fixed(tmp)
    _rewrite_footer(path, current_size=2**63, original_size=2**63)
    return path


def overflow_max(tmp: Path) -> Path:
    path = _dynamic(tmp)
    _rewrite_footer(path, current_size=2**64 - 512)
    return path


def differencing(tmp: Path) -> Path:
    path = _dynamic(tmp)
    _rewrite_footer(path, disk_type=vhd.DISK_DIFFERENCING)
    return path


def fixed_zero_size(tmp: Path) -> Path:
    """qemu-img's fixed VHD whose footer (checksum right) says the disk is 0 bytes."""
    path = _fixed(tmp)
    _rewrite_footer(path, current_size=0, original_size=0)
    return path


def footer_only_zero_size(tmp: Path) -> Path:
    """A 512-byte file that is nothing but a valid fixed-disk footer of size 0."""
    path = tmp / "zero.vhd"
    path.write_bytes(replace(vhd.Footer.new(MiB), current_size=0, original_size=0)
                     .with_checksum().pack())
    return path


def qcow2_zero_size(tmp: Path) -> Path:
    """``qemu-img create -f qcow2 X 0``: a valid header for an empty disk."""
    path = tmp / "zero.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "0"])
    return path


def footer_copies_disagree(tmp: Path) -> Path:
    """A dynamic VHD whose footer copy at offset 0 (valid, checksum right) says 32 MiB while
    the one at the end says 64 MiB: qemu-img reads the first, vmimage the second."""
    path = _dynamic(tmp)
    head = replace(read_footer(path), current_size=32 * MiB).with_checksum()
    write_at(path, 0, head.pack())
    return path


# --- VHDX: qemu-img's files, edited with the spec's layout ---------------------------------

#: What the crafted log entry writes: 4 KiB at the start of the first payload block.
LOG_PAYLOAD = b"replayed!" * 455 + b"+"
assert len(LOG_PAYLOAD) == 4096


def _vhdx(tmp: Path) -> Path:
    """qemu-img's 64 MiB VHDX (8 MiB blocks) with data in blocks 0, 2 and 7 (the last)."""
    raw = make_sparse(tmp / "src.raw", 64 * MiB,
                      [Extent(0, os.urandom(100_000)), Extent(20 * MiB, os.urandom(5000)),
                       Extent(64 * MiB - 4096, os.urandom(4096))])
    out = tmp / "disk.vhdx"
    qemu_convert(raw, "raw", out, "vhdx")
    raw.unlink()
    return out


def _vhdx_layout(path: Path) -> tuple[vhdx.Layout, list[vhdx.StoredBlock]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        def read(offset: int, n: int) -> bytes:
            return os.pread(fd, n, offset)

        layout = vhdx.read_layout(read, os.fstat(fd).st_size)
        return layout, list(vhdx.stored_blocks(read, layout))
    finally:
        os.close(fd)


def _set_log_guid(path: Path, guid: uuid.UUID) -> None:
    """Set LogGuid (bytes 48-63) in the active header and recompute its CRC-32C (bytes 4-7)."""
    offset = _vhdx_layout(path)[0].header.offset
    with open(path, "rb") as f:
        f.seek(offset)
        header = bytearray(f.read(vhdx.HEADER_SIZE))
    header[48:64] = guid.bytes_le
    struct.pack_into("<I", header, 4, vhdx.checksummed(bytes(header)))
    write_at(path, offset, bytes(header))


def vhdx_log_guid(tmp: Path) -> Path:
    """A log GUID in the active header and nothing in the log: what a host leaves when it
    dies with the disk open. qemu-img opens this one (it finds no entry to replay); the rulings
    refuse any log GUID, as vmimage cannot tell a stale disk from a clean one without a replay."""
    path = _vhdx(tmp)
    _set_log_guid(path, uuid.uuid4())
    return path


def vhdx_log_entry(tmp: Path) -> Path:
    """A real, valid log entry never replayed: it writes ``LOG_PAYLOAD`` over the first 4 KiB
    of payload block 0, which still holds the old data. qemu-img refuses to open it read-only.

    The entry follows MS-VHDX 2.3.1: a 4 KiB sector with the 64-byte entry header and one
    32-byte data descriptor (the payload's first 8 and last 4 bytes live in the descriptor),
    then a 4 KiB data sector; a CRC-32C over the whole entry.
    """
    path = _vhdx(tmp)
    layout, stored = _vhdx_layout(path)
    guid, seq, size = uuid.uuid4(), 1, path.stat().st_size
    target = next(b.offset for b in stored if b.payload == 0)
    descriptor = struct.pack("<4sIQQQ", b"desc", *struct.unpack("<I", LOG_PAYLOAD[-4:]),
                             *struct.unpack("<Q", LOG_PAYLOAD[:8]), target, seq)
    sector = struct.pack("<4sI", b"data", seq >> 32) + LOG_PAYLOAD[8:-4] + \
        struct.pack("<I", seq & 0xFFFFFFFF)
    header = struct.pack("<4sIIIQII16sQQ", b"loge", 0, 8192, 0, seq, 1, 0, guid.bytes_le,
                         size, size)
    entry = bytearray((header + descriptor).ljust(4096, b"\0") + sector)
    struct.pack_into("<I", entry, 4, vhdx.crc32c(bytes(entry)))
    write_at(path, layout.header.log_offset, bytes(entry))
    _set_log_guid(path, guid)
    return path


def _cut(path: Path, length: int) -> Path:
    os.truncate(path, length)
    return path


def vhdx_cut_in_block(tmp: Path) -> Path:
    """The last payload block is half there."""
    path = _vhdx(tmp)
    return _cut(path, path.stat().st_size - 4 * MiB)


def vhdx_cut_at_block(tmp: Path) -> Path:
    """The file ends exactly where the last payload block starts: every structure is whole,
    only the BAT says the file must be longer."""
    path = _vhdx(tmp)
    return _cut(path, max(block.offset for block in _vhdx_layout(path)[1]))


def vhdx_cut_in_metadata(tmp: Path) -> Path:
    """The copy stopped inside the metadata region: the virtual size itself is gone."""
    path = _vhdx(tmp)
    meta = _vhdx_layout(path)[0].metadata_region
    return _cut(path, meta.offset + 4096)


def vhdx_cut_in_headers(tmp: Path) -> Path:
    path = _vhdx(tmp)
    return _cut(path, 100_000)


def vhdx_differencing(tmp: Path) -> Path:
    """``qemu-img create -f vhdx -b base.vhdx`` fails ("Backing file not supported for file
    format 'vhdx'"), so the HasParent bit is set in the file parameters of qemu's VHDX (the
    metadata region has no checksum). pyvhdi then reports a differential disk."""
    path = _vhdx(tmp)
    meta = _vhdx_layout(path)[0].metadata_region
    with open(path, "rb") as f:
        f.seek(meta.offset)
        region = f.read(meta.length)
    count = struct.unpack_from("<H", region, 10)[0]
    for i in range(count):
        guid, offset, _, _, _ = struct.unpack_from("<16sIIII", region, 32 + 32 * i)
        if uuid.UUID(bytes_le=guid) == vhdx.FILE_PARAMETERS:
            block_size, flags = struct.unpack_from("<II", region, offset)
            write_at(path, meta.offset + offset, struct.pack("<II", block_size, flags | 2))
            return path
    raise AssertionError("qemu-img's VHDX has no file parameters")


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    problem: str
    commands: tuple[str, ...] = ALL
    #: Files inspect describes rather than refuses: what ``inspect`` lists among the problems,
    #: and what ``--in-place``/``resize`` name in their refusal (the format).
    described: str | None = None
    format_name: str | None = None


_BY_FORMAT = ("convert", "in-place", "resize")


CASES = {
    "empty": Case(empty, "empty"),
    "directory": Case(directory, "is a directory"),
    "short-footer": Case(short_footer, "truncated footer"),
    "short-junk": Case(short_junk, "truncated footer"),
    "fixed-cut-in-footer": Case(fixed_cut_in_footer, "truncated footer"),
    "fixed-cut-short": Case(fixed_cut_short, "no VHD footer"),
    "dynamic-cut-short": Case(dynamic_cut_short, "footer at the end of the file is missing"),
    "wrong-cookie": Case(wrong_cookie, "not the cookie b'conectix'"),
    "wrong-checksum": Case(wrong_checksum, "checksum"),
    "bad-header-checksum": Case(bad_header_checksum, "dynamic header checksum"),
    "bat-past-end": Case(bat_past_end, "points past the end of the file"),
    "bat-larger-than-file": Case(bat_larger_than_file, "is larger than the file"),
    "overflow-2-63": Case(overflow_2_63, "overflows"),
    "overflow-max": Case(overflow_max, "overflows"),
    "differencing": Case(differencing, "not supported", _BY_FORMAT, "parent",
                         "differencing VHD"),
    "fixed-zero-size": Case(fixed_zero_size, "virtual size is 0"),
    "footer-only-zero-size": Case(footer_only_zero_size, "virtual size is 0"),
    "qcow2-zero-size": Case(qcow2_zero_size, "cannot be read as qcow2"),  # no data to read
    "footer-copies-disagree": Case(footer_copies_disagree, "the copy at offset 0 says 33554432 "
                                   "bytes", _BY_FORMAT, "footer copies", "dynamic VHD"),
    "vhdx-log-guid": Case(vhdx_log_guid, "log was never replayed", _BY_FORMAT,
                          "log was never replayed", "VHDX"),
    "vhdx-log-entry": Case(vhdx_log_entry, "log was never replayed", _BY_FORMAT,
                           "log was never replayed", "VHDX"),
    "vhdx-cut-in-block": Case(vhdx_cut_in_block, "truncated: payload block 7"),
    "vhdx-cut-at-block": Case(vhdx_cut_at_block, "truncated: payload block 7"),
    "vhdx-cut-in-metadata": Case(vhdx_cut_in_metadata, "truncated: the metadata region"),
    "vhdx-cut-in-headers": Case(vhdx_cut_in_headers, "truncated: the headers"),
    "vhdx-differencing": Case(vhdx_differencing, "differencing VHDX is not supported",
                              _BY_FORMAT, "differencing VHDX", "VHDX"),
}

PAIRS = [(name, cmd) for name, case in CASES.items() for cmd in case.commands]


def _assert_one_line_refusal(res: subprocess.CompletedProcess[str], path: Path,
                             problem: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"vmimage: {path}: "), lines[0]
    assert res.stdout == ""


@pytest.mark.parametrize(("name", "command"), PAIRS)
def test_bad_input_refused(tmp_path: Path, name: str, command: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "out.vhd"
    before = file_state(path)

    res = vmimage(*_command(command, path, out))

    _assert_one_line_refusal(res, path, case.problem)
    if case.format_name and command != "convert":
        assert case.format_name in res.stderr, res.stderr
    else:
        assert case.problem in res.stderr, res.stderr
    assert file_state(path) == before
    assert list(outdir.iterdir()) == []  # neither OUT nor OUT.partial


DESCRIBED = [name for name, case in CASES.items() if case.described]


@pytest.mark.parametrize("name", DESCRIBED)
def test_described_by_inspect(tmp_path: Path, name: str) -> None:
    """What cannot be converted can still be looked at: inspect exits 0 and says why."""
    case = CASES[name]
    assert case.described is not None
    path = case.build(tmp_path)
    before = file_state(path)
    info = inspect_json(path)
    problems = info["problems"]
    assert isinstance(problems, list)
    assert any(case.described in p for p in problems), problems
    assert file_state(path) == before


def test_differencing_is_described_by_inspect(tmp_path: Path) -> None:
    path = differencing(tmp_path)
    info = inspect_json(path)
    assert info["format"] == "vhd-differencing"
    footer = info["footer"]
    assert isinstance(footer, dict) and footer["disk_type"] == "differencing"


@pytest.mark.parametrize("build", [vhdx_cut_in_block, vhdx_cut_at_block, vhdx_cut_in_metadata,
                                   vhdx_cut_in_headers])
def test_qemu_refuses_truncated_vhdx_too(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    """qemu-img, an independent reader, finds each cut VHDX unusable as well: the files are
    truncated, not misjudged by our BAT arithmetic."""
    path = build(tmp_path)
    res = run(["qemu-img", "info", "-f", "vhdx", str(path)], check=False)
    assert res.returncode != 0, res.stdout


# --- the VHDX log: qemu-img agrees it must be replayed, and replays it --------------------


def test_vhdx_log_entry_is_refused_by_qemu_too(tmp_path: Path) -> None:
    """The crafted entry is a real log (qemu-img's own parser finds it and refuses to read the
    disk without replaying it), so vmimage's refusal is not about a malformed file."""
    path = vhdx_log_entry(tmp_path)
    res = run(["qemu-img", "info", "-f", "vhdx", str(path)], check=False)
    assert res.returncode != 0
    assert "log that needs to be replayed" in res.stderr


def test_vhdx_log_replayed_by_qemu_then_converted(tmp_path: Path) -> None:
    """Once ``qemu-img check -r all`` has replayed the log, the log GUID is gone, vmimage
    converts the disk, and the logged write is in the output: what a silent conversion of the
    unreplayed file would have lost."""
    path = vhdx_log_entry(tmp_path)
    run(["qemu-img", "check", "-q", "-r", "all", "-f", "vhdx", str(path)], check=False)
    run(["qemu-img", "info", "-f", "vhdx", str(path)])  # opens read-only: the log is replayed
    assert not _vhdx_layout(path)[0].header.log_pending
    assert inspect_json(path)["problems"] == []
    out = tmp_path / "out.vhd"
    vmimage_ok("vhd", "convert", path, out)
    assert qemu_compare(path, "vhdx", out, "vpc") == 0
    with open(out, "rb") as f:
        assert f.read(len(LOG_PAYLOAD)) == LOG_PAYLOAD


def test_differencing_fails_validation(tmp_path: Path) -> None:
    path = differencing(tmp_path)
    before = file_state(path)
    res = vmimage("vhd", "validate", path, "--role", "data", "--format", "json")
    assert res.returncode == 1, res.stderr
    findings = {f["check_id"]: f for f in json.loads(res.stdout)["findings"]}
    assert findings["VHD-FIXED-FORMAT"]["status"] == "fail"
    assert "differencing VHD" in findings["VHD-FIXED-FORMAT"]["message"]
    assert file_state(path) == before


def test_lenient_inspect_shows_a_bad_checksum(tmp_path: Path) -> None:
    """``--lenient`` decodes the corrupt footer for a person to read, and still exits 1."""
    path = wrong_checksum(tmp_path)
    res = vmimage("vhd", "inspect", "--format", "json", "--lenient", path)
    assert res.returncode == 1
    info = json.loads(res.stdout)
    assert info["footer_checksum_ok"] is False
    assert any("checksum" in p for p in info["problems"])


# --- unreadable: a mode-000 file, read by a user without root's override --------------------


@functools.cache
def _unprivileged() -> tuple[str, ...]:
    """How to run the CLI without the power to read a mode-000 file.

    ``nobody`` is the first choice (rulings). Where the interpreter lives under a directory
    nobody cannot enter (pyenv under /root), nobody cannot start Python at all; then root runs
    it with every capability dropped, which removes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH,
    so the kernel applies the file's mode 000 to root as it would to anyone.
    """
    nobody = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    probe = subprocess.run([*nobody, VMIMAGE, "--help"], capture_output=True,
                           stdin=subprocess.DEVNULL, check=False)
    if probe.returncode == 0:
        return nobody
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all")


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is 0700 and root's)."""
    path = Path(tempfile.mkdtemp(prefix="vmimage-unreadable-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("command", ALL)
def test_unreadable_file(public_dir: Path, command: str) -> None:
    path = Path(conv.create(public_dir / "secret.vhd", 64 * MiB).output)
    path.chmod(0)
    outdir = public_dir / "out"
    outdir.mkdir(mode=0o777)
    outdir.chmod(0o777)
    prefix = _unprivileged()
    # The file can be reached, only not read: the refusal must be about the file itself.
    assert run([*prefix, "test", "-e", str(path)], check=False).returncode == 0
    assert run([*prefix, "cat", str(path)], check=False).returncode != 0
    before = file_state(path)

    res = vmimage(*_command(command, path, outdir / "out.vhd"), prefix=prefix)

    _assert_one_line_refusal(res, path, "permission denied")
    assert "permission denied" in res.stderr
    assert file_state(path) == before
    assert list(outdir.iterdir()) == []
