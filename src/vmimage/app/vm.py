"""Deploy an image locally (``vmimage vm boot``), and list, reach and stop what was booted.

The local stand-in for Azure's "deploy a VM from the image" (REG-DEPLOY): the image boots
under qemu from its own boot loader, on a copy-on-write overlay (or, with ``--key``, on a
private reflinked copy holding the key), so the image file is never written. Booting is done
by :mod:`vmimage.vm`; this module decides, orders and cleans up: when a boot fails or is
interrupted, qemu is killed and the VM's directory removed before the error goes up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmimage.errors import InputError
from vmimage.vm import accel, qemu, state
from vmimage.vm.disk import BootDisk, describe
from vmimage.vm.keeper import DETACH
from vmimage.vm.state import VmRecord
from vmimage.vm.wait import BootFailed, wait_for_ssh

__all__ = ["BootFailed", "BootOptions", "Booted", "VmRecord", "boot", "listing", "ssh_argv",
           "stop"]

DEFAULT_USER = "azureuser"  # what the Azure portal proposes
STOP_GRACE = 5.0
_MEMORY = re.compile(r"(\d+)([MG]?)(i?B?)?", re.I)


@dataclass(frozen=True)
class BootOptions:
    """``vm boot``'s arguments."""

    image: str
    name: str | None = None
    port: int | None = None
    memory: str = "1G"
    cpus: int = 2
    console_log: str | None = None
    timeout: float = 300.0
    key: str | None = None  # a public key file
    user: str | None = None


@dataclass(frozen=True)
class Booted:
    """A VM that answered on SSH."""

    record: VmRecord
    disk: BootDisk
    seconds: float
    accel_reason: str
    user_created: bool = False
    host_keys: tuple[str, ...] = ()


def memory_mib(text: str) -> int:
    """``1G``, ``512M``, ``2GiB``, ``768`` (MiB) -> MiB.

    Raises:
        InputError: anything else, or under 128 MiB.
    """
    m = _MEMORY.fullmatch(text.strip())
    if m is None:
        raise InputError("--memory", f"{text!r} is not a size such as 1G or 512M")
    mib = int(m.group(1)) * (1024 if m.group(2).upper() == "G" else 1)
    if mib < 128:
        raise InputError("--memory", f"{text} is too small: a Linux VM needs 128 MiB at least")
    return mib


