"""Partition tables (MBR with logical partitions, GPT), and what lies in the disk's first MiB.

``libvsmbr`` has no wheel, and a GPT is two small structures: both are parsed here, from the
few sectors that hold them, so opening a 30 GiB disk reads a few kilobytes. Each partition's
content is identified by signature (:mod:`vmimage.targets.signatures`), not by its type.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field

from vmimage.disk.gpt import GptHeader
from vmimage.disk.sources import FileWindow, Reader
from vmimage.targets import signatures
from vmimage.targets.base import Partition

SECTOR = 512
FIRST_MIB_SECTORS = 2048
_EXTENDED = (0x05, 0x0F, 0x85)
_MAX_LOGICAL = 128
_MBR_TYPES = {
    0x83: "linux", 0x82: "swap", 0x8E: "lvm", 0xEF: "efi", 0xEE: "gpt-protective",
    0xFD: "raid", 0x07: "microsoft", 0x27: "windows-recovery", 0x01: "fat", 0x04: "fat",
    0x06: "fat", 0x0B: "fat", 0x0C: "fat", 0x0E: "fat", 0x05: "extended", 0x0F: "extended",
    0x85: "extended",
}
_GPT_TYPES = {
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "efi",
    "21686148-6449-6E6F-744E-656564454649": "bios-boot",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "linux",
    "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "linux-root",
    "44479540-F297-41B2-9AF7-D131D5F0458A": "linux-root",
    "BC13C2FF-59E6-4262-A352-B275FD6F7172": "xbootldr",
    "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "linux-home",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "swap",
    "E6D6D379-F507-44C2-A23C-238F2A3DF928": "lvm",
    "A19D880F-05FC-4D3B-A006-743F0F84911E": "raid",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "microsoft",
    "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "microsoft-reserved",
    "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "windows-recovery",
}
_GPT_LEGACY_BOOTABLE = 1 << 2
#: Bounds on a GPT's entry array: real tables hold 128 entries of 128 bytes (16 KiB).
GPT_MAX_ENTRIES = 4096
GPT_MAX_ARRAY = 1024 * 1024


@dataclass
class Volume:
    """A partition or logical volume: its public :class:`Partition` and how to read it.

    ``partuuid``, ``partlabel`` and ``number`` exist only to match fstab's ``PARTUUID=``,
    ``PARTLABEL=`` and ``/dev/sda2``; ``devices`` holds other device names (``/dev/mapper/...``).
    """

    part: Partition
    window: FileWindow
    partuuid: str = ""
    partlabel: str = ""
    number: int | None = None
    devices: tuple[str, ...] = ()


@dataclass
class Table:
    """What the partition table says: its scheme, the volumes, and the GPT header if any."""

    scheme: str
    volumes: list[Volume] = field(default_factory=list)
    gpt: GptHeader | None = None
    notes: list[str] = field(default_factory=list)


def _volume(reader: Reader, disk_size: int, name: str, start: int, size: int, scheme: str,
            type_id: str, type_name: str, bootable: bool, notes: list[str], partuuid: str = "",
            partlabel: str = "", number: int | None = None) -> Volume:
    """Probe the content and build the volume; a partition past the disk's end is cut short."""
    if start + size > disk_size:
        notes.append(f"{name}: ends at byte {start + size}, past the end of the disk "
                     f"({disk_size} bytes)")
        size = max(0, disk_size - start)
    window = FileWindow(reader, start, size)
    sig = signatures.probe(window) if type_name != "extended" else signatures.Signature("unknown")
    part = Partition(name, start, size, scheme, type_id, type_name, sig.fs_type, sig.label,
                     sig.uuid, None, bootable)
    return Volume(part, window, partuuid, partlabel, number)


# ---- MBR -------------------------------------------------------------------------------------

def _mbr_entries(sector: bytes) -> list[tuple[int, int, int, int]]:
    """(status, type, first LBA, sector count) of the four entries."""
    return [struct.unpack_from("<B3xB3xII", sector, 446 + 16 * i) for i in range(4)]


def _looks_like_mbr(sector: bytes, sectors: int) -> bool:
    if sector[510:512] != b"\x55\xaa" or signatures.whole_disk_boot_sector(sector):
        return False
    entries = [e for e in _mbr_entries(sector) if e[1] and e[3]]
    return bool(entries) and all(status in (0, 0x80) and 0 < lba < sectors
                                 for status, _, lba, _ in entries)


