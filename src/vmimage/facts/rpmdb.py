"""The RPM database read without rpm: sqlite (rpm >= 4.16) and Berkeley DB ``Packages`` files.

An offline check has no ``rpm -q`` to call, and the host's rpm may not read the image's format
(Debian 12's rpm has no Berkeley DB support, rulings). Both formats store one *header blob* per
installed package; the blob is the same in both, so this module only has to get the blobs out
of each container and then read five tags from them.

Header blob layout (rpm's lib/header.c, all big-endian): ``il`` index entries and ``dl`` data
bytes, then ``il`` entries of (tag, type, offset, count), then the data store.
"""

from __future__ import annotations

import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_ARCH = 1022

_TYPE_INT32 = 4
_TYPE_STRING = 6
_TYPE_I18NSTRING = 9
_MAX_INDEX = 0x10000  # rpm's own sanity limits (HEADER_TAGS_MAX / data size)
_MAX_DATA = 256 * 1024 * 1024


class RpmDbError(ValueError):
    """The database or a header in it is not in a form this reader understands."""


@dataclass(frozen=True, slots=True)
class RpmHeader:
    """The identifying tags of one installed package."""

    name: str
    version: str
    release: str
    epoch: int | None
    arch: str

    @property
    def evr(self) -> str:
        """``[epoch:]version-release`` as rpm prints ``%{EVR}``."""
        prefix = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{prefix}{self.version}-{self.release}"