def _read_key(path: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise InputError(path, f"cannot read the public key: {exc.strerror}") from None
    if "PRIVATE KEY" in text:
        raise InputError(path, "is a private key: give the public one (FILE.pub)")
    if len(text.splitlines()) != 1:
        raise InputError(path, "must hold exactly one public key line")
    return text


def _inject(copy: Path, user: str, key: str) -> tuple[bool, list[str]]:
    """Write the key (and missing host keys) into the copy: whether the user was created,
    and the host key types generated."""
    from vmimage.generalize import authorize
    from vmimage.generalize.image import locate

    if os.geteuid() != 0:
        raise InputError("--key", "writing a key into the image's copy needs root (its "
                                  "filesystems are loop-mounted)")
    layout = locate(str(copy))
    proc = subprocess.run(authorize.command(),
                          input=authorize.request(str(copy), layout.extents, user, key),
                          capture_output=True, text=True, check=False)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise InputError(copy, f"the key could not be written: {reason}") from None
    if "error" in answer:
        raise InputError(*answer["error"])
    return bool(answer["created"]), list(answer.get("host_keys", []))


def _start_keeper(directory: Path, cmd: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    with (directory / "keeper.log").open("wb") as log:
        keeper = subprocess.Popen([sys.executable, "-m", "vmimage.vm.keeper", str(directory),
                                   *cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=log, start_new_session=True)
    assert keeper.stdout is not None
    line = keeper.stdout.readline()
    keeper.stdout.close()
    if not line.strip().isdigit():
        keeper.wait()
        said = (directory / "keeper.log").read_text(errors="replace").strip().splitlines()
        raise InputError(qemu.QEMU, "could not be started: " + (said[-1] if said else "?"))
    return keeper, int(line)


def _give_up(keeper: subprocess.Popen[bytes] | None) -> None:
    """End of file to the keeper: it kills qemu and removes the directory; if it does not
    end, it is killed, and qemu dies with it (its parent-death signal)."""
    if keeper is None:
        return
    if keeper.stdin is not None:
        with contextlib.suppress(OSError):
            keeper.stdin.close()
    try:
        keeper.wait(10)
    except subprocess.TimeoutExpired:
        keeper.kill()
        keeper.wait()


def boot(opts: BootOptions) -> Booted:
    """Boot ``opts.image`` and wait for SSH.

    Raises:
        InputError: the image, a flag or the host cannot be used (exit 2).
        BootFailed: it started but did not reach SSH (the last console lines attached).
    """
    image = Path(opts.image)
    disk = describe(opts.image)
    qemu.require_tools(disk.firmware)
    mib = memory_mib(opts.memory)
    if not 1 <= opts.cpus <= 64:
        raise InputError("--cpus", f"{opts.cpus} is not between 1 and 64")
    if opts.timeout <= 0:
        raise InputError("--timeout", "must be a positive number of seconds")
    key = _read_key(opts.key) if opts.key else None
    user = opts.user or (DEFAULT_USER if key else None)
    if key and not disk.mountable:
        raise InputError(opts.image, f"is a {disk.format}: --key writes into a copy of raw and "
                                     "fixed VHD images only; convert it first (vmimage vhd "
                                     "convert IN OUT.vhd)")
    if opts.port is not None and not (1 <= opts.port <= 65535 and qemu.port_free(opts.port)):
        raise InputError("--ssh-port", f"{opts.port} is not free on 127.0.0.1")
    port = opts.port or qemu.free_port()
    directory = state.create(opts.name, opts.image)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        console = Path(opts.console_log).resolve() if opts.console_log else directory / "console.log"
        console.write_bytes(b"")
        created, made = False, list[str]()
        if key:
            assert user is not None
            target = directory / f"disk.{'raw' if disk.qemu_format == 'raw' else 'vhd'}"
            qemu.private_copy(image, target)
            created, made = _inject(target, user, key)
            disk_format = disk.qemu_format
        else:
            target = directory / "overlay.qcow2"
            qemu.make_overlay(image, disk.qemu_format, target)
            disk_format = "qcow2"
        chosen = accel.detect()
        machine = qemu.Machine(directory.name, target, disk_format, disk.firmware, chosen, mib,
                               opts.cpus, port, console,
                               qemu.uefi_vars(directory) if disk.firmware == "uefi" else None)
        keeper, pid = _start_keeper(directory, qemu.command(machine))
        record = VmRecord(directory.name, pid, port, str(image.resolve()), str(target),
                          chosen.name, disk.firmware,
                          datetime.now(UTC).isoformat(timespec="seconds"),
                          str(console), user, str(Path(opts.key).resolve()) if opts.key else None)
        seconds = wait_for_ssh(opts.image, port, console, directory / "qemu.log", keeper.poll,
                               opts.timeout)
        state.save(directory, record)
        assert keeper.stdin is not None
        keeper.stdin.write(DETACH)
        keeper.stdin.close()
        (directory / state.BOOTING).unlink(missing_ok=True)
        return Booted(record, disk, seconds, chosen.reason, created, tuple(made))
    except BaseException:
        _give_up(keeper)
        state.remove(directory)
        raise


def listing() -> list[VmRecord]:
    """The running VMs (stale directories are removed on the way)."""
    return state.live()


def stop(name: str) -> VmRecord:
    """Kill the VM's qemu (SIGTERM, then SIGKILL) and remove its overlay and state.

    No clean shutdown is needed: the disk qemu writes is thrown away.

    Raises:
        InputError: no such VM (a VM found dead has its state removed all the same).
    """
    directory, record = state.find(name)
    try:
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while state.runs_here(record.pid, directory) and time.monotonic() < deadline:
            time.sleep(0.1)
        if state.runs_here(record.pid, directory):
            os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    state.remove(directory)
    return record


def ssh_argv(name: str, user: str | None, command: list[str]) -> list[str]:
    """The system ``ssh`` command line that reaches VM ``name``.

    Host keys are neither checked nor remembered: the VM is a throwaway on 127.0.0.1 whose
    host keys are new at each boot. With the key injected at boot, its private half (the
    public file without ``.pub``) is offered when it exists.

    Raises:
        InputError: no such VM.
    """
    _, record = state.find(name)
    argv = ["ssh", "-p", str(record.port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    if record.key and record.key.endswith(".pub") and Path(record.key[:-4]).is_file():
        argv += ["-i", record.key[:-4], "-o", "IdentitiesOnly=yes"]
    who = user or record.user
    argv.append(f"{who}@127.0.0.1" if who else "127.0.0.1")
    if command:
        argv += ["--", *command]
    return argv
