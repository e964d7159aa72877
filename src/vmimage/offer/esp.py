"""Find UEFI loaders on an EFI system partition: just enough FAT to list ``/EFI/*/*.EFI``.

A Gen2 (UEFI) image needs GPT, an EFI system partition and a UEFI loader on it (rulings). The
libyal bindings vmimage uses read ext and XFS, not FAT, so this module reads the FAT12/16/32
directory tree itself: the boot sector, the FAT, and the directories ``/EFI`` and its
subdirectories, a few kilobytes in all. Short (8.3) names are enough: every loader name
(``BOOTX64.EFI``, ``grubx64.efi``, ``shimx64.efi``) fits 8.3 and FAT stores a short name for
every file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Read = Callable[[int, int], bytes]  # (offset, length) -> bytes, offsets on the partition

_ATTR_DIR = 0x10
_ATTR_VOLUME = 0x08
_ATTR_LFN = 0x0F
_MAX_DIRECTORY_BYTES = 4 * 1024 * 1024  # no ESP directory is this big: stops a FAT loop


class FatError(Exception):
    """The partition does not hold a FAT filesystem this reader understands."""


class _Fat:
    def __init__(self, read: Read) -> None:
        self.read = read
        boot = read(0, 512)
        if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
            raise FatError("no FAT boot sector")
        (self.sector, self.per_cluster, self.reserved, self.fats, self.root_entries,
         total16, _media, fat16) = struct.unpack_from("<HBHBHHBH", boot, 11)
        if self.sector not in (512, 1024, 2048, 4096) or self.per_cluster == 0 or \
                self.fats == 0:
            raise FatError("not a FAT boot sector")
        total32, fat32, self.root_cluster = struct.unpack_from("<II4xI", boot, 32)
        fat_sectors = fat16 or fat32
        total = total16 or total32
        self.fat_offset = self.reserved * self.sector
        root_sectors = (self.root_entries * 32 + self.sector - 1) // self.sector
        self.root_offset = (self.reserved + self.fats * fat_sectors) * self.sector
        self.data_offset = self.root_offset + root_sectors * self.sector
        data_sectors = total - (self.reserved + self.fats * fat_sectors + root_sectors)
        clusters = data_sectors // self.per_cluster
        self.kind = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
        self.cluster_bytes = self.sector * self.per_cluster
        if self.kind == 32 and self.root_cluster < 2:
            raise FatError("FAT32 root directory cluster is invalid")

    def _next_cluster(self, cluster: int) -> int | None:
        if self.kind == 32:
            raw = self.read(self.fat_offset + cluster * 4, 4)
            value = struct.unpack("<I", raw)[0] & 0x0FFFFFFF if len(raw) == 4 else 0x0FFFFFFF
            return None if value >= 0x0FFFFFF8 or value < 2 else value
        if self.kind == 16:
            raw = self.read(self.fat_offset + cluster * 2, 2)
            value = struct.unpack("<H", raw)[0] if len(raw) == 2 else 0xFFFF
            return None if value >= 0xFFF8 or value < 2 else value
        raw = self.read(self.fat_offset + cluster * 3 // 2, 2)
        value = struct.unpack("<H", raw)[0] if len(raw) == 2 else 0xFFFF
        value = value >> 4 if cluster & 1 else value & 0x0FFF
        return None if value >= 0xFF8 or value < 2 else value

    def _chain(self, first: int) -> bytes:
        out = bytearray()
        cluster: int | None = first
        while cluster is not None and len(out) < _MAX_DIRECTORY_BYTES:
            out += self.read(self.data_offset + (cluster - 2) * self.cluster_bytes,
                             self.cluster_bytes)
            cluster = self._next_cluster(cluster)
        return bytes(out)

    def root(self) -> bytes:
        if self.kind == 32:
            return self._chain(self.root_cluster)
        return self.read(self.root_offset, self.root_entries * 32)

    def entries(self, raw: bytes) -> list[tuple[str, bool, int]]:
        """(8.3 name as ``NAME.EXT``, is a directory, first cluster) for each entry."""
        out = []
        for pos in range(0, len(raw) - 31, 32):
            entry = raw[pos:pos + 32]
            if entry[0] == 0:
                break
            attr = entry[11]
            if entry[0] == 0xE5 or attr == _ATTR_LFN or attr & _ATTR_VOLUME:
                continue
            base = entry[0:8].decode("latin-1").rstrip()
            ext = entry[8:11].decode("latin-1").rstrip()
            name = f"{base}.{ext}" if ext else base
            hi, lo = struct.unpack_from("<H", entry, 20)[0], struct.unpack_from("<H", entry,
                                                                                26)[0]
            out.append((name.upper(), bool(attr & _ATTR_DIR), (hi << 16 | lo)
                        if self.kind == 32 else lo))
        return out

    def directory(self, cluster: int) -> list[tuple[str, bool, int]]:
        return self.entries(self.root() if cluster == 0 else self._chain(cluster))


def efi_loaders(read: Read) -> list[str]:
    """Paths of ``*.EFI`` files in ``/EFI/<dir>/`` (upper case, e.g. ``/EFI/BOOT/BOOTX64.EFI``).

    Raises:
        FatError: not a FAT filesystem.
    """
    fat = _Fat(read)
    found = []
    efi = next((c for n, d, c in fat.entries(fat.root()) if d and n == "EFI"), None)
    if efi is None or efi < 2:
        return []
    for name, is_dir, cluster in fat.directory(efi):
        if not is_dir or name in (".", "..") or cluster < 2:
            continue
        found += [f"/EFI/{name}/{file}" for file, sub_dir, _ in fat.directory(cluster)
                  if not sub_dir and file.endswith(".EFI")]
    return sorted(found)
