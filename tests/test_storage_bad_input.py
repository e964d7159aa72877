"""``vmimage upload`` refuses unusable files and URLs: one line, exit 2, the file untouched.

Upload applies the format rules of ``vhd validate`` (fixed, valid footer, whole MiB, length =
size + 512) but not a role's size limits (rulings); ``--allow-any`` still needs a multiple of
512 bytes. These refusals happen before any request, so the URL points at a closed port.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.azurite import assert_no_secrets, make_disk, one_line_error
from tests.azurite import vmimage as run_cli
from tests.vhd_util import file_state, write_at
from vmimage.disk import vhd

MiB = 1024 * 1024
URL = "http://127.0.0.1:9/vmtest/vhds/disk.vhd"
KEY = "c2VjcmV0LWtleS1mb3ItdGhlLWJhZC1pbnB1dC10ZXN0cw=="


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE")}
    env.update(NO_COLOR="1", TERM="dumb", AZURE_STORAGE_KEY=KEY)
    env.update(extra)
    return env


def _fixed(tmp: Path, size: int = 24 * MiB) -> Path:
    return make_disk(tmp / "disk.vhd", size, [(0, os.urandom(8192))]).path


def _dynamic(tmp: Path) -> Path:
    out = tmp / "dyn.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic",
                    str(out), "32M"], check=True, stdin=subprocess.DEVNULL)
    return out


def _not_whole_mib(tmp: Path) -> Path:
    return make_disk(tmp / "odd.vhd", 24 * MiB + 512, [(0, b"x" * 512)]).path


def _bad_checksum(tmp: Path) -> Path:
    path = _fixed(tmp)
    write_at(path, 24 * MiB + 64, b"\0\0\0\0")
    return path


def _truncated(tmp: Path) -> Path:
    path = _fixed(tmp)
    os.truncate(path, 24 * MiB + 100)
    return path


def _long(tmp: Path) -> Path:
    """A valid footer, but 1 MiB of junk after it: length is not size + 512."""
    path = _fixed(tmp)
    footer = vhd.Footer.new(24 * MiB).pack()
    write_at(path, 25 * MiB, footer)
    return path


def _raw(tmp: Path) -> Path:
    path = tmp / "disk.raw"
    path.write_bytes(os.urandom(4096))
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.vhd"
    path.touch()
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "dir.vhd"
    path.mkdir()
    return path


def _not_fixed_checksummed(tmp: Path) -> Path:
    """A footer with disk type 'none' (0) and a right checksum."""
    path = _fixed(tmp)
    footer = replace(vhd.Footer.new(24 * MiB), disk_type=0).with_checksum()
    write_at(path, 24 * MiB, footer.pack())
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dynamic": (_dynamic, "VHD-FIXED-FORMAT"),
    "not-whole-mib": (_not_whole_mib, "VHD-WHOLE-MIB"),
    "bad-checksum": (_bad_checksum, "checksum"),
    "truncated": (_truncated, "truncated"),
    "longer-than-size": (_long, "VHD-FILE-LENGTH"),
    "raw": (_raw, "VHD-FIXED-FORMAT"),
    "empty": (_empty, "empty"),
    "directory": (_directory, "directory"),
    "disk-type-none": (_not_fixed_checksummed, "disk type"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_refused_on_one_line(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    path = make(tmp_path)
    before = file_state(path)
    line = one_line_error(run_cli("upload", path, URL, env=_env()))
    assert str(path) in line and expected in line
    assert file_state(path) == before


def test_missing_file(tmp_path: Path) -> None:
    line = one_line_error(run_cli("upload", tmp_path / "nope.vhd", URL, env=_env()))
    assert "no such file" in line


def test_allow_any_still_needs_whole_sectors(tmp_path: Path) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(b"x" * 1000)
    before = file_state(path)
    line = one_line_error(run_cli("upload", path, URL, "--allow-any", env=_env()))
    assert "multiple of 512" in line
    assert file_state(path) == before


def test_role_size_limits_do_not_apply(tmp_path: Path) -> None:
    """A 24 MiB disk is too small for any OS disk, yet upload accepts it: it gets as far as
    the network (a closed port) and fails there, on one line."""
    path = _fixed(tmp_path)
    line = one_line_error(run_cli("upload", path, URL, "--retries", "1", env=_env()))
    assert "VHD-" not in line and "127.0.0.1:9" in line


@pytest.mark.parametrize(("url", "expected"), [
    ("ftp://127.0.0.1/vmtest/vhds/disk.vhd", "not an http(s) blob URL"),
    ("http://127.0.0.1:9/vmtest/vhds", "names no account, container and blob"),
    ("https://acct.blob.core.windows.net/vhds", "names no container and blob"),
    ("http://127.0.0.1:9/vmtest/vhds/disk.vhd?sv=1&sp=r", "no SAS signature"),
])
def test_bad_url(url: str, expected: str, tmp_path: Path) -> None:
    path = _fixed(tmp_path)
    line = one_line_error(run_cli("upload", path, url, env=_env()))
    assert expected in line


def test_bad_credentials_are_named_not_shown(tmp_path: Path) -> None:
    path = _fixed(tmp_path)
    res = run_cli("upload", path, URL, env=_env(AZURE_STORAGE_KEY="not base64!"))
    assert "AZURE_STORAGE_KEY" in one_line_error(res) and "not base64!" not in res.stderr
    conn = f"DefaultEndpointsProtocol=http;AccountName=other;AccountKey={KEY}"
    res = run_cli("upload", path, URL, env=_env(AZURE_STORAGE_CONNECTION_STRING=conn))
    line = one_line_error(res)
    assert "'other'" in line and "'vmtest'" in line
    assert_no_secrets(res.stdout, res.stderr)
    assert KEY not in res.stderr


def test_bad_workers(tmp_path: Path) -> None:
    path = _fixed(tmp_path)
    assert "--workers" in one_line_error(run_cli("upload", path, URL, "--workers", "0",
                                                 env=_env()))
