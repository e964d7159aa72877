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

from vmimage.app import provision
from vmimage.errors import InputError
from vmimage.vm import accel, provnet, qemu, state
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
    provision: bool = False  # as Azure would: the DVD, DHCP, WireServer, IMDS
    password_env: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class Booted:
    """A VM that answered on SSH."""

    record: VmRecord
    disk: BootDisk
    seconds: float
    accel_reason: str
    user_created: bool = False
    host_keys: tuple[str, ...] = ()
    verdict: provision.Verdict | None = None  # with --provision


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


def _inject(copy: Path, user: str | None, key: str | None,
            files: dict[str, str] | None = None) -> tuple[bool, list[str]]:
    """Write the key (and missing host keys), and any override files, into the copy: whether
    the user was created, and the host key types generated."""
    from vmimage.generalize import authorize
    from vmimage.generalize.image import locate

    if os.geteuid() != 0:
        raise InputError("--key" if key else "--provision",
                         "writing into the image's copy needs root (its filesystems are "
                         "loop-mounted)")
    layout = locate(str(copy))
    proc = subprocess.run(authorize.command(),
                          input=authorize.request(str(copy), layout.extents, user, key, files),
                          capture_output=True, text=True, check=False)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise InputError(copy, f"the key could not be written: {reason}") from None
    if "error" in answer:
        raise InputError(*answer["error"])
    return bool(answer["created"]), list(answer.get("host_keys", []))


def _start_keeper(directory: Path, cmd: list[str], prefix: list[str] | None = None,
                  pass_fds: tuple[int, ...] = ()) -> tuple[subprocess.Popen[bytes], int]:
    with (directory / "keeper.log").open("wb") as log:
        keeper = subprocess.Popen([*(prefix or []), sys.executable, "-m", "vmimage.vm.keeper",
                                   str(directory), *cmd], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                  pass_fds=pass_fds)
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
    """Boot ``opts.image`` and wait for SSH (with ``provision``, for Azure's provisioning:
    the verdict is in :attr:`Booted.verdict`, and a VM that did not provision is stopped).

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
    if opts.password_env and not opts.provision:
        raise InputError("--password-env", "is for --provision (the password goes into "
                                           "ovf-env.xml); without it give --key")
    key = _read_key(opts.key) if opts.key else None
    user = opts.user or (DEFAULT_USER if key or opts.provision else None)
    setup = provision.read_image(opts.image)  # refuses a data disk or a Windows image
    prov = setup if opts.provision else None
    if opts.provision:
        provnet.require_tools()
    overrides = provision.overrides_for(prov) if prov is not None else {}
    writes = bool(key and not opts.provision) or bool(overrides)
    if writes and not disk.mountable:
        raise InputError(opts.image, f"is a {disk.format}: vm boot writes into a copy of raw "
                                     "and fixed VHD images only; convert it first (vmimage vhd "
                                     "convert IN OUT.vhd)")
    if opts.port is not None and not (1 <= opts.port <= 65535 and qemu.port_free(opts.port)):
        raise InputError("--ssh-port", f"{opts.port} is not free on 127.0.0.1")
    port = opts.port or qemu.free_port()
    directory = state.create(opts.name, opts.image)
    keeper: subprocess.Popen[bytes] | None = None
    prep: provision.Prepared | None = None
    try:
        console = Path(opts.console_log).resolve() if opts.console_log else directory / "console.log"
        console.write_bytes(b"")
        req = None
        if prov is not None:
            assert user is not None
            req = provision.request_for(user, opts.hostname, opts.key, opts.password_env,
                                        directory.name)
            prep = provision.prepare(directory, directory.name, req, prov, port)
        created, made = False, list[str]()
        if writes:
            target = directory / f"disk.{'raw' if disk.qemu_format == 'raw' else 'vhd'}"
            qemu.private_copy(image, target)
            created, made = (_inject(target, None, None, overrides) if opts.provision
                             else _inject(target, user, key))
            disk_format = disk.qemu_format
        else:
            target = directory / "overlay.qcow2"
            qemu.make_overlay(image, disk.qemu_format, target)
            disk_format = "qcow2"
        chosen = accel.detect()
        machine = qemu.Machine(directory.name, target, disk_format, disk.firmware, chosen, mib,
                               opts.cpus, port, console,
                               qemu.uefi_vars(directory) if disk.firmware == "uefi" else None,
                               tap=provnet.TAP if prep else None,
                               cdrom=prep.cdrom if prep else None,
                               asset_tag=provnet.AZURE_ASSET_TAG if prep else None,
                               system_uuid=prep.vm_id if prep else None)
        started = time.monotonic()
        keeper, pid = _start_keeper(directory, qemu.command(machine),
                                    provnet.unshare_prefix() if prep else None,
                                    (prep.listener.fileno(),) if prep else ())
        record = VmRecord(directory.name, pid, port, str(image.resolve()), str(target),
                          chosen.name, disk.firmware,
                          datetime.now(UTC).isoformat(timespec="seconds"),
                          str(console), user, str(Path(opts.key).resolve()) if opts.key else None)
        verdict = None
        if prep is not None and req is not None:
            prep.listener.close()  # the forwarder holds it now
            verdict = provision.watch(prep, req, port, console, directory / "qemu.log",
                                      keeper.poll, started, started + opts.timeout)
            seconds = verdict.seconds_login or verdict.seconds_ready or 0.0
            if not verdict.provisioned:
                _give_up(keeper)
                state.remove(directory)
                return Booted(record, disk, time.monotonic() - started, chosen.reason,
                              verdict=verdict)
        else:
            seconds = wait_for_ssh(opts.image, port, console, directory / "qemu.log",
                                   keeper.poll, opts.timeout)
        state.save(directory, record)
        assert keeper.stdin is not None
        keeper.stdin.write(DETACH)
        keeper.stdin.close()
        (directory / state.BOOTING).unlink(missing_ok=True)
        return Booted(record, disk, seconds, chosen.reason, created, tuple(made), verdict)
    except BaseException:
        _give_up(keeper)
        state.remove(directory)
        raise
    finally:
        if prep is not None:
            prep.listener.close()


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
