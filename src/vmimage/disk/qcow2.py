"""qcow2, read with our own code: the header, the L1/L2 tables and the data, read-only.

Why our own reader: libqcow-python 20240308 has no wheel (installing vmimage compiled it, which
needs gcc and the Python headers), and its 20260703 wheel reads compressed clusters as zeros
(rulings, "Image formats"). The format is small: a header, a two-level table per virtual
cluster, and four kinds of cluster. Walking the tables also tells which clusters hold data, so
converting reads only those, not the whole virtual disk: a 1.2 MB qcow2 claiming 60 TiB once
kept ``vhd convert`` busy for about 45 minutes through libqcow's zero scan (issue 17).

What is read (qemu's ``docs/interop/qcow2.txt``, versions 2 and 3):

- standard clusters, read where their L2 entry places them;
- unallocated clusters and clusters flagged "reads as zeros" (version 3): zeros, as qemu-img
  reads them when there is no backing file;
- compressed clusters, zlib only: raw deflate with a 4 KiB window, as qemu writes them, the
  output cut at one cluster;
- extended L2 entries (16 bytes, 32 subclusters each with an allocation and a zero bit);
- dirty images (incompatible bit 0, lazy refcounts): only the refcounts may be stale, and
  they are never read here; qemu-img reads such images too.

What is refused, with one line that says why and how qemu-img gets past it: a backing file (it
names another file, whose blocks we would need), encryption, zstd compression, an external
data file, unknown incompatible features, and the corrupt bit. qemu-img still *reads* an image
qemu marked corrupt, but a disk headed for publication should not be copied from tables qemu
itself found inconsistent: ``qemu-img check -r all`` repairs them and clears the bit, and the
image then reads here (the same choice as a VHDX whose log was never replayed).

Bounded by the file, never by what the header claims: the L1 table must lie inside the file and
cover the virtual size (and be no larger than qemu's 32 MiB limit), every L2 table and every
data cluster too, a compressed cluster inflates to one cluster at most, and the tables may not
claim more stored clusters than the file can hold (a table pointing every entry at one cluster
would otherwise make a megabyte claim terabytes; a compressed cluster counts as the least
deflate can store a cluster in). L2 tables and inflated clusters are kept in
small LRU caches, so sequential reads cost one table read per table, not one per cluster.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAGIC = b"QFI\xfb"
_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")  # v2 fields, 72 bytes
_V3 = struct.Struct(">QQQII")  # incompatible, compatible, autoclear, refcount order, length
_V3_END = _HEADER.size + _V3.size  # 104: compression_type is the byte after
_ENTRY = struct.Struct(">Q")
_PAIR = struct.Struct(">QQ")  # an extended L2 entry: descriptor, subcluster bitmap
_OFFSET_MASK = 0x00FFFFFFFFFFFE00
_COMPRESSED = 1 << 62
_ZERO = 1
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3
_INCOMPAT_EXTENDED_L2 = 1 << 4
_KNOWN_INCOMPAT = 0b11111  # dirty, corrupt, external data file, compression type, extended L2
_ZSTD = 1
_L1_CHUNK = 1 << 17  # entries read at a time by the walk (1 MiB)
_MAX_L1_BYTES = 32 << 20  # qemu's QCOW_MAX_L1_SIZE: it opens nothing larger
_SUBCLUSTERS = 32
_ALL_SUBCLUSTERS = (1 << _SUBCLUSTERS) - 1
_DEFLATE_WINDOW = -12  # raw deflate, 2**12-byte window: what qemu's qcow2 zlib code uses
_CACHE_BYTES = 16 << 20  # per cache: L2 tables, inflated clusters
SECTOR = 512
#: Deflate inflates at most 1032 times its input: a compressed cluster takes at least
#: cluster_size / 1032 bytes of the file (small clusters share sectors, so not a sector each).
DEFLATE_MAX_RATIO = 1032
_CONVERT = "convert it with qemu-img first (qemu-img convert -O qcow2 IN OUT)"

Read = Callable[[int, int], bytes]


class Qcow2Error(ValueError):
    """A qcow2 whose tables cannot be trusted, or that vmimage refuses to read."""


class Qcow2UnsupportedError(Qcow2Error):
    """A valid qcow2 using a feature vmimage does not read (backing file, encryption, zstd)."""


@dataclass(frozen=True)
class Qcow2Header:
    """The header fields that locate the data or decide whether it can be read."""

    version: int
    cluster_bits: int
    size: int
    l1_size: int
    l1_offset: int
    incompatible: int = 0
    backing_offset: int = 0
    backing_size: int = 0
    crypt_method: int = 0
    compression_type: int = 0

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster."""
        return 1 << self.cluster_bits

    @property
    def extended(self) -> bool:
        """Extended L2 entries: 16 bytes each, 32 subclusters per cluster."""
        return bool(self.incompatible & _INCOMPAT_EXTENDED_L2)

    @property
    def l2_entry_size(self) -> int:
        """8 bytes, or 16 with extended L2 entries (subclusters)."""
        return 16 if self.extended else 8

    @property
    def l2_entries(self) -> int:
        """Entries in one L2 table (one cluster)."""
        return self.cluster_size // self.l2_entry_size

    @property
    def clusters(self) -> int:
        """Virtual clusters the disk spans, the last one possibly in part."""
        return -(-self.size // self.cluster_size)

    @property
    def l1_needed(self) -> int:
        """L1 entries the virtual size needs: the only ones ever read."""
        return -(-self.clusters // self.l2_entries)


def read_header(read: Read, file_size: int) -> Qcow2Header:
    """Decode the header and judge what the tables depend on.

    The features that leave the tables readable but not the data (a backing file, an external
    data file, encryption, zstd, the corrupt bit) are judged apart, by :func:`check_readable`,
    so that ``vhd inspect`` can still describe such an image.

    Raises:
        Qcow2Error: not a qcow2 v2/v3 header, an unknown incompatible feature, a cluster size
            qemu does not open, or an L1 table outside the file or not covering the disk.
    """
    raw = read(0, _V3_END + 1)
    if len(raw) < _HEADER.size or raw[:4] != MAGIC:
        raise Qcow2Error("no qcow2 header")
    (_, version, backing_offset, backing_size, cluster_bits, size, crypt_method, l1_size,
     l1_offset, *_) = _HEADER.unpack_from(raw)
    incompatible, compression_type = _v3_fields(raw, version, file_size)
    header = Qcow2Header(version, cluster_bits, size, l1_size, l1_offset, incompatible,
                         backing_offset, backing_size, crypt_method, compression_type)
    _check_features(header)
    _check_l1(header, file_size)
    return header


def _v3_fields(raw: bytes, version: int, file_size: int) -> tuple[int, int]:
    """``(incompatible features, compression type)``: both 0 in a version 2 header."""
    if version == 2:
        return 0, 0
    if version != 3:
        raise Qcow2Error(f"qcow2 version {version} is not 2 or 3")
    if len(raw) < _V3_END:
        raise Qcow2Error("the qcow2 v3 header is cut short")
    incompatible, _, _, _, length = _V3.unpack_from(raw, _HEADER.size)
    if length < _V3_END or length % 8 or length > file_size:
        raise Qcow2Error(f"the qcow2 v3 header length {length} is not a multiple of 8 from "
                         "104 up, or runs past the end of the file")
    return incompatible, raw[_V3_END] if length > _V3_END else 0


def _check_features(header: Qcow2Header) -> None:
    unknown = header.incompatible & ~_KNOWN_INCOMPAT
    if unknown:
        raise Qcow2Error(f"unknown incompatible qcow2 features 0x{unknown:x}: convert it "
                         "first with a qemu-img that knows them (qemu-img convert -O qcow2 IN "
                         "OUT)")
    if not 9 <= header.cluster_bits <= 21:
        raise Qcow2Error(f"cluster bits {header.cluster_bits} is not between 9 and 21")
    if header.extended and header.cluster_bits < 14:
        raise Qcow2Error(f"extended L2 entries need clusters of 16 KiB or more, not "
                         f"{header.cluster_size} bytes (subclusters under 512 bytes)")


def _check_l1(header: Qcow2Header, file_size: int) -> None:
    """The L1 table lies in the file, is no larger than qemu opens, and covers the disk."""
    l1_size, l1_offset = header.l1_size, header.l1_offset
    if l1_offset % header.cluster_size or l1_offset + l1_size * 8 > file_size:
        raise Qcow2Error(f"the L1 table ({l1_size} entries at offset {l1_offset}) is not "
                         "cluster-aligned or lies outside the file")
    if l1_size * 8 > _MAX_L1_BYTES:
        raise Qcow2Error(f"the L1 table of {l1_size} entries is larger than qemu's limit of "
                         f"{_MAX_L1_BYTES >> 20} MiB")
    if l1_size < header.l1_needed:
        raise Qcow2Error(f"the L1 table of {l1_size} entries covers less than the virtual "
                         f"size of {header.size} bytes (it needs {header.l1_needed})")


def check_readable(header: Qcow2Header, read: Read, file_size: int) -> None:
    """Refuse what leaves the tables readable but not the data, each with a way past it.

    Raises:
        Qcow2Error: the corrupt bit, or a compression type field that contradicts its bit.
        Qcow2UnsupportedError: a backing file, an external data file, encryption, zstd.
    """
    if header.incompatible & _INCOMPAT_CORRUPT:
        raise Qcow2Error("qemu marked this qcow2 corrupt (incompatible feature bit 1), so its "
                         "tables may be wrong: repair it first with qemu-img check -r all")
    if header.incompatible & _INCOMPAT_DATA_FILE:
        raise Qcow2UnsupportedError("a qcow2 with an external data file is not supported: its "
                                    f"data is in another file; {_CONVERT}")
    if header.crypt_method:
        method = {1: "AES", 2: "LUKS"}.get(header.crypt_method, f"method {header.crypt_method}")
        raise Qcow2UnsupportedError(f"an encrypted qcow2 ({method}) is not supported: decrypt "
                                    "it first with qemu-img convert, which needs its key")
    if header.backing_offset:
        raise Qcow2UnsupportedError(
            f"a qcow2 with a backing file ({_backing_name(header, read, file_size)}) is not "
            "supported: it needs that other file; flatten it first (qemu-img convert -O qcow2 "
            "IN OUT)")
    _check_compression(header)


def _check_compression(header: Qcow2Header) -> None:
    flagged = bool(header.incompatible & _INCOMPAT_COMPRESSION)
    kind = header.compression_type
    if flagged and kind == _ZSTD:
        raise Qcow2UnsupportedError("a zstd-compressed qcow2 is not supported (only zlib): "
                                    "decompress it first (qemu-img convert -O qcow2 IN OUT, "
                                    "without -c)")
    if flagged != bool(kind) or kind > _ZSTD:
        raise Qcow2Error(f"compression type {kind} with the compression type bit "
                         f"{'set' if flagged else 'clear'}: an unknown type, or a header that "
                         f"contradicts itself; {_CONVERT}")


def _backing_name(header: Qcow2Header, read: Read, file_size: int) -> str:
    """The backing file's name, quoted and cut to one short line (the bytes are untrusted)."""
    length = min(header.backing_size, 1023)
    if header.backing_offset + length > file_size:
        return "its name lies outside the file"
    name = read(header.backing_offset, length).decode("utf-8", "replace")
    return repr(name if len(name) <= 200 else name[:197] + "...")


# --- which clusters hold data: the allocation map ------------------------------------------


def _has_data(entry: int, bitmap: int, header: Qcow2Header) -> bool:
    """Whether reading the cluster reads the file (or fails): anything unsure counts as data.

    A zero flag in a version 2 image, where bit 0 is reserved, counts as data so the read
    reports it, as qemu does.
    """
    if entry & _COMPRESSED:
        return True
    if header.extended:
        return bool(bitmap & _ALL_SUBCLUSTERS)
    if entry & _ZERO and header.version == 3:
        return False
    return bool(entry & (_OFFSET_MASK | _ZERO))


def _l2_pairs(table: bytes, extended: bool) -> Iterator[tuple[int, int]]:
    """``(descriptor, subcluster bitmap)`` of every entry of an L2 table (bitmap 0 if not
    extended)."""
    if extended:
        yield from _PAIR.iter_unpack(table)
    else:
        for (entry,) in _ENTRY.iter_unpack(table):
            yield entry, 0


def _clusters(read: Read, header: Qcow2Header, file_size: int) -> Iterator[int]:
    """Indexes of the virtual clusters that may hold data, in order."""
    cs, per_l2, needed = header.cluster_size, header.l2_entries, header.clusters
    budget = file_size  # bytes the tables may claim to store: every cluster is in the file
    compressed = max(1, cs // DEFLATE_MAX_RATIO)
    for first in range(0, header.l1_needed, _L1_CHUNK):
        count = min(_L1_CHUNK, header.l1_needed - first)
        l1 = read(header.l1_offset + first * 8, count * 8)
        for i, (entry,) in enumerate(_ENTRY.iter_unpack(l1)):
            l2_offset = entry & _OFFSET_MASK
            if not l2_offset:
                continue
            budget -= cs
            if l2_offset % cs or l2_offset + cs > file_size or budget < 0:
                raise Qcow2Error(f"L2 table at offset {l2_offset} is misaligned, outside the "
                                 "file, or one of more tables than the file holds")
            table = read(l2_offset, cs)
            if len(table) < cs:
                raise Qcow2Error(f"the file ends inside the L2 table at offset {l2_offset}")
            base = (first + i) * per_l2
            for j, (l2, bitmap) in enumerate(_l2_pairs(table, header.extended)):
                if not (l2 or bitmap) or not _has_data(l2, bitmap, header):
                    continue
                budget -= compressed if l2 & _COMPRESSED else cs
                if budget < 0:
                    raise Qcow2Error("the L2 tables claim more stored clusters than the "
                                     f"file of {file_size} bytes can hold")
                if base + j < needed:
                    yield base + j


def _merge(indexes: Iterator[int], header: Qcow2Header) -> Iterator[tuple[int, int]]:
    """Runs of consecutive cluster indexes as ``(virtual offset, length)``, cut at the size."""
    cs = header.cluster_size
    start = end = -1
    for index in indexes:
        if index == end:
            end += 1
            continue
        if start >= 0:
            yield start * cs, min(end * cs, header.size) - start * cs
        start, end = index, index + 1
    if start >= 0:
        yield start * cs, min(end * cs, header.size) - start * cs


def allocated_ranges(read: Read, file_size: int) -> Iterator[tuple[int, int]]:
    """``(virtual offset, length)`` of the runs of clusters that may hold data, merged.

    Compressed clusters count as allocated; clusters that read as zeros (the zero flag, or
    extended entries with no allocated subcluster) do not.

    Raises:
        Qcow2Error: see :func:`read_header`; a table outside the file, or claiming more than
            the file can store (raised while iterating).
    """
    header = read_header(read, file_size)
    return _merge(_clusters(read, header, file_size), header)


# --- the data -------------------------------------------------------------------------------


class _Lru:
    """A small LRU of byte strings, bounded in entries."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, bytes] = OrderedDict()

    def get(self, key: int) -> bytes | None:
        """The cached bytes, now the most recently used, or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: int, value: bytes) -> None:
        """Keep ``value``, dropping the least recently used beyond the capacity."""
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class _Pieces:
    """The parts of one read, merged as they come: file ranges that follow each other become
    one ``pread``, zeros one buffer, so a stretch of contiguous clusters costs one read."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._parts: list[bytes] = []
        self._file_start = self._file_length = self._zeros = 0

    def file(self, start: int, length: int) -> None:
        """``length`` bytes of the file at ``start``."""
        if self._file_length and self._file_start + self._file_length == start:
            self._file_length += length
            return
        self._flush()
        self._file_start, self._file_length = start, length

    def zeros(self, length: int) -> None:
        """``length`` zero bytes."""
        if not self._zeros:
            self._flush()
        self._zeros += length

    def data(self, data: bytes) -> None:
        """Bytes already in memory (an inflated cluster)."""
        self._flush()
        self._parts.append(data)

    def _flush(self) -> None:
        if self._file_length:
            data = self._read(self._file_start, self._file_length)
            if len(data) < self._file_length:
                raise Qcow2Error(f"the file ends inside the data at offset {self._file_start}")
            self._parts.append(data)
            self._file_length = 0
        if self._zeros:
            self._parts.append(bytes(self._zeros))
            self._zeros = 0

    def join(self) -> bytes:
        """Everything, in order (the one part itself when there is one, no copy)."""
        self._flush()
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)


class Qcow2Image:
    """A qcow2 file read as its virtual disk: ``size``, ``read``, ``allocated_ranges``.

    ``read`` reads the image file (``(offset, length) -> bytes``); every read of the file goes
    through it, so the caller can count what the image cost.

    Raises:
        Qcow2Error: from the constructor, see :func:`read_header` and :func:`check_readable`;
            from ``read``, a table or cluster outside the file or not as the format allows.
    """

    def __init__(self, read: Read, file_size: int, header: Qcow2Header | None = None) -> None:
        self.header = header if header is not None else read_header(read, file_size)
        check_readable(self.header, read, file_size)
        self.size = self.header.size
        self._read, self._file_size = read, file_size
        self._l1 = read(self.header.l1_offset, self.header.l1_needed * 8)
        if len(self._l1) < self.header.l1_needed * 8:
            raise Qcow2Error("the file ends inside the L1 table")
        cs = self.header.cluster_size
        self._tables = _Lru(min(1024, max(4, _CACHE_BYTES // cs)))
        self._inflated = _Lru(min(64, max(2, _CACHE_BYTES // 4 // cs)))

    def allocated_ranges(self) -> Iterator[tuple[int, int]]:
        """See :func:`allocated_ranges`."""
        return _merge(_clusters(self._read, self.header, self._file_size), self.header)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset`` of the virtual disk; reads past the end are cut short."""
        length = max(0, min(length, self.size - offset))
        if offset < 0 or not length:
            return b""
        pieces = _Pieces(self._read)
        cs, end = self.header.cluster_size, offset + length
        while offset < end:
            index, within = divmod(offset, cs)
            n = min(cs - within, end - offset)
            self._cluster(index, within, n, pieces)
            offset += n
        return pieces.join()

    def _cluster(self, index: int, within: int, n: int, pieces: _Pieces) -> None:
        """Bytes ``within .. within + n`` of virtual cluster ``index``."""
        entry, bitmap = self._l2_entry(index)
        if entry & _COMPRESSED:
            pieces.data(self._inflate(entry)[within:within + n])
        elif self.header.extended:
            self._subclusters(index, entry, bitmap, within, n, pieces)
        elif entry & _ZERO:
            if self.header.version < 3:
                raise Qcow2Error(f"cluster {index} has the zero flag, reserved in a version 2 "
                                 "image")
            pieces.zeros(n)
        elif entry & _OFFSET_MASK:
            pieces.file(self._host(index, entry & _OFFSET_MASK, self.header.cluster_size)
                        + within, n)
        else:
            pieces.zeros(n)

    def _subclusters(self, index: int, entry: int, bitmap: int, within: int, n: int,
                     pieces: _Pieces) -> None:
        """An extended entry: allocated subclusters from the file, the others zeros."""
        allocated, zero = bitmap & _ALL_SUBCLUSTERS, bitmap >> _SUBCLUSTERS
        host = entry & _OFFSET_MASK
        if allocated & zero or (allocated and not host):
            raise Qcow2Error(f"the L2 entry of cluster {index} has subclusters both allocated "
                             "and zero, or allocated with no cluster offset")
        if not allocated:
            pieces.zeros(n)
            return
        sc = self.header.cluster_size // _SUBCLUSTERS
        host = self._host(index, host, allocated.bit_length() * sc)
        if allocated == _ALL_SUBCLUSTERS:
            pieces.file(host + within, n)
            return
        pos, end = within, within + n
        while pos < end:
            sub = pos // sc
            step = min((sub + 1) * sc, end) - pos
            if allocated >> sub & 1:
                pieces.file(host + pos, step)
            else:
                pieces.zeros(step)
            pos += step

    def _l2_entry(self, index: int) -> tuple[int, int]:
        """``(descriptor, subcluster bitmap)`` of virtual cluster ``index``."""
        l1_index, l2_index = divmod(index, self.header.l2_entries)
        (l1_entry,) = _ENTRY.unpack_from(self._l1, l1_index * 8)
        l2_offset = l1_entry & _OFFSET_MASK
        if not l2_offset:
            return 0, 0
        table = self._table(l2_offset)
        if self.header.extended:
            pair: tuple[int, int] = _PAIR.unpack_from(table, l2_index * 16)
            return pair
        return _ENTRY.unpack_from(table, l2_index * 8)[0], 0

    def _table(self, l2_offset: int) -> bytes:
        """The L2 table at ``l2_offset``, from the cache or the file."""
        table = self._tables.get(l2_offset)
        if table is None:
            cs = self.header.cluster_size
            if l2_offset % cs or l2_offset + cs > self._file_size:
                raise Qcow2Error(f"the L2 table at offset {l2_offset} is misaligned or lies "
                                 "outside the file")
            table = self._read(l2_offset, cs)
            if len(table) < cs:
                raise Qcow2Error(f"the file ends inside the L2 table at offset {l2_offset}")
            self._tables.put(l2_offset, table)
        return table

    def _host(self, index: int, host: int, used: int) -> int:
        """Check a data cluster's offset: aligned, and its first ``used`` bytes (those the
        virtual disk and the allocated subclusters reach) inside the file."""
        cs = self.header.cluster_size
        used = min(used, self.size - index * cs)
        if host % cs or host + used > self._file_size:
            raise Qcow2Error(f"the data of cluster {index} at offset {host} is misaligned or "
                             f"runs past the end of the file ({self._file_size} bytes)")
        return host

    def _inflate(self, entry: int) -> bytes:
        """A compressed cluster, inflated to exactly one cluster (cached by its descriptor).

        The descriptor holds the file offset in its low ``62 - (cluster_bits - 8)`` bits and,
        above them up to bit 61, the number of 512-byte sectors after the first one. The last
        sector may run past the end of the file (qemu reads zeros there), so the input is cut
        at the end of the file; the output is cut at one cluster and must fill it.
        """
        cached = self._inflated.get(entry)
        if cached is not None:
            return cached
        cs, bits = self.header.cluster_size, self.header.cluster_bits
        shift = 62 - (bits - 8)
        start = entry & ((1 << shift) - 1)
        sectors = (entry >> shift & ((1 << (bits - 8)) - 1)) + 1
        if start >= self._file_size:
            raise Qcow2Error(f"the compressed cluster at offset {start} lies past the end of "
                             f"the file ({self._file_size} bytes)")
        claimed = sectors * SECTOR - start % SECTOR
        length = min(claimed, self._file_size - start)
        try:
            data = zlib.decompressobj(_DEFLATE_WINDOW).decompress(self._read(start, length), cs)
        except zlib.error as exc:
            raise Qcow2Error(f"the compressed cluster at offset {start} does not inflate: "
                             f"{exc}") from None
        if len(data) < cs:
            cut = " (cut short by the end of the file)" if length < claimed else ""
            raise Qcow2Error(f"the compressed cluster at offset {start} inflates to "
                             f"{len(data)} bytes, not a whole cluster of {cs}{cut}")
        self._inflated.put(entry, data)
        return data
