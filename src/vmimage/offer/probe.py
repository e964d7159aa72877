"""What a local disk file named in a manifest really is: size, partitions, OS, boot loader.

The offer rules compare what the manifest *declares* (an OS family, Gen1 or Gen2, a size)
with what the file holds. This module reads only what that takes, through the same readers
``vmimage vhd inspect`` and ``vmimage check`` use (:mod:`vmimage.disk.inspect`,
:class:`vmimage.targets.image.ImageTarget`, the os-release fact), so the verdicts agree with
theirs. It never runs the checks: ``offer`` stands below ``checks`` (rulings).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.errors import VmimageError
from vmimage.targets.base import Partition

if TYPE_CHECKING:
    from vmimage.targets.image import ImageTarget


@dataclass(frozen=True)
class DiskProbe:
    """One local disk as found. ``error`` set: the file could not be read as a disk at all."""

    path: str
    virtual_size: int | None = None
    format_name: str | None = None
    error: str | None = None
    scheme: str | None = None  # "gpt", "mbr", "none"
    partitions: tuple[Partition, ...] = ()
    family: str | None = None  # "linux", "windows"; None: not recognised
    os_id: str | None = None  # os-release ID (debian, ubuntu, rhel...)
    os_name: str | None = None  # PRETTY_NAME
    #: ``*.EFI`` files found under /EFI on the EFI system partition; None: not read.
    uefi_loaders: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def esp(self) -> Partition | None:
        """The EFI system partition, if the table has one."""
        return next((p for p in self.partitions if p.type_name == "efi"), None)

    @property
    def bios_boot(self) -> bool:
        """A BIOS-boot partition: how GRUB boots a GPT disk on BIOS (Gen1)."""
        return any(p.type_name == "bios-boot" for p in self.partitions)


def probe_disk(path: str | os.PathLike[str]) -> DiskProbe:
    """Read ``path`` as a disk; what cannot be read is in ``error`` or ``notes``, never raised."""
    from vmimage.disk.inspect import inspect_disk

    name = os.fspath(path)
    try:
        info = inspect_disk(name)
    except VmimageError as exc:
        return DiskProbe(name, error=getattr(exc, "problem", str(exc)))
    try:
        return _probe_contents(name, info.virtual_size, info.format_name)
    except VmimageError as exc:
        return DiskProbe(name, info.virtual_size, info.format_name,
                         notes=(f"contents not read: {exc}",))


def _probe_contents(name: str, size: int, format_name: str) -> DiskProbe:
    from vmimage.facts.osrelease import read_os_release
    from vmimage.targets.image import ImageTarget

    windows_name: str | None = None
    with ImageTarget(name) as target:
        layout = target.layout()
        notes = list(layout.notes)
        release = None
        if target.os_family == "linux":
            release = read_os_release(target)
        elif target.os_family == "windows":
            windows_name = _windows_name(target, notes)
    # The family `vmimage check` detects: os-release for Linux, the NTFS volume holding
    # Windows\System32\config\SYSTEM for Windows (an NTFS volume alone is a data disk).
    family = "linux" if release is not None else (
        "windows" if target.os_family == "windows" else None)
    loaders = None
    esp = next((p for p in layout.partitions if p.type_name == "efi"), None)
    if esp is not None:
        loaders = _loaders(name, esp, notes)
    return DiskProbe(name, size, format_name, None, layout.scheme, layout.partitions, family,
                     release.id if release else None,
                     release.pretty_name if release else windows_name, loaders, tuple(notes))


def _windows_name(target: ImageTarget, notes: list[str]) -> str | None:
    """The registry's ProductName (``Windows Server 2022 Datacenter``), or None with a note."""
    from vmimage.facts.windows.system import product, read_system_hives

    try:
        return product(read_system_hives(target)[1]).name
    except (OSError, VmimageError) as exc:
        notes.append(f"the Windows registry cannot be read: {exc}")
        return None


def _loaders(name: str, esp: Partition, notes: list[str]) -> tuple[str, ...] | None:
    """The UEFI loaders on the ESP, or None (with a note) when it cannot be read as FAT."""
    from vmimage.disk.inspect import open_disk
    from vmimage.offer.esp import FatError, efi_loaders

    _, source = open_disk(name)
    try:
        def read(offset: int, length: int) -> bytes:
            if offset < 0 or offset >= esp.size:
                return b""
            return source.read(esp.start + offset, min(length, esp.size - offset))

        return tuple(efi_loaders(read))
    except (FatError, OSError, ValueError, struct.error) as exc:
        notes.append(f"EFI system partition {esp.name}: not read as FAT ({exc})")
        return None
    finally:
        source.close()
