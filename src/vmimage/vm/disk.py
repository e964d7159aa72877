"""What to boot: the image's qemu format and the firmware its own boot loader needs.

Decided from the disk, read by vmimage's own readers (never by booting and seeing): an MBR
disk boots with BIOS (SeaBIOS); a GPT disk with a BIOS-boot partition boots with BIOS too (GRUB's
core image lives there); a GPT disk with an EFI system partition and no BIOS-boot partition
boots with UEFI (OVMF). qcow2, VHDX and VMDK are refused with the command that converts them:
what Azure receives is a fixed VHD, so that is what is booted.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmimage.disk.inspect import FORMAT_NAMES, RAW, VHD_DYNAMIC, VHD_FIXED, open_disk
from vmimage.errors import InputError
from vmimage.targets.partitions import read_table

#: vmimage's format name -> qemu's (a fixed VHD must be named ``vpc``: qemu probes it as raw).
QEMU_FORMATS = {RAW: "raw", VHD_FIXED: "vpc", VHD_DYNAMIC: "vpc"}


@dataclass(frozen=True)
class BootDisk:
    """An image as qemu is to boot it."""

    path: str
    format: str  # vmimage's: "raw", "vhd-fixed", "vhd-dynamic"
    qemu_format: str  # "raw" or "vpc"
    firmware: str  # "bios" or "uefi"
    scheme: str  # "mbr" or "gpt"
    virtual_size: int

    @property
    def mountable(self) -> bool:
        """The virtual disk is the file's bytes (raw, fixed VHD): its filesystems can be
        loop-mounted at offsets to inject a key."""
        return self.format in (RAW, VHD_FIXED)


def firmware_for(scheme: str, types: list[str]) -> str:
    """``bios`` or ``uefi`` from the partition scheme and the partition type names.

    Raises:
        ValueError: nothing on the disk can boot (no table, or a GPT with neither a BIOS-boot
            nor an EFI system partition); the message says why.
    """
    if scheme == "mbr":
        return "bios"
    if scheme == "gpt":
        if "bios-boot" in types:
            return "bios"
        if "efi" in types:
            return "uefi"
        raise ValueError("its GPT has neither a BIOS-boot nor an EFI system partition: "
                         "no boot loader to start")
    raise ValueError("it has no partition table: no boot loader to start")


def describe(path: str) -> BootDisk:
    """Inspect ``path`` and decide how to boot it.

    Raises:
        InputError: not a disk image vmimage reads, a format qemu should not boot from here
            (qcow2, VHDX, VMDK: convert first), or nothing bootable on it.
    """
    info, source = open_disk(path)
    try:
        if info.format not in QEMU_FORMATS:
            raise InputError(path, f"is a {FORMAT_NAMES[info.format]}: vm boot starts raw and "
                                   "VHD images, as Azure receives them; convert it first "
                                   f"(vmimage vhd convert {path} OUT.vhd)")
        table = read_table(source, info.virtual_size)
    finally:
        source.close()
    try:
        firmware = firmware_for(table.scheme, [v.part.type_name for v in table.volumes])
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    return BootDisk(path, info.format, QEMU_FORMATS[info.format], firmware, table.scheme,
                    info.virtual_size)
