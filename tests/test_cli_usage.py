"""Usage errors get the same treatment as bad input: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("args, fragment", [
    (["vhd", "inspect"], "the following arguments are required: FILE"),
    (["vhd", "create", "x.vhd", "--size"], "--size: expected one argument"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["check", "/", "--format", "xml"], "invalid choice: 'xml'"),
    (["check", "/", "--output", "r.pdf"], "r.pdf: cannot tell the format from the extension"),
    (["checks", "list", "--output", "r.html"], "r.html: this command writes text, json, not html"),
    (["check", "/", "--out", "r.json"], "unrecognized arguments: --out"),
    (["vhd", "validate", "x.vhd", "--role", "root"], "invalid choice: 'root'"),
    (["vhd", "create", "x.vhd", "--size", "ten"], "not a size"),
    # Issue 17: an Arabic-Indic digit is not a size; an absurd --days is not a traceback.
    (["vhd", "create", "x.vhd", "--size", "\u0663GiB"], "not a size"),
    (["vhd", "create", "x.vhd", "--size", "9" * 5000], "not a size"),
    (["sas", "create", "http://127.0.0.1:9/acct/c/d.vhd", "--days", "99999999"],
     "--days: must be between 1 and 3650"),
    (["sas", "verify", "--offline", "http://[::1]x/acct/c/d.vhd?sig=abcdefghijkl"],
     "is not a valid URL"),
])
def test_usage_error_is_one_line(args: list[str], fragment: str, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AZURE_STORAGE_KEY": "a2V5a2V5a2V5a2V5"}
    proc = subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False,
                          env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not list(tmp_path.iterdir())  # nothing was created


def test_no_arguments_shows_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "vmimage"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0 and "usage: vmimage" in proc.stdout


def test_upload_to_a_broken_ipv6_url_is_one_line(tmp_path) -> None:
    """``http://[::1/…`` and ``http://[::1]x/…``: refused before any request, on one line."""
    disk = tmp_path / "d.vhd"
    made = subprocess.run([sys.executable, "-m", "vmimage", "vhd", "create", str(disk),
                           "--size", "20MiB"], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    for url in ("http://[::1/acct/c/d.vhd", "http://[::1]x/acct/c/d.vhd",
                "http://h\x1b]0;x/acct/c/d.vhd"):
        proc = subprocess.run([sys.executable, "-m", "vmimage", "upload", str(disk), url,
                               "--retries", "1", "--timeout", "2"], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False,
                              env={"PATH": "/usr/bin:/bin", "AZURE_STORAGE_KEY": "a2V5a2V5"})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "BLOB_URL: is not a valid URL" in lines[0] and "\x1b" not in proc.stderr
