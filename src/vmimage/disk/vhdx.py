"""The VHDX format: headers, region table, metadata and BAT, decoded to judge a file.

Written from Microsoft's "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format" (v1.0). libvhdi
reads a VHDX's data for us, but it judges nothing up front (measured with libvhdi 20260901):

- it ignores the log, so a VHDX whose log was never replayed (a crash, a host that lost power)
  reads as the blocks were *before* the logged writes: stale data, silently;
- it opens a file cut short, and fails only when a read reaches the missing part, with a
  libyal error in the middle of a copy (``inspect`` called such a file healthy);
- it opens a differencing VHDX without its parent (its disk type says so; reads then fail).

So vmimage decodes the structures itself, to refuse such files with one line before reading
any data. All fields are little-endian; GUIDs are stored in Microsoft's mixed-endian layout
(``uuid.UUID(bytes_le=)``).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

KiB, MiB = 1024, 1024**2

SIGNATURE = b"vhdxfile"
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
REGION_TABLE_OFFSETS = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
METADATA_TABLE_SIZE = 64 * KiB
#: The file identifier, both headers and both region tables: the least a VHDX can hold.
FIXED_AREA = 1 * MiB

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")

#: BAT entry states (the low 3 bits). A payload block holds data in the file only when
#: FULLY_PRESENT or PARTIALLY_PRESENT (the latter only in a differencing disk).
PAYLOAD_NOT_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_ZERO, PAYLOAD_UNMAPPED = 0, 1, 2, 3
PAYLOAD_FULLY_PRESENT, PAYLOAD_PARTIALLY_PRESENT = 6, 7
SB_BLOCK_PRESENT = 6
_PRESENT = (PAYLOAD_FULLY_PRESENT, PAYLOAD_PARTIALLY_PRESENT)

_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
_REGION_HEADER = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")
_METADATA_HEADER = struct.Struct("<8sHH20s")
_METADATA_ENTRY = struct.Struct("<16sIIII")
_CHECKSUM_FIELD = 4  # both the header and the region table keep their CRC at byte 4

#: ``read(offset, length)``: the file's bytes there, short at the end of the file.
Read = Callable[[int, int], bytes]


class VhdxFormatError(ValueError):
    """Bytes that are not a usable VHDX structure; the message says which and why."""


class VhdxTruncatedError(VhdxFormatError):
    """The file ends before a structure it needs: a copy cut short, not a corrupt file."""


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of VHDX headers and region tables.

    zlib has only the other CRC-32; a table-driven loop over the 136 KiB of checksummed
    structures costs a few tens of milliseconds, once per file.
    """
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksummed(data: bytes) -> int:
    """The CRC-32C of a header or region table, computed with its checksum field zeroed."""
    return crc32c(data[:_CHECKSUM_FIELD] + bytes(4) + data[_CHECKSUM_FIELD + 4:])


@dataclass(frozen=True)
class Header:
    """One of the two 4 KiB headers; the valid one with the higher sequence number is active."""

    offset: int
    signature: bytes
    checksum: int
    computed_checksum: int
    sequence_number: int
    file_write_guid: uuid.UUID
    data_write_guid: uuid.UUID
    log_guid: uuid.UUID
    log_version: int
    version: int
    log_length: int
    log_offset: int

    @classmethod
    def unpack(cls, raw: bytes, offset: int) -> Header:
        """Decode 4 KiB without judging them."""
        if len(raw) < HEADER_SIZE:
            raw = raw.ljust(HEADER_SIZE, b"\0")
        f = _HEADER.unpack_from(raw)
        return cls(offset, f[0], f[1], checksummed(raw[:HEADER_SIZE]), f[2],
                   uuid.UUID(bytes_le=f[3]), uuid.UUID(bytes_le=f[4]), uuid.UUID(bytes_le=f[5]),
                   f[6], f[7], f[8], f[9])

    @property
    def valid(self) -> bool:
        """The spec's test: signature ``head``, a matching CRC-32C, version 1."""
        return self.signature == b"head" and self.checksum == self.computed_checksum \
            and self.version == 1

    @property
    def log_pending(self) -> bool:
        """A non-zero log GUID: the log may hold writes that were never replayed."""
        return self.log_guid.int != 0


@dataclass(frozen=True)
class Region:
    """A region table entry: where the BAT or the metadata lives in the file."""

    guid: uuid.UUID
    offset: int
    length: int
    required: bool


