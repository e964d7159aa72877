"""The VHD format: the 512-byte footer, the dynamic disk header and its BAT.

Written from Microsoft's "Virtual Hard Disk Image Format Specification" (v1.0). We keep our
own code because the readers we could borrow (dfvfs, dissect) accept a footer whose checksum
is wrong, and Azure and qemu-img refuse such a file: a publisher must learn that here, not
after upload.

Writer convention (rulings: qemu-img takes the size from the CHS geometry unless the creator
application is one it trusts): we write the spec's CHS geometry *and* the creator application
``win `` with host OS ``Wi2k``, as Hyper-V and Azure write their own VHDs. qemu-img then reads
``current size`` exactly, and so does Azure. Our reader always trusts ``current size``.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from dataclasses import dataclass, replace
from datetime import UTC, datetime

FOOTER_SIZE = 512
SECTOR = 512
COOKIE = b"conectix"
DYNAMIC_COOKIE = b"cxsparse"
FEATURES_RESERVED = 0x00000002
FORMAT_VERSION = 0x00010000
FIXED_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
VHD_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: The largest size the CHS geometry can describe; larger disks keep this geometry.
MAX_CHS_SECTORS = 65535 * 16 * 255
#: A sanity bound far above Azure's 32 TiB: anything larger is a corrupt or hostile footer.
MAX_VIRTUAL_SIZE = 64 * 1024**4

DISK_TYPES = {0: "none", 1: "reserved", 2: "fixed", 3: "dynamic", 4: "differencing",
              5: "reserved", 6: "reserved"}
DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING = 2, 3, 4

#: Creator applications whose footer qemu-img trusts for the size (rulings, measured).
QEMU_TRUSTED_CREATORS = (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0")

_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427s")
_DYN_HEADER = struct.Struct(">8sQQIIII16sII512s192s256s")
assert _FOOTER.size == FOOTER_SIZE
assert _DYN_HEADER.size == 1024


class VhdFormatError(ValueError):
    """Bytes that are not a valid VHD structure; the message says which field and why."""


def checksum(data: bytes, field_offset: int) -> int:
    """One's complement of the byte sum, with the 4-byte checksum field at ``field_offset`` zeroed."""
    total = sum(data) - sum(data[field_offset:field_offset + 4])
    return (~total) & 0xFFFFFFFF


