"""GPT headers: find them, validate them, and move the backup when a disk grows.

Growing a disk leaves the GPT's backup header in the middle of it (rulings), where firmware
and ``sfdisk --verify`` complain. We move it to the new last sector as ``sgdisk -e`` does.

Moving it means writing inside the disk, where the partitions are, so nothing is written
unless both copies of the table are valid the way the UEFI specification (§5.3.2) and
util-linux judge them: signature, header size and CRC, where each header says it is, entry
size, the entry array's CRC, and every structure inside the disk and outside the usable area.
A header that merely *claims* a huge entry array once made ``resize`` zero 32 MiB of an ext4
root (issue 17): the sizes come from the disk, so they are bounded before any arithmetic.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

SECTOR = 512
SIGNATURE = b"EFI PART"
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
#: The smallest header (revision 1.0); a larger one is zero-padded up to the sector.
MIN_HEADER_SIZE = _HEADER.size
#: The primary entry array lives between LBA 2 and the first partition, which Azure wants at
#: LBA 2048: it cannot need more than this, and the bound keeps every size small.
MAX_ENTRIES_BYTES = 1024 * 1024

Read = Callable[[int, int], bytes]


class GptError(ValueError):
    """A GPT that is present but not valid; the message says which part and why."""


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
        if sector[:8] != SIGNATURE or len(sector) < _HEADER.size:
            return None
        return cls(*_HEADER.unpack(sector[:_HEADER.size]))

    def pack(self) -> bytes:
        """The header sector, CRC computed over ``header_size`` bytes, padded to 512 bytes."""
        size = min(max(self.header_size, MIN_HEADER_SIZE), SECTOR)
        raw = _HEADER.pack(*(replace(self, header_crc=0).__dict__.values())).ljust(size, b"\0")
        crc = zlib.crc32(raw[:size])
        return _HEADER.pack(*(replace(self, header_crc=crc).__dict__.values())).ljust(SECTOR,
                                                                                       b"\0")

    @property
    def crc_ok(self) -> bool:
        """Whether the stored header CRC matches (the bytes past the fields taken as zeros)."""
        if not MIN_HEADER_SIZE <= self.header_size <= SECTOR:
            return False
        raw = _HEADER.pack(*(replace(self, header_crc=0).__dict__.values()))
        return zlib.crc32(raw.ljust(self.header_size, b"\0")[:self.header_size]) == self.header_crc

    @property
    def entries_bytes(self) -> int:
        """Bytes of the partition entry array."""
        return self.num_entries * self.entry_size

    @property
    def entries_sectors(self) -> int:
        """Sectors the partition entry array occupies."""
        return -(-(self.num_entries * self.entry_size) // SECTOR)


@dataclass(frozen=True)
class Gpt:
    """A validated GPT: both headers and the entry array they share."""

    primary: GptHeader
    backup: GptHeader
    entries: bytes


def _header_problem(sector: bytes, header: GptHeader, lba: int, total: int) -> str | None:
    """Why the header read at ``lba`` of a disk of ``total`` sectors is not valid, or None."""
    if not MIN_HEADER_SIZE <= header.header_size <= SECTOR:
        return f"header size {header.header_size} is not between {MIN_HEADER_SIZE} and {SECTOR}"
    stored = struct.unpack_from("<I", sector, 16)[0]
    zeroed = sector[:16] + bytes(4) + sector[20:header.header_size]
    if zlib.crc32(zeroed) != stored:
        return "header CRC is wrong"
    if header.my_lba != lba:
        return f"header says it is at LBA {header.my_lba}, found at LBA {lba}"
    size = header.entry_size
    if size < 128 or size > 4096 or size & (size - 1):
        return f"entry size {size} is not 128 times a power of two up to 4096"
    if header.num_entries == 0 or header.entries_bytes > MAX_ENTRIES_BYTES:
        return (f"{header.num_entries} entries of {size} bytes: the entry array must hold "
                f"1 byte to {MAX_ENTRIES_BYTES} bytes")
    if not 2 <= header.first_usable_lba <= header.last_usable_lba < total - 1:
        return (f"usable LBAs {header.first_usable_lba}-{header.last_usable_lba} do not fit a "
                f"disk of {total} sectors")
    if not 0 < header.alternate_lba < total or header.alternate_lba == lba:
        return f"alternate header LBA {header.alternate_lba} is not another sector of the disk"
    start, end = header.entries_lba, header.entries_lba + header.entries_sectors
    outside_usable = end <= header.first_usable_lba or start > header.last_usable_lba
    if start < 2 or end > total or not outside_usable or start <= lba < end:
        return (f"entry array at LBA {start}-{end - 1} overlaps the partitions or the header, "
                "or lies outside the disk")
    return None


def _read_header(read: Read, lba: int, total: int, which: str) -> GptHeader:
    sector = read(lba * SECTOR, SECTOR)
    header = GptHeader.unpack(sector) if len(sector) == SECTOR else None
    if header is None:
        raise GptError(f"the {which} GPT header (LBA {lba}) is missing")
    problem = _header_problem(sector, header, lba, total)
    if problem:
        raise GptError(f"the {which} GPT header (LBA {lba}) is invalid: {problem}")
    return header


def _read_entries(read: Read, header: GptHeader, which: str) -> bytes:
    raw = read(header.entries_lba * SECTOR, header.entries_bytes)
    if len(raw) != header.entries_bytes or zlib.crc32(raw) != header.entries_crc:
        raise GptError(f"the {which} GPT's partition entries fail their CRC")
    return raw


def _check_partitions(gpt: Gpt) -> None:
    """Every used entry lies in the usable area: then no GPT structure we move covers data."""
    h = gpt.primary
    for index in range(h.num_entries):
        entry = gpt.entries[index * h.entry_size:index * h.entry_size + 48]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        if not h.first_usable_lba <= first <= last <= h.last_usable_lba:
            raise GptError(f"GPT partition {index + 1} (LBA {first}-{last}) lies outside the "
                           f"usable LBAs {h.first_usable_lba}-{h.last_usable_lba}")


def has_gpt(read: Read, disk_size: int) -> bool:
    """Whether either GPT header's signature is where a GPT keeps it (valid or not)."""
    last = disk_size // SECTOR - 1
    return any(read(lba * SECTOR, 8) == SIGNATURE for lba in (1, last) if lba > 0)


