"""The bad-input corpus: every broken file gets one clear line, exit code 2, and stays untouched.

Each case is built from real bytes: qemu-img's own VHDs, then cut or edited at the byte level
(a differencing disk cannot be made by qemu-img, so it is crafted from a dynamic one by setting
the disk type and fixing the checksum). Every applicable command runs through the real CLI.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.vhd_util import (
    VMIMAGE,
    Extent,
    MiB,
    file_state,
    make_sparse,
    qemu_convert,
    read_footer,
    run,
    vmimage,
    vmimage_ok,
    write_at,
)
from vmimage.disk import convert as conv
from vmimage.disk import vhd

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


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    problem: str
    commands: tuple[str, ...] = ALL


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
    "differencing": Case(differencing, "not supported", ("convert", "in-place", "resize")),
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
    if name == "differencing" and command != "convert":
        assert "differencing VHD" in res.stderr
    else:
        assert case.problem in res.stderr, res.stderr
    assert file_state(path) == before
    assert list(outdir.iterdir()) == []  # neither OUT nor OUT.partial


# --- the differencing disk: described, refused, and failing validation ----------------------


def test_differencing_is_described_by_inspect(tmp_path: Path) -> None:
    path = differencing(tmp_path)
    before = file_state(path)
    res = vmimage_ok("vhd", "inspect", "--json", path)
    info = json.loads(res.stdout)
    assert info["format"] == "vhd-differencing"
    assert info["footer"]["disk_type"] == "differencing"
    assert any("parent" in p for p in info["problems"])
    assert file_state(path) == before


def test_differencing_fails_validation(tmp_path: Path) -> None:
    path = differencing(tmp_path)
    before = file_state(path)
    res = vmimage("vhd", "validate", path, "--role", "data", "--json")
    assert res.returncode == 1, res.stderr
    findings = {f["check_id"]: f for f in json.loads(res.stdout)["findings"]}
    assert findings["VHD-FIXED-FORMAT"]["status"] == "fail"
    assert "differencing VHD" in findings["VHD-FIXED-FORMAT"]["message"]
    assert file_state(path) == before


def test_lenient_inspect_shows_a_bad_checksum(tmp_path: Path) -> None:
    """``--lenient`` decodes the corrupt footer for a person to read, and still exits 1."""
    path = wrong_checksum(tmp_path)
    res = vmimage("vhd", "inspect", "--json", "--lenient", path)
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