def chs_geometry(size: int) -> tuple[int, int, int]:
    """The spec's CHS geometry (cylinders, heads, sectors per track) for a disk of ``size`` bytes."""
    total = min(size // SECTOR, MAX_CHS_SECTORS)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def vhd_timestamp(when: datetime | None = None) -> int:
    """Seconds since 2000-01-01 UTC, the VHD epoch."""
    moment = when or datetime.now(UTC)
    return max(0, int((moment - VHD_EPOCH).total_seconds())) & 0xFFFFFFFF


@dataclass(frozen=True)
class Footer:
    """The 512-byte VHD footer, every field decoded."""

    cookie: bytes
    features: int
    format_version: int
    data_offset: int
    timestamp: int
    creator_application: bytes
    creator_version: int
    creator_host_os: bytes
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors_per_track: int
    disk_type: int
    checksum: int
    unique_id: bytes
    saved_state: int
    reserved: bytes = bytes(427)

    @classmethod
    def new(cls, size: int, disk_type: int = DISK_FIXED, data_offset: int | None = None,
            unique_id: bytes | None = None, when: datetime | None = None) -> Footer:
        """A footer as vmimage writes it (see the module docstring for the convention)."""
        c, h, s = chs_geometry(size)
        footer = cls(
            cookie=COOKIE, features=FEATURES_RESERVED, format_version=FORMAT_VERSION,
            data_offset=FIXED_DATA_OFFSET if data_offset is None else data_offset,
            timestamp=vhd_timestamp(when), creator_application=b"win ",
            creator_version=0x000A0000, creator_host_os=b"Wi2k",
            original_size=size, current_size=size, cylinders=c, heads=h, sectors_per_track=s,
            disk_type=disk_type, checksum=0,
            unique_id=unique_id if unique_id is not None else _uuid4(),
            saved_state=0,
        )
        return footer.with_checksum()

    @classmethod
    def unpack(cls, raw: bytes) -> Footer:
        """Decode 512 bytes without judging them; :meth:`problems` judges."""
        if len(raw) != FOOTER_SIZE:
            raise VhdFormatError(f"footer is {len(raw)} bytes, expected {FOOTER_SIZE}")
        f = _FOOTER.unpack(raw)
        return cls(
            cookie=f[0], features=f[1], format_version=f[2], data_offset=f[3], timestamp=f[4],
            creator_application=f[5], creator_version=f[6], creator_host_os=f[7],
            original_size=f[8], current_size=f[9], cylinders=f[10], heads=f[11],
            sectors_per_track=f[12], disk_type=f[13], checksum=f[14], unique_id=f[15],
            saved_state=f[16], reserved=f[17],
        )

    def pack(self) -> bytes:
        """Encode the footer as it stands (the checksum field is written as stored)."""
        return _FOOTER.pack(
            self.cookie, self.features, self.format_version, self.data_offset, self.timestamp,
            self.creator_application, self.creator_version, self.creator_host_os,
            self.original_size, self.current_size, self.cylinders, self.heads,
            self.sectors_per_track, self.disk_type, self.checksum, self.unique_id,
            self.saved_state, self.reserved,
        )

    @property
    def computed_checksum(self) -> int:
        """The checksum these fields should carry."""
        return checksum(replace(self, checksum=0).pack(), 64)

    @property
    def checksum_ok(self) -> bool:
        """Whether the stored checksum matches the fields."""
        return self.checksum == self.computed_checksum

    def with_checksum(self) -> Footer:
        """The same footer with a correct checksum."""
        return replace(self, checksum=self.computed_checksum)

    def resized(self, size: int, when: datetime | None = None) -> Footer:
        """This footer for a disk of ``size`` bytes: size fields, geometry and checksum renewed."""
        c, h, s = chs_geometry(size)
        return replace(self, current_size=size, cylinders=c, heads=h, sectors_per_track=s,
                       timestamp=vhd_timestamp(when)).with_checksum()

    @property
    def disk_type_name(self) -> str:
        """``fixed``, ``dynamic``, ``differencing`` or what the spec calls the value."""
        return DISK_TYPES.get(self.disk_type, f"unknown ({self.disk_type})")

    @property
    def chs_size(self) -> int:
        """The size the CHS geometry describes: what qemu-img believes for untrusted creators."""
        return self.cylinders * self.heads * self.sectors_per_track * SECTOR

    @property
    def created(self) -> datetime:
        """The timestamp as a date."""
        return datetime.fromtimestamp(VHD_EPOCH.timestamp() + self.timestamp, UTC)

    def size_problem(self) -> str | None:
        """Why ``current size`` cannot describe a usable disk, or None.

        Zero is refused with the overflows: converted as it stands, a footer that says 0 bytes
        gives a 512-byte "disk" that holds nothing, which Azure and every hypervisor refuse.
        """
        if self.current_size > MAX_VIRTUAL_SIZE:
            return (f"virtual size {self.current_size} overflows: larger than the 64 TiB "
                    "vmimage accepts")
        if self.current_size == 0:
            return "virtual size is 0 bytes: the footer describes an empty disk"
        if self.current_size % SECTOR:
            return f"virtual size {self.current_size} is not a multiple of 512 bytes"
        return None

    def fatal_size(self) -> bool:
        """A size no command can work with (too large, or zero): refused unless lenient."""
        return self.current_size > MAX_VIRTUAL_SIZE or self.current_size == 0

    def problems(self) -> list[str]:
        """Everything wrong with the footer by itself, worst first; empty when it is valid."""
        found = []
        if self.cookie != COOKIE:
            found.append(f"cookie is {self.cookie!r}, expected b'conectix'")
        if not self.checksum_ok:
            found.append(f"footer checksum is 0x{self.checksum:08x}, computed "
                         f"0x{self.computed_checksum:08x}: the footer is corrupt")
        if self.disk_type not in (DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING):
            found.append(f"disk type {self.disk_type} is not fixed (2), dynamic (3) "
                         "or differencing (4)")
        size_problem = self.size_problem()
        if size_problem:
            found.append(size_problem)
        if self.format_version >> 16 != 1:
            found.append(f"file format version 0x{self.format_version:08x}, expected 0x00010000")
        if not self.features & FEATURES_RESERVED:
            found.append("features field lacks the reserved bit 0x2 the spec requires")
        if self.disk_type == DISK_FIXED and self.data_offset != FIXED_DATA_OFFSET:
            found.append(f"a fixed disk's data offset must be 0xFFFFFFFFFFFFFFFF, "
                         f"found 0x{self.data_offset:016x}")
        return found

    def to_dict(self) -> dict[str, object]:
        """Every field, decoded for people and JSON."""
        return {
            "cookie": self.cookie.decode("latin-1"),
            "features": f"0x{self.features:08x}",
            "format_version": f"{self.format_version >> 16}.{self.format_version & 0xFFFF}",
            "data_offset": f"0x{self.data_offset:016x}",
            "timestamp": self.timestamp,
            "created": self.created.isoformat(),
            "creator_application": self.creator_application.decode("latin-1"),
            "creator_version": f"{self.creator_version >> 16}.{self.creator_version & 0xFFFF}",
            "creator_host_os": self.creator_host_os.decode("latin-1"),
            "original_size": self.original_size,
            "current_size": self.current_size,
            "geometry": {"cylinders": self.cylinders, "heads": self.heads,
                         "sectors_per_track": self.sectors_per_track, "size": self.chs_size},
            "disk_type": self.disk_type_name,
            "checksum": f"0x{self.checksum:08x}",
            "checksum_computed": f"0x{self.computed_checksum:08x}",
            "checksum_ok": self.checksum_ok,
            "unique_id": _uuid_text(self.unique_id),
            "saved_state": self.saved_state,
        }


@dataclass(frozen=True)
class DynamicHeader:
    """The 1024-byte ``cxsparse`` header of a dynamic or differencing disk."""

    cookie: bytes
    data_offset: int
    table_offset: int
    header_version: int
    max_table_entries: int
    block_size: int
    checksum: int
    parent_unique_id: bytes = bytes(16)
    parent_timestamp: int = 0
    reserved1: int = 0
    parent_name: bytes = bytes(512)
    parent_locators: bytes = bytes(192)
    reserved2: bytes = bytes(256)

    @classmethod
    def new(cls, table_offset: int, max_table_entries: int, block_size: int) -> DynamicHeader:
        """A header for a new dynamic disk."""
        header = cls(DYNAMIC_COOKIE, FIXED_DATA_OFFSET, table_offset, FORMAT_VERSION,
                     max_table_entries, block_size, 0)
        return replace(header, checksum=checksum(header.pack(), 36))

    @classmethod
    def unpack(cls, raw: bytes) -> DynamicHeader:
        """Decode 1024 bytes without judging them."""
        if len(raw) != _DYN_HEADER.size:
            raise VhdFormatError(f"dynamic header is {len(raw)} bytes, expected 1024")
        return cls(*_DYN_HEADER.unpack(raw))

    def pack(self) -> bytes:
        """Encode the header as it stands."""
        return _DYN_HEADER.pack(
            self.cookie, self.data_offset, self.table_offset, self.header_version,
            self.max_table_entries, self.block_size, self.checksum, self.parent_unique_id,
            self.parent_timestamp, self.reserved1, self.parent_name, self.parent_locators,
            self.reserved2)

    @property
    def checksum_ok(self) -> bool:
        """Whether the stored checksum matches the fields."""
        return self.checksum == checksum(replace(self, checksum=0).pack(), 36)

    @property
    def bitmap_size(self) -> int:
        """Bytes of sector bitmap in front of each block, padded to a whole sector."""
        bits = self.block_size // SECTOR
        bitmap_bytes = (bits + 7) // 8
        return (bitmap_bytes + SECTOR - 1) // SECTOR * SECTOR

    def problems(self) -> list[str]:
        """Everything wrong with the header by itself."""
        found = []
        if self.cookie != DYNAMIC_COOKIE:
            found.append(f"dynamic header cookie is {self.cookie!r}, expected b'cxsparse'")
        if not self.checksum_ok:
            found.append("dynamic header checksum is wrong: the header is corrupt")
        if self.block_size == 0 or self.block_size % SECTOR or \
                self.block_size & (self.block_size - 1):
            found.append(f"block size {self.block_size} is not a power of two multiple of 512")
        return found

    def to_dict(self) -> dict[str, object]:
        """The fields people ask about."""
        return {
            "cookie": self.cookie.decode("latin-1"),
            "table_offset": self.table_offset,
            "header_version": f"0x{self.header_version:08x}",
            "max_table_entries": self.max_table_entries,
            "block_size": self.block_size,
            "checksum_ok": self.checksum_ok,
        }


BAT_UNUSED = 0xFFFFFFFF
#: The most BAT entries vmimage reads: a 64 TiB disk of the usual 2 MiB blocks. Held as a
#: 4-byte ``array`` (128 MiB at most), never as a list of Python ints (9 GiB for 2^32 - 1).
MAX_BAT_ENTRIES = MAX_VIRTUAL_SIZE // (2 * 1024 * 1024)


def unpack_bat(raw: bytes, entries: int) -> array[int]:
    """BAT entries: big-endian sector numbers, ``BAT_UNUSED`` for an unallocated block.

    An ``array`` of 4-byte integers: a large BAT costs its own size in memory, not 30 times it.
    """
    bat = array("I", raw[:entries * 4])
    if sys.byteorder == "little":
        bat.byteswap()
    return bat


def pack_bat(entries: list[int]) -> bytes:
    """Encode a BAT, padded to a whole sector with unused entries as the spec asks."""
    raw = struct.pack(f">{len(entries)}I", *entries)
    pad = (-len(raw)) % SECTOR
    return raw + b"\xff" * pad


def _uuid_text(raw: bytes) -> str:
    """A 16-byte unique ID as the usual 8-4-4-4-12 text (uuid.UUID's, without importing
    uuid, which costs the CLI's fastest commands 5 ms for platform detection)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid4() -> bytes:
    """A random (version 4) UUID's 16 bytes, as ``uuid.uuid4().bytes``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)
