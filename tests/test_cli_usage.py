"""Usage errors get the same treatment as bad input: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("args, fragment", [
    (["vhd", "inspect"], "Missing argument 'file'"),
    (["vhd", "create", "x.vhd", "--size"], "requires an argument"),
    (["nosuch"], "No such command 'nosuch'"),
    (["check", "/", "--format", "xml"], "unknown format 'xml'"),
    (["vhd", "validate", "x.vhd", "--role", "root"], "unknown role 'root'"),
    (["vhd", "create", "x.vhd", "--size", "ten"], "not a size"),
])
def test_usage_error_is_one_line(args: list[str], fragment: str, tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not list(tmp_path.iterdir())  # nothing was created


def test_no_arguments_shows_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "vmimage"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0 and "Usage: vmimage" in proc.stdout
