"""Find UEFI loaders on an EFI system partition: ``/EFI/*/*.EFI``.

A Gen2 (UEFI) image needs GPT, an EFI system partition and a UEFI loader on it (rulings). The
partition is read by the one FAT reader, :class:`vmimage.targets.fat.FatVolume`, the same that
mounts ``/boot/efi`` inside an image target; this module only lists what it finds there.
"""

from __future__ import annotations

import stat

from vmimage.targets.fat import FatEntry, FatVolume, Read

__all__ = ["FatError", "Read", "efi_loaders"]


class FatError(Exception):
    """The partition does not hold a FAT filesystem the reader understands."""


def _children(entry: FatEntry) -> list[FatEntry]:
    return [entry.get_sub_file_entry(i) for i in range(entry.get_number_of_sub_file_entries())]


def _is_dir(entry: FatEntry) -> bool:
    return stat.S_ISDIR(entry.get_file_mode())


def efi_loaders(read: Read) -> list[str]:
    """Paths of ``*.EFI`` files in ``/EFI/<dir>/``, upper case as firmware compares them
    (``/EFI/BOOT/BOOTX64.EFI``).

    Raises:
        FatError: not a FAT filesystem, or a damaged one.
    """
    try:
        efi = FatVolume(read).get_file_entry_by_path("/EFI")
        if efi is None or not _is_dir(efi):
            return []
        found = []
        for vendor in _children(efi):
            name = vendor.get_name() or ""
            if not _is_dir(vendor) or name in (".", ".."):
                continue
            found += [f"/EFI/{name.upper()}/{(f.get_name() or '').upper()}"
                      for f in _children(vendor)
                      if not _is_dir(f) and (f.get_name() or "").upper().endswith(".EFI")]
    except OSError as exc:
        raise FatError(str(exc)) from None
    return sorted(found)