def _read_mbr(reader: Reader, disk_size: int, sector: bytes) -> Table:
    table = Table("mbr")
    (disk_id,) = struct.unpack_from("<I", sector, 440)
    for index, (status, ptype, lba, count) in enumerate(_mbr_entries(sector), start=1):
        if not ptype or not count:
            continue
        table.volumes.append(_mbr_volume(reader, disk_size, index, status, ptype, lba, count,
                                         disk_id, table.notes))
        if ptype in _EXTENDED:
            _read_logical(reader, disk_size, lba, disk_id, table)
    return table


def _mbr_volume(reader: Reader, disk_size: int, number: int, status: int, ptype: int,
                lba: int, count: int, disk_id: int, notes: list[str]) -> Volume:
    return _volume(reader, disk_size, f"p{number}", lba * SECTOR, count * SECTOR, "mbr",
                   f"0x{ptype:02x}", _MBR_TYPES.get(ptype, "unknown"), status == 0x80, notes,
                   partuuid=f"{disk_id:08x}-{number:02x}", number=number)


def _read_logical(reader: Reader, disk_size: int, ext_lba: int, disk_id: int,
                  table: Table) -> None:
    """Follow the chain of extended boot records; logical partitions are numbered from 5."""
    ebr_lba, number = ext_lba, 5
    seen: set[int] = set()
    while ebr_lba not in seen and len(seen) < _MAX_LOGICAL:
        seen.add(ebr_lba)
        ebr = reader.read(ebr_lba * SECTOR, SECTOR)
        if len(ebr) < SECTOR or ebr[510:512] != b"\x55\xaa":
            table.notes.append(f"extended partition: no boot record at sector {ebr_lba}")
            return
        entries = _mbr_entries(ebr)
        status, ptype, lba, count = entries[0]
        if ptype and count:
            table.volumes.append(_mbr_volume(reader, disk_size, number, status, ptype,
                                             ebr_lba + lba, count, disk_id, table.notes))
            number += 1
        _, next_type, next_lba, _ = entries[1]
        if next_type not in _EXTENDED or not next_lba:
            return
        ebr_lba = ext_lba + next_lba
    table.notes.append("extended partition: the chain of boot records loops; stopped")


# ---- GPT -------------------------------------------------------------------------------------

def _gpt_problem(header: GptHeader, lba: int, disk_sectors: int) -> str | None:
    """Why a GPT header cannot be used, or None: every size is checked before it is trusted.

    The UEFI specification's rules: a header of 92 to 512 bytes with a good CRC at the LBA it
    names; entries of 128 x 2^n bytes (a hostile 8 or 16 would make every entry shorter than
    the fields read from it); an entry array that fits on the disk, outside the header, and
    within :data:`GPT_MAX_ARRAY` bytes (a real one is 16 KiB).
    """
    if not 92 <= header.header_size <= SECTOR or not header.crc_ok or header.my_lba != lba:
        return "bad header size, CRC or location"
    size = header.entry_size
    if size < 128 or size > 4096 or size & (size - 1):
        return f"partition entry size {size} is not 128 x 2^n"
    if not 0 < header.num_entries <= GPT_MAX_ENTRIES:
        return f"{header.num_entries} partition entries (at most {GPT_MAX_ENTRIES})"
    array = header.num_entries * size
    if array > GPT_MAX_ARRAY:
        return f"a partition entry array of {array} bytes (at most {GPT_MAX_ARRAY})"
    first, sectors = header.entries_lba, header.entries_sectors
    if first < 2 or first + sectors > disk_sectors or first <= lba < first + sectors:
        return (f"the partition entry array (LBA {first}, {sectors} sectors) lies outside the "
                f"disk ({disk_sectors} sectors) or over its header")
    return None


def _gpt_header(reader: Reader, lba: int, disk_sectors: int,
                notes: list[str]) -> GptHeader | None:
    """The GPT header at ``lba`` when it is whole and its sizes are sane, else None (with a
    note saying why when a header is there at all)."""
    if not 0 < lba < disk_sectors:
        return None
    header = GptHeader.unpack(reader.read(lba * SECTOR, SECTOR).ljust(SECTOR, b"\0"))
    if header is None:
        return None
    problem = _gpt_problem(header, lba, disk_sectors)
    if problem is not None:
        notes.append(f"GPT header at LBA {lba} ignored: {problem}")
        return None
    return header


def _gpt_entries(reader: Reader, header: GptHeader) -> bytes | None:
    raw = reader.read(header.entries_lba * SECTOR, header.num_entries * header.entry_size)
    if len(raw) != header.num_entries * header.entry_size:
        return None
    return raw if zlib.crc32(raw) == header.entries_crc else None