@dataclass(frozen=True)
class Layout:
    """What vmimage needs to know about a VHDX before trusting libvhdi with its data."""

    header: Header
    bat_region: Region
    metadata_region: Region
    block_size: int
    virtual_size: int
    logical_sector_size: int
    has_parent: bool
    #: BAT entries the virtual size needs, payload and sector bitmap entries interleaved.
    bat_entries: int

    @property
    def chunk_ratio(self) -> int:
        """Payload blocks per sector bitmap block: 2^23 sectors' worth of blocks."""
        return (1 << 23) * self.logical_sector_size // self.block_size

    @property
    def data_blocks(self) -> int:
        """Payload blocks the virtual disk spans."""
        return -(-self.virtual_size // self.block_size)


class StoredBlock(NamedTuple):
    """A block whose bytes the BAT places in the file."""

    name: str  # "payload block 7", "sector bitmap block 0": for messages
    payload: int | None  # the payload block number; None for a sector bitmap block
    offset: int
    length: int


#: Byte 0 of a BAT entry -> 1 where its state (low 3 bits) says the block is in the file.
_STORED_STATE = bytes(1 if (b & 7) in _PRESENT else 0 for b in range(256))
_BAT_READ_ENTRIES = 1 << 20  # 8 MiB of BAT at a time


def stored_blocks(read: Read, layout: Layout) -> Iterator[StoredBlock]:
    """Every block the BAT places in the file, in BAT order.

    A 16 TiB VHDX of 1 MiB blocks has 16 million BAT entries: a Python step per entry took
    10 s, so the BAT is read 8 MiB at a time, the state byte of every entry picked out and
    mapped in C (``bytes.translate``), and Python visits only the stored blocks.
    """
    ratio = layout.chunk_ratio
    for first in range(0, layout.bat_entries, _BAT_READ_ENTRIES):
        count = min(_BAT_READ_ENTRIES, layout.bat_entries - first)
        raw = read(layout.bat_region.offset + first * 8, count * 8).ljust(count * 8, b"\0")
        stored = raw[0::8].translate(_STORED_STATE)
        i = stored.find(1)
        while i >= 0:
            index = first + i
            (entry,) = struct.unpack_from("<Q", raw, i * 8)
            offset = (entry >> 20) * MiB
            if (index + 1) % (ratio + 1) == 0:  # a sector bitmap entry closes every chunk
                if entry & 7 == SB_BLOCK_PRESENT:
                    number = index // (ratio + 1)
                    yield StoredBlock(f"sector bitmap block {number}", None, offset, MiB)
            else:
                block = index - index // (ratio + 1)
                if block < layout.data_blocks:
                    yield StoredBlock(f"payload block {block}", block, offset, layout.block_size)
            i = stored.find(1, i + 1)


def required_length(read: Read, layout: Layout) -> tuple[int, str]:
    """The least file length the structures and stored blocks need, and what needs it."""
    need, what = FIXED_AREA, "the headers and region tables"
    spans = [(layout.bat_region.offset + layout.bat_region.length, "the BAT region"),
             (layout.metadata_region.offset + layout.metadata_region.length,
              "the metadata region")]
    if layout.header.log_length:
        spans.append((layout.header.log_offset + layout.header.log_length, "the log"))
    for end, name in spans:
        if end > need:
            need, what = end, name
    for block in stored_blocks(read, layout):
        if block.offset + block.length > need:
            need, what = block.offset + block.length, block.name
    return need, what


def check_length(read: Read, layout: Layout, file_size: int) -> None:
    """Refuse a file shorter than its structures and stored blocks need.

    libvhdi notices only when a read reaches the missing part, with a libyal error in the
    middle of a copy, and ``inspect`` called the file healthy; the BAT says up front how long
    the file must be (qemu-img checks the same when it opens a VHDX).

    Raises:
        VhdxTruncatedError: the file ends before what needs the most room.
    """
    need, what = required_length(read, layout)
    if file_size < need:
        raise _truncated(what, need, file_size)


def _active_header(read: Read) -> Header:
    headers = [Header.unpack(read(off, HEADER_SIZE), off) for off in HEADER_OFFSETS]
    valid = [h for h in headers if h.valid]
    if not valid:
        raise VhdxFormatError("neither VHDX header is valid (signature, CRC-32C or version)")
    return max(valid, key=lambda h: h.sequence_number)


def _regions(read: Read) -> dict[uuid.UUID, Region]:
    for off in REGION_TABLE_OFFSETS:
        raw = read(off, REGION_TABLE_SIZE)
        if len(raw) < REGION_TABLE_SIZE:
            continue
        signature, stored, count, _ = _REGION_HEADER.unpack_from(raw)
        if signature != b"regi" or stored != checksummed(raw) or count > 2047:
            continue
        regions = {}
        for i in range(count):
            guid, offset, length, flags = _REGION_ENTRY.unpack_from(
                raw, _REGION_HEADER.size + i * _REGION_ENTRY.size)
            key = uuid.UUID(bytes_le=guid)
            regions[key] = Region(key, offset, length, bool(flags & 1))
        return regions
    raise VhdxFormatError("neither VHDX region table is valid (signature or CRC-32C)")


def _metadata(read: Read, region: Region) -> dict[uuid.UUID, tuple[int, int]]:
    """The metadata table: item GUID -> (file offset, length)."""
    raw = read(region.offset, METADATA_TABLE_SIZE)
    if len(raw) < METADATA_TABLE_SIZE:
        raise _truncated("the metadata table", region.offset + METADATA_TABLE_SIZE,
                         region.offset + len(raw))
    signature, _, count, _ = _METADATA_HEADER.unpack_from(raw)
    if signature != b"metadata" or count > 2047:
        raise VhdxFormatError(f"no VHDX metadata table at offset {region.offset}")
    items = {}
    for i in range(count):
        guid, offset, length, _, _ = _METADATA_ENTRY.unpack_from(
            raw, _METADATA_HEADER.size + i * _METADATA_ENTRY.size)
        items[uuid.UUID(bytes_le=guid)] = (region.offset + offset, length)
    return items


def _item(read: Read, items: dict[uuid.UUID, tuple[int, int]], key: uuid.UUID, fmt: str,
          name: str) -> tuple[int, ...]:
    """One fixed-size item, read alone: a corrupt length must not make us read gigabytes."""
    need = struct.calcsize(fmt)
    offset, length = items.get(key, (0, 0))
    raw = read(offset, need) if length >= need else b""
    if len(raw) < need:
        raise VhdxFormatError(f"VHDX metadata lacks the {name} item")
    return struct.unpack_from(fmt, raw)


def _truncated(what: str, end: int, file_size: int) -> VhdxTruncatedError:
    return VhdxTruncatedError(f"truncated: {what} of the VHDX ends at byte {end}, but the file "
                              f"is only {file_size} bytes")


def read_layout(read: Read, file_size: int) -> Layout:
    """Decode the active header, the regions, the metadata and the BAT.

    ``read(offset, length)`` returns the file's bytes there, short at the end of the file.
    The structures needed to decode the rest are checked against ``file_size`` here; whether
    the stored blocks fit is :func:`check_length`'s question.

    Raises:
        VhdxTruncatedError: the file ends before the headers, region tables, metadata or BAT.
        VhdxFormatError: a structure is missing or corrupt, so the file cannot be read at all.
    """
    if file_size < FIXED_AREA:
        raise _truncated("the headers and region tables", FIXED_AREA, file_size)
    header = _active_header(read)
    regions = _regions(read)
    if BAT_GUID not in regions or METADATA_GUID not in regions:
        raise VhdxFormatError("the VHDX region table lacks the BAT or the metadata region")
    bat_region, meta_region = regions[BAT_GUID], regions[METADATA_GUID]
    for region, name in ((meta_region, "the metadata region"), (bat_region, "the BAT region")):
        if region.offset + region.length > file_size:
            raise _truncated(name, region.offset + region.length, file_size)
    items = _metadata(read, meta_region)
    block_size, flags = _item(read, items, FILE_PARAMETERS, "<II", "file parameters")
    (virtual_size,) = _item(read, items, VIRTUAL_DISK_SIZE, "<Q", "virtual disk size")
    (sector_size,) = _item(read, items, LOGICAL_SECTOR_SIZE, "<I", "logical sector size")
    if block_size < MiB or block_size > 256 * MiB or block_size & (block_size - 1):
        raise VhdxFormatError(f"VHDX block size {block_size} is not a power of two from 1 MiB "
                              "to 256 MiB")
    if sector_size not in (512, 4096):
        raise VhdxFormatError(f"VHDX logical sector size {sector_size} is not 512 or 4096")
    has_parent = bool(flags & 2)
    ratio = (1 << 23) * sector_size // block_size
    blocks = -(-virtual_size // block_size)
    if has_parent:
        entries = -(-blocks // ratio) * (ratio + 1)
    else:
        entries = blocks + (blocks - 1) // ratio if blocks else 0
    if entries * 8 > bat_region.length:
        raise VhdxFormatError(f"VHDX BAT region of {bat_region.length} bytes cannot hold the "
                              f"{entries} entries a {virtual_size}-byte disk needs")
    return Layout(header, bat_region, meta_region, block_size, virtual_size, sector_size,
                  has_parent, entries)
