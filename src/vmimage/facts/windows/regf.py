"""The registry hive file format (regf), read cell by cell from a file read by parts.

A hive is 50-100 MiB on a patched Windows Server (``SOFTWARE``), and a check needs a few dozen
keys of it. libregf reads every hive bin header when it opens a file (measured: 3,754 reads
over 14.6 MiB of a 26 MiB hive), so a range read through the disk layer would read the whole
file. This reader follows cell offsets from the base block's root key only: a key lookup reads
the cells on its path, nothing else. libregf (``pyregf``) and ``hivexregedit --export`` are
the oracles its tests compare with.

The layout (Microsoft's "Windows registry file format specification", as libregf and hivex
read it): a 4 KiB base block (``regf``, the root cell's offset, the size of the hive bins
data, a checksum); then hive bins whose cells are addressed by their offset from the end of
the base block. A cell is a little-endian int32 size (negative when allocated) and a payload:
``nk`` (a key: its subkey list, value list, name), ``vk`` (a value: type, data size, data
offset, name), subkey lists ``lf``/``lh`` (offsets with a name hint or hash), ``li`` (offsets)
and ``ri`` (offsets of lists), a value list (bare offsets), data cells, and ``db`` (big data in
segments of 16,344 bytes).

Everything is untrusted: every cell must lie inside the hive bins data, every count is bounded
by its cell's size, an ``ri`` list holds only leaf lists, and every failure is a
:class:`HiveError` with a short reason.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

BASE_BLOCK = 4096
PAGE = 4096
#: The largest data a single cell holds in hives of version 1.4 and later; more is ``db``.
SEGMENT = 16344
#: Pages kept in memory: what the lookups of one check run touch, with room to spare.
CACHE_PAGES = 4096
#: Entries read from one subkey list (with its ``ri`` parts): ``Classes`` has tens of thousands.
ENTRIES_MAX = 1 << 20
KEY_COMP_NAME = 0x0020
VALUE_COMP_NAME = 0x0001
_INLINE = 0x8000_0000
_NONE = 0xFFFF_FFFF


class HiveError(Exception):
    """The hive is damaged where it was read (the message says how, in a few words)."""


class RangeFile(Protocol):
    """A file read by parts: at most ``size`` bytes from ``offset``."""

    def read_at(self, offset: int, size: int) -> bytes:
        """The bytes at ``offset``; fewer at the end of the file."""
        ...


class BytesFile:
    """A hive already in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_at(self, offset: int, size: int) -> bytes:
        """The bytes, fewer at the end."""
        return self.data[offset:offset + size]


def checksum(base_block: bytes) -> int:
    """The base block's checksum: the XOR of its first 127 dwords, 0 and -1 avoided."""
    value = 0
    for (word,) in struct.iter_unpack("<I", base_block[:508]):
        value ^= word
    return {0: 1, 0xFFFF_FFFF: 0xFFFF_FFFE}.get(value, value)


def upcase(text: str) -> str:
    """Windows' case folding for names: one character to one (``str.upper`` turns ``ß``
    into ``SS``, which Windows never does)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def name_hash(name: str) -> int:
    """The ``lh`` list's hash of a name: ``h * 37 + code`` over the upcased name."""
    value = 0
    for ch in upcase(name):
        value = (value * 37 + ord(ch)) & 0xFFFF_FFFF
    return value


def _name(raw: bytes, compressed: bool) -> str:
    return raw.decode("latin-1") if compressed else raw[: len(raw) // 2 * 2].decode(
        "utf-16-le", "replace")


@dataclass(frozen=True)
class KeyCell:
    """An ``nk`` cell: what a lookup needs of a key."""

    offset: int
    name: str
    subkeys: int  # count the key claims (stable subkeys)
    subkey_list: int
    values: int
    value_list: int
    last_written: int  # FILETIME


@dataclass(frozen=True)
class ValueCell:
    """A ``vk`` cell: a value's name, type, and where its data is."""

    offset: int
    name: str
    type: int
    size: int
    inline: bytes | None  # data of at most 4 bytes kept in the cell itself
    data_offset: int