def _read_gpt(reader: Reader, disk_size: int, notes: list[str]) -> Table | None:
    disk_sectors = disk_size // SECTOR
    primary = _gpt_header(reader, 1, disk_sectors, notes)
    header, raw = primary, _gpt_entries(reader, primary) if primary else None
    if raw is None:
        backup = _gpt_header(reader, disk_sectors - 1, disk_sectors, notes)
        raw = _gpt_entries(reader, backup) if backup else None
        if raw is None or backup is None:
            if primary is not None:
                notes.append("GPT: the partition entries fail their CRC in both copies")
            return None
        notes.append("GPT: the primary header or table is damaged; read the backup")
        header = backup
    assert header is not None
    table = Table("gpt", gpt=primary, notes=notes)
    for index in range(header.num_entries):
        entry = raw[index * header.entry_size:(index + 1) * header.entry_size]
        type_guid = uuid.UUID(bytes_le=entry[:16])
        if type_guid.int == 0:
            continue
        first, last, attributes = struct.unpack_from("<QQQ", entry, 32)
        if last < first or first >= disk_sectors:
            table.notes.append(f"p{index + 1}: GPT entry ends (LBA {last}) before it starts "
                               f"(LBA {first}) or starts past the end of the disk; ignored")
            continue
        type_id = str(type_guid).upper()
        name = entry[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        table.volumes.append(_volume(
            reader, disk_size, f"p{index + 1}", first * SECTOR, (last - first + 1) * SECTOR,
            "gpt", type_id, _GPT_TYPES.get(type_id, "unknown"),
            bool(attributes & _GPT_LEGACY_BOOTABLE), table.notes,
            partuuid=str(uuid.UUID(bytes_le=entry[16:32])), partlabel=name, number=index + 1))
    return table


# ---- the whole table -------------------------------------------------------------------------

def read_table(reader: Reader, disk_size: int) -> Table:
    """The disk's partitions: GPT, else MBR, else one filesystem on the whole disk."""
    notes: list[str] = []
    mbr = reader.read(0, SECTOR)
    protective = _looks_like_mbr(mbr, disk_size // SECTOR) and any(
        ptype == 0xEE for _, ptype, _, _ in _mbr_entries(mbr))
    gpt = _read_gpt(reader, disk_size, notes)
    if gpt is not None:
        if not protective:
            gpt.notes.append("GPT without a protective MBR")
        return gpt
    if protective:
        notes.append("protective MBR but no valid GPT")
        return Table("none", notes=notes)
    if _looks_like_mbr(mbr, disk_size // SECTOR):
        table = _read_mbr(reader, disk_size, mbr)
        table.notes[:0] = notes
        return table
    whole = _volume(reader, disk_size, "disk", 0, disk_size, "none", "", "disk", False, notes)
    table = Table("none", notes=notes)
    if whole.part.fs_type != "unknown":
        table.volumes.append(whole)
    else:
        notes.append("no partition table and no filesystem on the whole disk")
    return table


def first_mib(reader: Reader, disk_size: int, gpt: GptHeader | None
              ) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Data in LBA 0-2047 outside the MBR and GPT structures, and whether the MBR holds code.

    Returns ``(start, end)`` byte ranges (end exclusive), each from its first non-zero byte to
    just past its last, split where a whole zero sector lies between; and whether bytes 0-439
    (the MBR's boot code area) are not all zero. The MBR sector itself is never in the ranges;
    the GPT header and its partition entries are left out only where they lie in LBA 1-33, as
    the rule allows.
    """
    data = reader.read(0, min(FIRST_MIB_SECTORS * SECTOR, disk_size))
    allowed = {0}
    if gpt is not None:
        entries = range(gpt.entries_lba, gpt.entries_lba + gpt.entries_sectors)
        allowed |= {lba for lba in (1, *entries) if 1 <= lba <= 33}
    zero = bytes(SECTOR)
    busy = [lba for lba in range(len(data) // SECTOR)
            if lba not in allowed and data[lba * SECTOR:(lba + 1) * SECTOR] != zero]
    ranges: list[tuple[int, int]] = []
    run: list[int] = []
    for lba in [*busy, -2]:
        if run and lba != run[-1] + 1:
            first = data[run[0] * SECTOR:(run[0] + 1) * SECTOR]
            last = data[run[-1] * SECTOR:(run[-1] + 1) * SECTOR]
            start = run[0] * SECTOR + (len(first) - len(first.lstrip(b"\0")))
            end = run[-1] * SECTOR + len(last.rstrip(b"\0"))
            ranges.append((start, end))
            run = []
        run.append(lba)
    return tuple(ranges), any(data[:440])