def parse_header(blob: bytes) -> RpmHeader:
    """Read NAME, VERSION, RELEASE, EPOCH and ARCH from a stored header blob."""
    if len(blob) < 8:
        raise RpmDbError("header blob shorter than its preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    if not 0 < il < _MAX_INDEX or dl > _MAX_DATA or 8 + 16 * il + dl > len(blob):
        raise RpmDbError(f"implausible header sizes il={il} dl={dl} for {len(blob)} bytes")
    store = 8 + 16 * il
    values: dict[int, str | int] = {}
    for n in range(il):
        tag, kind, offset, count = struct.unpack_from(">iIiI", blob, 8 + 16 * n)
        if tag not in (TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH):
            continue
        if not 0 <= offset < dl:
            raise RpmDbError(f"tag {tag} points outside the data store")
        start = store + offset
        if kind in (_TYPE_STRING, _TYPE_I18NSTRING):
            end = blob.find(b"\0", start, store + dl)
            if end < 0:
                raise RpmDbError(f"tag {tag}: unterminated string")
            values[tag] = blob[start:end].decode("utf-8", "replace")
        elif kind == _TYPE_INT32 and count >= 1 and start + 4 <= store + dl:
            values[tag] = struct.unpack_from(">I", blob, start)[0]
    name = values.get(TAG_NAME)
    if not isinstance(name, str):
        raise RpmDbError("header has no NAME")
    epoch = values.get(TAG_EPOCH)
    return RpmHeader(name, str(values.get(TAG_VERSION, "")), str(values.get(TAG_RELEASE, "")),
                     epoch if isinstance(epoch, int) else None, str(values.get(TAG_ARCH, "")))


# --- sqlite -----------------------------------------------------------------------------------


def sqlite_blobs(db: bytes, wal: bytes | None = None) -> list[bytes]:
    """Header blobs of an ``rpmdb.sqlite``, with its write-ahead log applied when there is one.

    sqlite cannot open bytes, and the image is read-only: the file (and its ``-wal``, which
    may hold the last transactions rpm committed) is copied to a private temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="vmimage-rpmdb-") as tmp:
        path = Path(tmp) / "rpmdb.sqlite"
        path.write_bytes(db)
        if wal:
            (Path(tmp) / "rpmdb.sqlite-wal").write_bytes(wal)
        try:
            con = sqlite3.connect(path)
            try:
                rows = con.execute("SELECT blob FROM Packages ORDER BY hnum").fetchall()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise RpmDbError(f"sqlite: {exc}") from exc
    return [bytes(row[0]) for row in rows if isinstance(row[0], bytes)]


# --- Berkeley DB ------------------------------------------------------------------------------

_HASH_MAGIC = 0x061561
_BTREE_MAGIC = 0x053162
_PAGE_HEADER = 26  # sizeof(PAGE) in db_page.h: lsn 8, pgno, prev, next, entries, hf_offset...
_P_HASH_UNSORTED = 2
_P_LBTREE = 5
_P_OVERFLOW = 7
_P_HASH = 13
_H_KEYDATA = 1
_H_OFFPAGE = 3
_B_KEYDATA = 1
_B_OVERFLOW = 3


@dataclass(slots=True)
class _Bdb:
    data: bytes
    endian: str  # "<" or ">": Berkeley DB writes in the creating host's byte order
    pagesize: int
    kind: str  # "hash" or "btree"
    #: Overflow bytes that may still be assembled: items of a hostile file can all point at
    #: one long chain, which would be walked once per item (quadratic) without this bound.
    budget: int = 0

    def __post_init__(self) -> None:
        self.budget = 2 * len(self.data) + (1 << 20)

    def page(self, pgno: int) -> bytes:
        start = pgno * self.pagesize
        if start + self.pagesize > len(self.data):
            raise RpmDbError(f"Berkeley DB page {pgno} beyond the end of the file")
        return self.data[start:start + self.pagesize]

    def u16(self, buf: bytes, offset: int) -> int:
        return int(struct.unpack_from(self.endian + "H", buf, offset)[0])

    def u32(self, buf: bytes, offset: int) -> int:
        return int(struct.unpack_from(self.endian + "I", buf, offset)[0])

    def overflow(self, pgno: int, total: int) -> bytes:
        """Follow a chain of overflow pages (``OV_LEN`` is the page's ``hf_offset``)."""
        out = bytearray()
        seen: set[int] = set()
        while pgno and len(out) < total:
            if pgno in seen:
                raise RpmDbError("Berkeley DB overflow chain loops")
            seen.add(pgno)
            page = self.page(pgno)
            if page[25] != _P_OVERFLOW:
                raise RpmDbError(f"page {pgno} is not an overflow page")
            length = self.u16(page, 22)
            self.budget -= length
            if self.budget < 0:
                raise RpmDbError("Berkeley DB overflow chains hold more data than the file")
            out += page[_PAGE_HEADER:_PAGE_HEADER + length]
            pgno = self.u32(page, 16)
        if len(out) < total:
            raise RpmDbError("Berkeley DB overflow chain ends early")
        return bytes(out[:total])


def _open_bdb(data: bytes) -> _Bdb:
    if len(data) < 512:
        raise RpmDbError("too short for a Berkeley DB file")
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", data, 12)[0]
        if magic in (_HASH_MAGIC, _BTREE_MAGIC):
            pagesize = struct.unpack_from(endian + "I", data, 20)[0]
            if pagesize < 512 or pagesize > 65536 or pagesize & (pagesize - 1):
                raise RpmDbError(f"implausible Berkeley DB page size {pagesize}")
            if data[24]:
                raise RpmDbError("encrypted Berkeley DB")
            kind = "hash" if magic == _HASH_MAGIC else "btree"
            return _Bdb(data, endian, pagesize, kind)
    raise RpmDbError("not a Berkeley DB hash or btree file")


def _items(db: _Bdb, page: bytes) -> Iterator[bytes]:
    """The items of a hash or leaf page, in index order, overflow items assembled."""
    entries = db.u16(page, 20)
    hashed = db.kind == "hash"
    offsets = [db.u16(page, _PAGE_HEADER + 2 * n) for n in range(entries)]
    for n, offset in enumerate(offsets):
        if hashed:
            end = db.pagesize if n == 0 else offsets[n - 1]
            kind = page[offset]
            if kind == _H_KEYDATA:
                yield page[offset + 1:end]
            elif kind == _H_OFFPAGE:
                yield db.overflow(db.u32(page, offset + 4), db.u32(page, offset + 8))
            else:
                yield b""  # duplicates are never used by rpm's Packages
        else:
            length = db.u16(page, offset)
            kind = page[offset + 2] & 0x7F  # high bit: deleted flag
            if kind == _B_KEYDATA:
                yield page[offset + 3:offset + 3 + length]
            elif kind == _B_OVERFLOW:
                yield db.overflow(db.u32(page, offset + 4), db.u32(page, offset + 8))
            else:
                yield b""


def bdb_records(data: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of a Berkeley DB hash or btree file, read page by page.

    Every page that holds key/data pairs is visited in file order; the bucket structure and
    the internal btree pages need not be followed for a full scan, which is all rpm's
    ``Packages`` needs (its keys are header numbers, the values header blobs).
    """
    db = _open_bdb(data)
    wanted = {_P_HASH, _P_HASH_UNSORTED} if db.kind == "hash" else {_P_LBTREE}
    records: list[tuple[bytes, bytes]] = []
    for pgno in range(1, len(data) // db.pagesize):
        page = db.page(pgno)
        if page[25] not in wanted:
            continue
        try:
            items = list(_items(db, page))
        except (IndexError, struct.error) as exc:  # an item offset outside its page
            raise RpmDbError(f"Berkeley DB page {pgno} is damaged: {exc}") from None
        records.extend(zip(items[0::2], items[1::2], strict=False))
    return records


def bdb_blobs(data: bytes) -> list[bytes]:
    """Header blobs of a Berkeley DB ``Packages`` file (the 4-byte instance keys dropped)."""
    return [value for key, value in bdb_records(data) if len(key) == 4 and len(value) > 8]
