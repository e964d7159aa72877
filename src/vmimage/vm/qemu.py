"""qemu's command line, the disk it writes, the forwarded port, and the UEFI variables.

The image is never written: qemu boots a qcow2 overlay whose backing file is the image (qemu
opens a backing file read-only), or a private copy of the image made when a key had to be
written into it. Networking is user-mode, ``restrict=on`` (the guest reaches neither the host nor the
outside; only the forward comes in), with the one forward bound to 127.0.0.1; a provisioned
VM has a tap in a namespace of its own instead (:mod:`vmimage.vm.provnet`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmimage.errors import InputError
from vmimage.vm.accel import Accel

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
INSTALL_HINT = "install qemu-system-x86 (and ovmf for UEFI images): apt-get install qemu-system-x86 ovmf"


@dataclass(frozen=True)
class Machine:
    """Everything the command line is made from."""

    name: str
    disk: Path  # what qemu writes: the overlay or the private copy
    disk_format: str  # "qcow2", "raw" or "vpc"
    firmware: str  # "bios" or "uefi"
    accel: Accel
    memory_mib: int
    cpus: int
    port: int
    console: Path
    vars_file: Path | None = None  # a private copy of OVMF_VARS.fd, for UEFI
    #: a provisioned VM: the tap in its namespace (instead of user networking and the
    #: forward), the provisioning DVD, Azure's DMI chassis asset tag, and the system UUID
    #: (Azure's VM ID; cloud-init's Azure datasource gives up without one)
    tap: str | None = None
    cdrom: Path | None = None
    asset_tag: str | None = None
    system_uuid: str | None = None


def _escape(path: Path) -> str:
    """A path inside a qemu option list (``,`` separates options: it is doubled)."""
    return str(path).replace(",", ",,")


def command(m: Machine) -> list[str]:
    """The qemu-system-x86_64 command line for ``m``."""
    cmd = [QEMU, "-name", f"vmimage-{m.name}", "-nodefaults", "-no-user-config",
           "-display", "none", "-machine", "q35" if m.firmware == "uefi" else "pc",
           *m.accel.args(), "-m", f"{m.memory_mib}M", "-smp", str(m.cpus)]
    if m.firmware == "uefi":
        assert m.vars_file is not None
        cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={_escape(OVMF_CODE)}",
                "-drive", f"if=pflash,format=raw,file={_escape(m.vars_file)}"]
    cmd += ["-drive", f"file={_escape(m.disk)},format={m.disk_format},if=virtio,cache=unsafe"]
    if m.cdrom is not None:  # IDE (pc) or AHCI (q35): /dev/sr0, as the agent looks for it
        cmd += ["-drive", f"file={_escape(m.cdrom)},format=raw,media=cdrom,if=ide,readonly=on"]
    if m.asset_tag is not None:
        cmd += ["-smbios", f"type=3,asset={m.asset_tag}"]
    if m.system_uuid is not None:
        cmd += ["-uuid", m.system_uuid]
    if m.tap is not None:
        cmd += ["-netdev", f"tap,id=n0,ifname={m.tap},script=no,downscript=no"]
    else:
        cmd += ["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{m.port}-:22"]
    cmd += ["-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{m.console}"]
    return cmd


def require_tools(firmware: str) -> None:
    """Refuse early, in one line, when qemu (or OVMF for UEFI) is not installed.

    Raises:
        InputError: naming what is missing and the package that brings it.
    """
    if shutil.which(QEMU) is None or shutil.which("qemu-img") is None:
        raise InputError(QEMU, f"not found: {INSTALL_HINT}")
    if firmware == "uefi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        raise InputError(str(OVMF_CODE), f"not found: this image boots with UEFI; {INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (qemu fails clearly if it is taken by then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (so qemu can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def make_overlay(image: Path, qemu_format: str, overlay: Path) -> None:
    """A qcow2 overlay whose backing file is ``image`` (read-only to qemu).

    Raises:
        InputError: qemu-img refused (its last line says why).
    """
    proc = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.resolve()),
                           "-F", qemu_format, str(overlay)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise InputError(image, f"cannot make an overlay: {lines[-1]}")


def private_copy(image: Path, copy: Path) -> None:
    """A reflinked (or sparse) copy of ``image`` that qemu may write and a key may go into.

    Raises:
        InputError: the copy failed (no space, ...).
    """
    proc = subprocess.run(["cp", "--reflink=auto", "--sparse=always", str(image), str(copy)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise InputError(image, f"cannot copy it to {copy}: {lines[-1]}")


def uefi_vars(directory: Path) -> Path:
    """A private copy of OVMF's variable store (the firmware writes it)."""
    target = directory / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, target)
    return target
