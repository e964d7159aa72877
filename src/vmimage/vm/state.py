"""One directory per VM: ``${VMIMAGE_STATE_DIR:-~/.local/state/vmimage}/vms/NAME/``.

It holds the VM's disk (a qcow2 overlay over the image, or a private copy when a key was
injected), the serial console log, qemu's own messages and ``vm.json``. A VM is alive while
its qemu process runs *and* that process's command line names this directory (a pid alone
could have been reused by anything since).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from vmimage.errors import InputError

RECORD = "vm.json"
BOOTING = "booting.pid"  # the pid of the ``vm boot`` that owns a directory with no record yet
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass
class VmRecord:
    """What ``vm list``, ``vm ssh`` and ``vm stop`` need to know about a running VM."""

    name: str
    pid: int  # qemu's
    port: int  # on 127.0.0.1, forwarded to the guest's 22
    image: str
    disk: str  # the overlay or the private copy qemu writes
    accel: str
    firmware: str
    started: str  # ISO 8601, UTC
    console: str
    user: str | None = None
    key: str | None = None  # the public key injected, if any

    def to_dict(self) -> dict[str, object]:
        """Plain data for vm.json and ``vm list --format json``."""
        return asdict(self)


def root() -> Path:
    """Where every VM's directory lives."""
    base = os.environ.get("VMIMAGE_STATE_DIR")
    return (Path(base) if base else Path.home() / ".local" / "state" / "vmimage") / "vms"


def check_name(name: str) -> str:
    """A VM name is also a directory name: letters, digits, ``.``, ``_``, ``-``.

    Raises:
        InputError: anything else.
    """
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise InputError(name, "is not a usable VM name (letters, digits, '.', '_', '-'; "
                               "at most 63)")
    return name


def create(name: str | None, image: str) -> Path:
    """Make the VM's directory: ``name``, or ``vm-<image stem>-N`` with the first free N.

    Raises:
        InputError: ``name`` is taken or unusable.
    """
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    if name is not None:
        path = base / check_name(name)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            raise InputError(name, "a VM of this name exists (vmimage vm list; vmimage vm "
                                   "stop NAME)") from None
        return _claim(path)
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(image).name.split(".")[0])[:40] or "image"
    for n in range(1, 10000):
        path = base / f"vm-{stem}-{n}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return _claim(path)
    raise InputError(image, f"no free VM name under {base}")


def _claim(path: Path) -> Path:
    (path / BOOTING).write_text(str(os.getpid()))
    return path


def save(directory: Path, record: VmRecord) -> None:
    """Write vm.json atomically."""
    tmp = directory / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record.to_dict(), indent=1))
    tmp.replace(directory / RECORD)


def load(directory: Path) -> VmRecord | None:
    """The record, or None when there is none (a VM still booting) or it is unreadable."""
    try:
        data = json.loads((directory / RECORD).read_text())
        return VmRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def runs_here(pid: int, directory: Path) -> bool:
    """``pid`` is a live process whose command line names ``directory``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return os.fsencode(str(directory)) in cmdline


def remove(directory: Path) -> None:
    """Delete a VM's directory and everything in it (its disk, its logs)."""
    shutil.rmtree(directory, ignore_errors=True)


def find(name: str) -> tuple[Path, VmRecord]:
    """The live VM called ``name``.

    Raises:
        InputError: no such VM, or it is no longer running (its directory is then removed).
    """
    directory = root() / check_name(name)
    record = load(directory) if directory.is_dir() else None
    if record is None:
        raise InputError(name, "no such VM (vmimage vm list)")
    if not runs_here(record.pid, directory):
        remove(directory)
        raise InputError(name, "is no longer running (its state was removed)")
    return directory, record


def live() -> list[VmRecord]:
    """Every running VM; the directories of VMs whose qemu is gone are removed.

    A directory without a record belongs to a VM still booting (or a ``vm boot`` killed
    before its keeper cleaned up): it is left alone unless nothing of it runs any more.
    """
    found: list[VmRecord] = []
    base = root()
    if not base.is_dir():
        return found
    for directory in sorted(base.iterdir()):
        if not directory.is_dir():
            continue
        record = load(directory)
        if record is not None and runs_here(record.pid, directory):
            found.append(record)
        elif record is not None or not _anything_runs(directory):
            remove(directory)
    return found


def _anything_runs(directory: Path) -> bool:
    """The ``vm boot`` that made ``directory`` still runs, or some process's command line
    names it (a VM's keeper or qemu)."""
    try:
        owner = int((directory / BOOTING).read_text())
    except (OSError, ValueError):
        owner = 0
    if owner > 0 and Path(f"/proc/{owner}").exists():
        return True
    return any(pid.isdigit() and runs_here(int(pid), directory) for pid in os.listdir("/proc"))