def read_gpt(read: Read, disk_size: int) -> Gpt:
    """Both copies of the GPT of a disk of ``disk_size`` bytes, validated and agreeing.

    ``read(offset, length)`` returns the disk's bytes there (short at the end).

    Raises:
        GptError: a header or entry array is missing or invalid, or the copies disagree.
    """
    total = disk_size // SECTOR
    if total < 4:
        raise GptError(f"a disk of {total} sectors cannot hold a GPT")
    primary = _read_header(read, 1, total, "primary")
    backup = _read_header(read, primary.alternate_lba, total, "backup")
    entries = _read_entries(read, primary, "primary")
    backup_entries = _read_entries(read, backup, "backup")
    same = ("first_usable_lba", "last_usable_lba", "disk_guid", "num_entries", "entry_size",
            "entries_crc")
    differ = [n for n in same if getattr(primary, n) != getattr(backup, n)]
    if differ or backup.alternate_lba != 1 or backup_entries != entries:
        what = ", ".join(differ) or "alternate LBA or entries"
        raise GptError(f"the primary and backup GPT disagree ({what})")
    gpt = Gpt(primary, backup, entries)
    _check_partitions(gpt)
    return gpt


@dataclass(frozen=True)
class Write:
    """Bytes to put at a disk offset."""

    offset: int
    data: bytes


def relocation(gpt: Gpt, old_size: int, new_size: int) -> list[Write]:
    """The writes that move the backup GPT of a validated table from the end of a disk of
    ``old_size`` bytes to the end of ``new_size``, and update the protective MBR's size.

    Empty when the backup is not at the old end (nothing of ours to move). The old backup's
    header and array are zeroed: they lie outside the usable area, so no partition loses data.
    """
    primary, backup = gpt.primary, gpt.backup
    old_last, new_last = old_size // SECTOR - 1, new_size // SECTOR - 1
    if backup.my_lba != old_last or new_last <= old_last:
        return []
    new_entries_lba = new_last - primary.entries_sectors
    last_usable = new_entries_lba - 1
    moved = replace(backup, my_lba=new_last, entries_lba=new_entries_lba,
                    last_usable_lba=last_usable)
    return [
        Write(new_entries_lba * SECTOR, gpt.entries),
        Write(new_last * SECTOR, moved.pack()),
        Write(SECTOR, replace(primary, alternate_lba=new_last,
                              last_usable_lba=last_usable).pack()),
        Write(backup.entries_lba * SECTOR, bytes(backup.entries_sectors * SECTOR)),
        Write(old_last * SECTOR, bytes(SECTOR)),
    ]


def protective_mbr(read: Read, total_sectors: int) -> list[Write]:
    """The write that makes a protective MBR cover a disk of ``total_sectors``, if it has one."""
    mbr = bytearray(read(0, SECTOR))
    if len(mbr) != SECTOR or mbr[510:512] != b"\x55\xaa" or mbr[446 + 4] != 0xEE:
        return []
    struct.pack_into("<I", mbr, 446 + 12, min(total_sectors - 1, 0xFFFFFFFF))
    return [Write(0, bytes(mbr))]


def fd_reader(fd: int) -> Read:
    """``read(offset, length)`` over a file descriptor."""
    return lambda offset, length: os.pread(fd, length, offset)
