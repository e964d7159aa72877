"""A real OpenSSH server on 127.0.0.1, running chrooted in a copy of the compliant Debian tree.

The live check's oracle: the same tree checked offline as a directory and live through this
sshd must agree rule by rule. sshd runs in a private mount namespace (``unshare --mount``) with
its own ``/proc`` and a tmpfs ``/dev`` holding only the few nodes sshd, sudo and PAM open, so
nothing of the host's ``/dev`` is ever under the tree (deleting the tree cannot touch it).
The kernel is the host's: ``/proc/cmdline`` and ``/proc/swaps`` are the host's, which the
tests account for.

Users: ``vmtest`` (key and password, sudo NOPASSWD), ``nosudo`` (key, no sudo), ``pwsudo``
(key, sudo that asks for a password). The host key is generated into ``/etc/ssh`` as first
boot does, so ``sshd -T`` works inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import imagebuild as ib
from tests.ports import free_port

PASSWORD = "Live-Test-Passw0rd-7781"
USERS = ("vmtest", "nosudo", "pwsudo")
_DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9),
              ("tty", 5, 0))


@dataclass(frozen=True)
class Sshd:
    """A running chrooted sshd and what a client needs to reach it."""

    tree: Path
    port: int
    key: Path  # authorized for every user
    host_key_line: str  # as known_hosts holds it

    def known_hosts(self, directory: Path) -> Path:
        """A known-hosts file that trusts this server."""
        path = directory / "known_hosts"
        path.write_text(self.host_key_line + "\n")
        return path




def _prepare(tree: Path, work: Path) -> tuple[Path, str]:
    key = work / "id_ed25519"
    ib.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    for user in USERS:
        ib.run(["useradd", "--root", tree, "-m", "-s", "/bin/bash", user])
        ssh_dir = tree / "home" / user / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        ib.run(["chroot", tree, "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])
    ib.run(["chpasswd", "-R", tree], input=f"vmtest:{PASSWORD}\n".encode())
    sudoers = tree / "etc" / "sudoers.d" / "vmimage-test"
    sudoers.write_text("vmtest ALL=(ALL) NOPASSWD: ALL\npwsudo ALL=(ALL) ALL\n")
    sudoers.chmod(0o440)
    host_key = tree / "etc" / "ssh" / "ssh_host_ed25519_key"
    ib.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key])
    return key, host_key.with_suffix(".pub").read_text().split(" ")[:2]


def _script(tree: Path, port: int) -> str:
    nodes = " && ".join(f"mknod -m 666 {tree}/dev/{n} c {a} {b}" for n, a, b in _DEV_NODES)
    return (f"mount -t proc proc {tree}/proc && mount -t tmpfs -o mode=755 devtmp {tree}/dev "
            f"&& {nodes} && mkdir -p {tree}/run/sshd && exec chroot {tree} /usr/sbin/sshd -D "
            f"-e -p {port} -o ListenAddress=127.0.0.1")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("sshd did not listen within 15 s")


def _kill_chrooted(tree: Path) -> None:
    """sshd's per-connection children call setsid(), so they leave its process group: kill
    every process whose root is the tree (all of them started by this fixture)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == str(tree):
                    os.kill(int(entry.name), signal.SIGKILL)


@contextlib.contextmanager
def chrooted_sshd(work: Path) -> Iterator[Sshd]:
    """Start sshd in a fresh copy of the compliant tree; kill it and delete the copy after,
    whatever happens."""
    tree = ib.clone_tree()
    proc: subprocess.Popen[bytes] | None = None
    try:
        key, (kind, blob) = _prepare(tree, work)
        port = free_port()
        log = (work / "sshd.log").open("wb")
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--fork",
                                 "sh", "-c", _script(tree, port)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        _wait_listening(port, proc, time.monotonic() + 15)
        yield Sshd(tree, port, key, f"[127.0.0.1]:{port} {kind} {blob}")
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        _kill_chrooted(tree)
        # The namespace died with its processes, and its mounts with it; never delete
        # through a mount point that is somehow still there.
        if not any(os.path.ismount(tree / d) for d in ("proc", "dev")):
            shutil.rmtree(tree.parent, ignore_errors=True)
