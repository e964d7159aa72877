"""Readiness and failure while a VM boots: an ``SSH-`` banner, or a reason to stop waiting.

The banner on the forwarded port is the readiness signal: qemu's user networking accepts a
connection on the host side at once, before anything listens in the guest, so a successful
connect proves nothing; the guest's sshd speaking first does. A kernel panic or an
"emulation failure" in the serial console or in qemu's messages, qemu exiting, or the timeout
end the wait at once, with the last console lines as the evidence.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

from vmimage.errors import VmimageError

#: Console and qemu messages that mean the boot is over and failed.
FATAL = (("Kernel panic", "kernel panic"), ("emulation failure", "emulation failure in qemu"))
TAIL_LINES = 15
POLL = 0.5
_SGR = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # systemd's colours, noise in an error


class BootFailed(VmimageError):
    """The VM did not reach SSH: why, in one line, and the last console lines."""

    exit_code = 1  # the image (REG-DEPLOY) failed, as a failed check does

    def __init__(self, image: str, reason: str, context: list[str]) -> None:
        self.image, self.reason, self.context = image, reason, context
        super().__init__(f"{image}: did not boot: {reason}")


def banner(port: int, timeout: float = 2.0) -> bool:
    """The guest's sshd answers on 127.0.0.1:``port`` with its ``SSH-`` banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of a log (the console's ``\\r`` and blank lines dropped)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    text = _SGR.sub("", data.decode("utf-8", errors="replace").replace("\r", ""))
    return [ln for ln in text.split("\n") if ln.strip()][-lines:]


def fatal(*logs: Path) -> str | None:
    """Why the boot is over, when a log says it (a kernel panic, an emulation failure)."""
    return next((why for why in map(_fatal, logs) if why is not None), None)


def _fatal(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return next((why for needle, why in FATAL if needle in data), None)


def wait_for_ssh(image: str, port: int, console: Path, qemu_log: Path,
                 exited: Callable[[], int | None], timeout: float) -> float:
    """Wait for the banner; the seconds it took.

    Args:
        image: the image's name, for the message.
        port: the forwarded port on 127.0.0.1.
        console: the serial console log.
        qemu_log: qemu's stdout and stderr.
        exited: qemu's exit status once it has ended, None while it runs.
        timeout: seconds before giving up.

    Raises:
        BootFailed: a panic, an emulation failure, qemu's exit, or ``timeout`` seconds.
    """
    start = time.monotonic()
    while True:
        why = fatal(console, qemu_log)
        if why is not None:
            raise BootFailed(image, f"{why} after {time.monotonic() - start:.0f} s",
                             tail(console) + tail(qemu_log, 3))
        status = exited()
        if status is not None:
            said = tail(qemu_log, 3)
            raise BootFailed(image, f"qemu exited (status {status})"
                             + (f": {said[-1].strip()}" if said else ""),
                             tail(console) + said)
        if banner(port):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise BootFailed(image, f"no SSH banner within {timeout:g} s", tail(console))
        time.sleep(POLL)
