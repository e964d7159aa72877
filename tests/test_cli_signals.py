"""SIGTERM cleans up as SIGINT does: what a service manager or CI's timeout sends must not leave
a half-written output, a temporary file or a changed input behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MiB = 1024 * 1024


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def busy_input(tmp_path: Path) -> Path:
    """A raw disk with 256 MiB of incompressible data: converting it takes a while."""
    src = tmp_path / "in.raw"
    with src.open("wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(MiB))
    return src


@pytest.mark.parametrize(("sig", "code", "word"), [
    (signal.SIGTERM, 143, "terminated"),
    (signal.SIGINT, 130, "interrupted"),
])
def test_signal_during_convert_leaves_nothing(busy_input: Path, sig: int, code: int,
                                              word: str) -> None:
    before = _digest(busy_input)
    out = busy_input.with_name("out.vhd")
    proc = subprocess.Popen([sys.executable, "-m", "vmimage", "vhd", "convert", str(busy_input),
                             str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # Wait until it writes (a file besides the input appears), then signal it mid-copy.
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(busy_input.parent.iterdir())) > 1:
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.skip("the conversion finished before it could be signalled")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the conversion finished as the signal arrived")
    assert proc.returncode == code, stderr
    assert stderr.strip() == f"vmimage: {word}", stderr
    assert [p.name for p in busy_input.parent.iterdir()] == ["in.raw"]
    assert _digest(busy_input) == before