class Regf:
    """One hive file; cells read on demand through a small page cache."""

    def __init__(self, file: RangeFile, file_size: int) -> None:
        self._file, self._pages = file, dict[int, bytes]()
        base = file.read_at(0, BASE_BLOCK)
        if len(base) < BASE_BLOCK or base[:4] != b"regf":
            raise HiveError("not a registry hive (no regf base block)")
        if struct.unpack_from("<I", base, 508)[0] != checksum(base):
            raise HiveError("mismatch in the base block checksum")
        primary, secondary, _, major, minor = struct.unpack_from("<IIQII", base, 4)
        if major != 1:
            raise HiveError(f"unsupported hive format version {major}.{minor}")
        #: A hive whose last write did not finish (its logs would be replayed by Windows).
        self.dirty: bool = primary != secondary
        root, self.bins_size = struct.unpack_from("<II", base, 36)
        if self.bins_size % PAGE or not PAGE <= self.bins_size <= file_size - BASE_BLOCK:
            raise HiveError(f"hive bins size {self.bins_size} does not fit the file")
        first = self._read(0, 32)
        if first[:4] != b"hbin" or struct.unpack_from("<I", first, 4)[0] != 0 or not (
                PAGE <= struct.unpack_from("<I", first, 8)[0] <= self.bins_size):
            raise HiveError("the first hive bin is damaged")
        self.root = self.key(root)

    # ---- raw cells ----------------------------------------------------------------------

    def _page(self, number: int) -> bytes:
        page = self._pages.get(number)
        if page is None:
            if len(self._pages) >= CACHE_PAGES:
                self._pages.clear()
            page = self._file.read_at(BASE_BLOCK + number * PAGE, PAGE)
            self._pages[number] = page
        return page

    def _read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at a cell offset, all inside the hive bins data."""
        if offset < 0 or size < 0 or offset + size > self.bins_size:
            raise HiveError(f"cell offset {offset:#x} is outside the hive")
        first, last = offset // PAGE, (offset + size - 1) // PAGE
        data = b"".join(self._page(n) for n in range(first, last + 1))
        start = offset - first * PAGE
        piece = data[start:start + size]
        if len(piece) != size:
            raise HiveError("the hive file is shorter than its base block says")
        return piece

    def cell(self, offset: int) -> bytes:
        """An allocated cell's payload."""
        if offset % 8:
            raise HiveError(f"cell offset {offset:#x} is misaligned")
        (size,) = struct.unpack("<i", self._read(offset, 4))
        if size >= 0:
            raise HiveError(f"cell {offset:#x} is not allocated")
        if -size < 8:
            raise HiveError(f"cell {offset:#x} has size {-size}")
        return self._read(offset + 4, -size - 4)

    # ---- keys and values ------------------------------------------------------------------

    def key(self, offset: int) -> KeyCell:
        """The ``nk`` cell at ``offset``."""
        data = self.cell(offset)
        if len(data) < 76 or data[:2] != b"nk":
            raise HiveError(f"cell {offset:#x} is not a key")
        flags, written = struct.unpack_from("<HQ", data, 2)
        subkeys, _, subkey_list, _, values, value_list = struct.unpack_from("<6I", data, 20)
        (length,) = struct.unpack_from("<H", data, 72)
        if 76 + length > len(data):
            raise HiveError(f"key {offset:#x}: its name overruns the cell")
        name = _name(data[76:76 + length], bool(flags & KEY_COMP_NAME))
        return KeyCell(offset, name, subkeys, subkey_list, values, value_list, written)

    def _offsets(self, offset: int, depth: int = 0) -> Iterator[tuple[int, int | None, bytes]]:
        """(cell offset, ``lh`` hash, ``lf`` hint) of a subkey list's entries, an ``ri``
        list's leaves in turn; at most :data:`ENTRIES_MAX` in all."""
        data = self.cell(offset)
        kind = data[:2]
        count = struct.unpack_from("<H", data, 2)[0] if len(data) >= 4 else 0
        step = 8 if kind in (b"lf", b"lh") else 4
        if kind not in (b"lf", b"lh", b"li", b"ri") or 4 + count * step > len(data):
            raise HiveError(f"cell {offset:#x} is not a subkey list")
        if kind == b"ri" and depth:
            raise HiveError(f"cell {offset:#x}: an index list inside an index list")
        for index in range(count):
            at, extra = struct.unpack_from("<I4s", data + bytes(4), 4 + step * index)
            if kind == b"ri":
                yield from itertools.islice(self._offsets(at, 1), ENTRIES_MAX)
            elif kind == b"lh":
                yield at, struct.unpack("<I", extra)[0], b""
            else:
                yield at, None, extra if kind == b"lf" else b""

    def _entries(self, key: KeyCell) -> Iterator[tuple[int, int | None, bytes]]:
        if not key.subkeys or key.subkey_list == _NONE:
            return iter(())
        return itertools.islice(self._offsets(key.subkey_list), ENTRIES_MAX)

    def subkeys(self, key: KeyCell, limit: int) -> list[KeyCell]:
        """The key's subkeys in stored order, at most ``limit``."""
        return [self.key(at) for at, _, _ in itertools.islice(self._entries(key), limit)]

    def subkey(self, key: KeyCell, name: str) -> KeyCell | None:
        """The subkey called ``name`` (case-insensitive). For an ASCII name, entries whose
        ``lh`` hash or ``lf`` hint differs are passed over unread: a lookup in a key of
        10,000 subkeys reads its list and one key cell, not 10,000."""
        wanted = upcase(name)
        plain = wanted.isascii()
        digest, prefix = name_hash(name), wanted.encode("ascii", "replace")[:4]
        for at, hashed, hint in self._entries(key):
            if plain and hashed is not None and hashed != digest:
                continue
            stored = hint.rstrip(b"\0").upper()
            if plain and stored.isascii() and stored and stored != prefix[:len(stored)]:
                continue
            found = self.key(at)
            if upcase(found.name) == wanted:
                return found
        return None

    def values(self, key: KeyCell, limit: int) -> list[ValueCell]:
        """The key's values in stored order, at most ``limit``."""
        if not key.values or key.value_list == _NONE:
            return []
        count = min(key.values, limit)
        data = self.cell(key.value_list)
        if 4 * count > len(data):
            raise HiveError(f"key {key.offset:#x}: its value list overruns its cell")
        return [self.value(at) for (at,) in struct.iter_unpack("<I", data[:4 * count])]

    def value(self, offset: int) -> ValueCell:
        """The ``vk`` cell at ``offset``."""
        data = self.cell(offset)
        if len(data) < 20 or data[:2] != b"vk":
            raise HiveError(f"cell {offset:#x} is not a value")
        length, size, data_offset, kind, flags = struct.unpack_from("<HIIIH", data, 2)
        if 20 + length > len(data):
            raise HiveError(f"value {offset:#x}: its name overruns the cell")
        name = _name(data[20:20 + length], bool(flags & VALUE_COMP_NAME))
        inline = None
        if size & _INLINE:
            size &= ~_INLINE
            if size > 4:
                raise HiveError(f"value {offset:#x}: {size} bytes cannot be inline")
            inline = data[8:8 + size]  # the data offset field's first bytes, as Windows reads
        return ValueCell(offset, name, kind, size, inline, data_offset)

    def data(self, value: ValueCell, limit: int) -> bytes:
        """A value's data; refused over ``limit`` bytes."""
        if value.inline is not None:
            return value.inline
        if value.size == 0:
            return b""
        if value.size > limit:
            raise HiveError(f"value {value.offset:#x}: {value.size} bytes of data")
        cell = self.cell(value.data_offset)
        if value.size > SEGMENT and cell[:2] == b"db" and len(cell) < value.size:
            return self._big_data(value, cell)  # Windows writes these from hive version 1.4
        if len(cell) < value.size:
            raise HiveError(f"value {value.offset:#x}: its data overruns the cell")
        return cell[:value.size]

    def _big_data(self, value: ValueCell, head: bytes) -> bytes:
        """Data in segments: a ``db`` cell (count, segment list), the list, the segments."""
        if len(head) < 8:
            raise HiveError(f"value {value.offset:#x}: its big data cell is short")
        count, segment_list = struct.unpack_from("<HI", head, 2)
        if count * SEGMENT < value.size:
            raise HiveError(f"value {value.offset:#x}: too few data segments")
        offsets = self.cell(segment_list)
        if 4 * count > len(offsets):
            raise HiveError(f"value {value.offset:#x}: its segment list overruns its cell")
        out = bytearray()
        for (at,) in struct.iter_unpack("<I", offsets[:4 * count]):
            out += self.cell(at)[:min(SEGMENT, value.size - len(out))]
            if len(out) >= value.size:
                break
        if len(out) < value.size:
            raise HiveError(f"value {value.offset:#x}: its data segments are short")
        return bytes(out)
