"""The parent of a VM's qemu: kills it if ``vm boot`` dies before the VM is up.

``vm boot`` must leave nothing running when it is interrupted or killed (even by SIGKILL,
which runs no handler) during the wait for SSH, yet the VM must outlive it once booted. qemu's
parent therefore is this small process, in a session of its own: qemu gets
``PR_SET_PDEATHSIG(SIGKILL)`` towards it, and it reads a pipe from ``vm boot``. ``detach``
on the pipe means the VM is up: from then on the keeper only waits for qemu to end
(``vm stop``). End of file before that means ``vm boot`` is gone or gave up: qemu is killed
and the VM's directory removed.

Run as ``python -m vmimage.vm.keeper DIRECTORY QEMU-ARGS...``; stdin is the control pipe,
qemu's pid is written on stdout, qemu's own messages go to ``DIRECTORY/qemu.log``.

With ``DIRECTORY/services.json`` (a provisioned VM), the keeper runs as the first process of a
network namespace of the VM's own (:mod:`vmimage.vm.provnet`): it builds that network, starts
the services listed there (dnsmasq, the emulated endpoints, the SSH forwarder; each with the
same parent-death signal, each logging to ``DIRECTORY/NAME.log``), waits until the TCP
addresses listed under ``wait`` accept, and only then starts qemu.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
DETACH = b"detach\n"


def _die_with_parent() -> None:
    """In qemu, before exec: SIGKILL when the keeper ends, however it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the keeper died before prctl took effect
        os._exit(1)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


SERVICES = "services.json"
_SERVICE_WAIT = 15.0


def _start_services(directory: str) -> list[subprocess.Popen[bytes]]:
    """The namespace's network and services, when the VM has them (see the docstring)."""
    path = os.path.join(directory, SERVICES)
    if not os.path.exists(path):
        return []
    from vmimage.vm import provnet

    with open(path) as fh:
        spec = json.load(fh)
    provnet.setup()
    started = []
    for service in spec["services"]:
        with open(os.path.join(directory, f"{service['name']}.log"), "wb") as log:
            started.append(subprocess.Popen(
                service["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=tuple(service.get("pass_fds", ())), preexec_fn=_die_with_parent))
    deadline = time.monotonic() + _SERVICE_WAIT
    for address in spec.get("wait", []):
        host, _, port = address.rpartition(":")
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                    raise OSError(f"{address} did not start listening (see the services' "
                                  f"logs in {directory})") from None
                time.sleep(0.05)
    return started


def main(argv: list[str]) -> int:
    """Start qemu, report its pid, then obey the pipe (see the module's docstring)."""
    directory, cmd = argv[0], argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        services = _start_services(directory)
    except (OSError, ValueError, KeyError) as exc:
        print(f"the VM's network could not be made: {exc}", file=sys.stderr)
        return 1
    try:
        return _keep(directory, cmd)
    finally:
        for service in services:
            _kill(service)


def _keep(directory: str, cmd: list[str]) -> int:
    with open(os.path.join(directory, "qemu.log"), "wb") as log:
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=_die_with_parent)  # one thread here
    os.write(1, f"{qemu.pid}\n".encode())
    os.close(1)
    control = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([control], [], [], 0.5)
        status = qemu.poll()
        if status is not None:  # vm boot sees it, says why, and removes the directory
            return status if status >= 0 else 128 - status
        if not ready:
            continue
        line = os.read(control, 64)
        if line == DETACH:
            break
        _kill(qemu)  # end of file (vm boot is gone) or any other word: give up
        shutil.rmtree(directory, ignore_errors=True)
        return 0
    os.close(control)
    qemu.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
