"""GPT headers: enough to find them, check them, and move the backup when a disk grows.

Growing a disk leaves the GPT's backup header in the middle of it (rulings), where firmware
and ``sfdisk --verify`` complain. We move it to the new last sector as ``sgdisk -e`` does.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, replace

SECTOR = 512
SIGNATURE = b"EFI PART"
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")


@dataclass(frozen=True)
class GptHeader:
    """The fields of a GPT header (primary at LBA 1, backup at the last LBA)."""

    signature: bytes
    revision: int
    header_size: int
    header_crc: int
    reserved: int
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: bytes
    entries_lba: int
    num_entries: int
    entry_size: int
    entries_crc: int

    @classmethod
    def unpack(cls, sector: bytes) -> GptHeader | None:
        """Decode a header, or None when the sector holds none."""
        if sector[:8] != SIGNATURE:
            return None
        return cls(*_HEADER.unpack(sector[:_HEADER.size]))

    def pack(self) -> bytes:
        """The header sector, CRC computed, padded with zeros to 512 bytes."""
        raw = _HEADER.pack(*(replace(self, header_crc=0).__dict__.values()))
        crc = zlib.crc32(raw[:self.header_size])
        return _HEADER.pack(*(replace(self, header_crc=crc).__dict__.values())).ljust(SECTOR,
                                                                                       b"\0")

    @property
    def crc_ok(self) -> bool:
        """Whether the stored header CRC matches."""
        raw = _HEADER.pack(*(replace(self, header_crc=0).__dict__.values()))
        return zlib.crc32(raw[:self.header_size]) == self.header_crc

    @property
    def entries_sectors(self) -> int:
        """Sectors the partition entry array occupies."""
        return -(-(self.num_entries * self.entry_size) // SECTOR)


def _update_protective_mbr(fd: int, total_sectors: int) -> None:
    mbr = bytearray(os.pread(fd, SECTOR, 0))
    if mbr[510:512] != b"\x55\xaa" or mbr[446 + 4] != 0xEE:
        return
    struct.pack_into("<I", mbr, 446 + 12, min(total_sectors - 1, 0xFFFFFFFF))
    os.pwrite(fd, bytes(mbr), 0)


def relocate_backup(fd: int, old_size: int, new_size: int) -> bool:
    """Move the backup GPT from the end of a disk of ``old_size`` to the end of ``new_size``.

    Returns False when the disk has no GPT, or its backup is not where a GPT keeps it.
    """
    primary = GptHeader.unpack(os.pread(fd, SECTOR, SECTOR))
    old_last, new_last = old_size // SECTOR - 1, new_size // SECTOR - 1
    if primary is None or primary.alternate_lba != old_last:
        return False
    entries = os.pread(fd, primary.num_entries * primary.entry_size, primary.entries_lba * SECTOR)
    new_entries_lba = new_last - primary.entries_sectors
    backup = replace(primary, my_lba=new_last, alternate_lba=1, entries_lba=new_entries_lba,
                     last_usable_lba=new_entries_lba - 1)
    os.pwrite(fd, entries, new_entries_lba * SECTOR)
    os.pwrite(fd, backup.pack(), new_last * SECTOR)
    os.pwrite(fd, replace(primary, alternate_lba=new_last,
                          last_usable_lba=new_entries_lba - 1).pack(), SECTOR)
    old_entries_lba = old_last - primary.entries_sectors
    os.pwrite(fd, bytes((primary.entries_sectors + 1) * SECTOR), old_entries_lba * SECTOR)
    _update_protective_mbr(fd, new_size // SECTOR)
    return True
