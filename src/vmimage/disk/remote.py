"""A VHD whose bytes are not in a local file (a page blob), read by ranges.

:mod:`vmimage.disk.inspect` judges a local file; this judges the same things of a file that
is only reachable by ``read(offset, length)``: the footer at the end (its cookie, checksum,
disk type and size, and the file's length against the size), and for a dynamic VHD its header
and BAT. The messages are inspect's, so a blob and the same file copied to disk are refused
alike. Only VHD is read this way: it is the one format Azure takes, and a blob of another
format has no VHD footer, which is the refusal.

Under it, :class:`PagedFile` keeps what was fetched in 4 KiB pages and decides what a miss
fetches besides (:class:`ReadAhead`): every fetch is a round trip, so the libyal readers'
hundreds of small reads must become a few dozen requests, without downloading the disk.

No HTTP here (the disk layer knows bytes, not transports): the caller hands in a
:class:`Transport` (:mod:`vmimage.targets.remote` makes one of HTTP range requests).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from vmimage.disk import vhd
from vmimage.disk.inspect import VHD_DIFF, VHD_DYNAMIC, VHD_FIXED, DiskInfo
from vmimage.disk.sources import CountsFileReads, DiskSource, DynamicVhdSource, ImageFile
from vmimage.errors import InputError, UnsupportedError

_KINDS = {vhd.DISK_FIXED: VHD_FIXED, vhd.DISK_DYNAMIC: VHD_DYNAMIC,
          vhd.DISK_DIFFERENCING: VHD_DIFF}


class RangeFile(ImageFile, Protocol):
    """The bytes of an image file read by ranges; ``name`` is what messages show."""

    name: str
    length: int

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """Regions of the file that may hold data (the rest reads as zeros)."""
        ...


def judge_footer(name: str, tail: bytes, length: int) -> vhd.Footer:
    """The footer in ``tail`` (the file's last 512 bytes), judged as ``inspect`` judges a
    local file's.

    Raises:
        InputError: no VHD footer, a corrupt one, an unusable size, an unknown disk type.
    """
    if length < vhd.FOOTER_SIZE or len(tail) != vhd.FOOTER_SIZE:
        raise InputError(name, f"truncated footer: the file is {length} bytes, a VHD footer "
                               f"alone is {vhd.FOOTER_SIZE}")
    if tail[:8] != vhd.COOKIE:
        raise InputError(name, f"no VHD footer: the last 512 bytes start with {tail[:8]!r}, "
                               "not the cookie b'conectix' (not a VHD)")
    footer = vhd.Footer.unpack(tail)
    if not footer.checksum_ok:
        raise InputError(name, footer.problems()[0])
    if footer.fatal_size():
        raise InputError(name, footer.size_problem() or "unusable virtual size")
    if footer.disk_type not in _KINDS:
        raise InputError(name, f"VHD footer has disk type {footer.disk_type}, which is not "
                               "fixed, dynamic or differencing")
    return footer


def open_vhd(file: RangeFile, tail: bytes, allocated: int) -> tuple[DiskInfo, DiskSource]:
    """Judge the VHD in ``file`` (``tail``: its last 512 bytes, already read) and open its
    virtual disk. ``allocated`` is what the storage holds of it (a page blob's written pages).

    Raises:
        InputError: as :func:`judge_footer`; a fixed VHD shorter than its size; a dynamic VHD
            whose header, BAT or footer copy is wrong.
        UnsupportedError: a differencing VHD, which needs its parent.
    """
    footer = judge_footer(file.name, tail, file.length)
    fmt = _KINDS[footer.disk_type]
    info = DiskInfo(file.name, fmt, footer.current_size, file.length, allocated, footer)
    info.problems += footer.problems()
    if not info.whole_mib:
        info.problems.append(f"virtual size {info.virtual_size} is not a whole number of MiB, "
                             "which Azure requires")
    if fmt == VHD_DIFF:
        raise UnsupportedError(file.name, "differencing VHD is not supported: merge it into "
                                          "its parent first (qemu-img convert -O vpc)")
    if fmt == VHD_FIXED:
        expected = footer.current_size + vhd.FOOTER_SIZE
        if file.length < expected:
            raise InputError(file.name, f"truncated: the footer says {footer.current_size} "
                                        f"bytes of disk but the file holds only "
                                        f"{file.length - vhd.FOOTER_SIZE}")
        if file.length != expected:
            info.problems.append(f"file length {file.length} is not the virtual size + 512 "
                                 f"({expected})")
        return info, RangeFlatSource(file, footer.current_size)
    header, bat = _dynamic_layout(file, footer)
    info.dynamic_header = header
    info.allocated_blocks = len(bat) - bat.count(vhd.BAT_UNUSED)
    return info, DynamicVhdSource(file.name, file, footer, header, bat)


def _dynamic_layout(file: RangeFile, footer: vhd.Footer
                    ) -> tuple[vhd.DynamicHeader, Sequence[int]]:
    """The header and the BAT entries the virtual size needs, checked against the length (as
    ``inspect`` checks a local dynamic VHD), and the footer copy at offset 0."""
    name, end = file.name, file.length - vhd.FOOTER_SIZE
    if file.read(0, vhd.FOOTER_SIZE) != footer.pack():
        raise InputError(name, "the two footer copies of the dynamic VHD disagree (qemu-img "
                               "reads the copy at offset 0, vmimage the one at the end)")
    if footer.data_offset + 1024 > end:
        raise InputError(name, f"dynamic header at offset {footer.data_offset} lies past the "
                               f"end of the file ({file.length} bytes)")
    header = vhd.DynamicHeader.unpack(file.read(footer.data_offset, 1024))
    if header.problems():
        raise InputError(name, header.problems()[0])
    needed = -(-footer.current_size // header.block_size)
    if header.max_table_entries < needed or needed > vhd.MAX_BAT_ENTRIES:
        raise InputError(name, f"BAT of {header.max_table_entries} entries does not cover "
                               f"the virtual size {footer.current_size} within the "
                               f"{vhd.MAX_BAT_ENTRIES} entries vmimage reads")
    if header.table_offset + header.max_table_entries * 4 > end:
        raise InputError(name, f"BAT of {header.max_table_entries} entries at offset "
                               f"{header.table_offset} is larger than the file")
    bat = vhd.unpack_bat(file.read(header.table_offset, needed * 4), needed)
    last = (end - header.bitmap_size - header.block_size) // vhd.SECTOR
    for i, entry in enumerate(bat):
        if last < entry != vhd.BAT_UNUSED:
            raise InputError(name, f"BAT entry {i} points past the end of the file (sector "
                                   f"{entry}, file is {file.length} bytes)")
    return header, bat


class RangeFlatSource(CountsFileReads):
    """A fixed VHD read by ranges: the virtual disk is the file's first ``size`` bytes.

    A dynamic one is :class:`~vmimage.disk.sources.DynamicVhdSource`, as for a local file.
    """

    def __init__(self, file: RangeFile, size: int) -> None:
        self.reader = self.file = file
        self.size, self.path = size, file.name
        self._own_reads = 0

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset`` of the virtual disk."""
        length = max(0, min(length, self.size - offset))
        return self.file.read(offset, length) if length and offset >= 0 else b""

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """What the storage says holds data, cut at the virtual size."""
        for offset, length in self.file.data_ranges():
            length = min(length, self.size - offset)
            if length > 0:
                yield offset, length

    def close(self) -> None:
        """Close the file."""
        self.file.close()


# ---- reading by ranges: pages, read-ahead, holes ---------------------------------------------

KiB, MiB = 1024, 1024 * 1024


@dataclass(frozen=True)
class ReadAhead:
    """How a remote file is read. Every request costs a round trip, every byte a transfer;
    these trade one for the other (docs/remote-check.md has the measurements).

    The libyal bindings read in small pieces: an inode (256 bytes), a directory block, a group
    descriptor. Reads are kept in ``page``-sized pages. The first miss in a ``region`` fetches
    ``first`` bytes from the missing page on; a later miss in the same region, where the
    reader has shown it keeps coming back (inode tables, a directory's files), fetches
    ``later``. A fetch stops early at a page already held and never ends in a hole the
    storage reported (unwritten pages read as zeros without a request).
    """

    page: int = 4 * KiB
    first: int = 32 * KiB
    later: int = 64 * KiB
    region: int = 1 * MiB
    max_request: int = 4 * MiB  # one response at most; larger reads go in parallel pieces
    capacity: int = 64 * MiB  # pages kept


class Transport(Protocol):
    """What :class:`PagedFile` reads through: ranges in, bodies out (in parallel if it can)."""

    bytes_read: int
    requests: int

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each ``(offset, length)``, in order; each body exactly ``length``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class PagedFile:
    """A :class:`RangeFile` over a :class:`Transport`: pages cached, read ahead, holes known.

    ``data`` lists the ``(start, end)`` byte ranges the storage says were written (a page
    blob's page ranges), sorted; everything else reads as zeros without a request. None: not
    known, every page is fetched.

    A fetch that fails is kept in :attr:`failure`, and every later read fails at once with
    it: the filesystem readers above turn a failed read into "unreadable" and go on, so the
    caller must be able to ask afterwards whether the file ever failed (and a dead link must
    not cost one timeout per read meanwhile).
    """

    def __init__(self, name: str, length: int, transport: Transport,
                 data: Sequence[tuple[int, int]] | None, tuning: ReadAhead | None = None
                 ) -> None:
        self.name, self.length, self.transport = name, length, transport
        self.tuning = tuning or ReadAhead()
        self._data = list(data) if data is not None else None
        self._starts = [start for start, _ in self._data or ()]
        self._pages: OrderedDict[int, bytes] = OrderedDict()
        self._misses: Counter[int] = Counter()
        self._page_count = -(-length // self.tuning.page)
        #: The first fetch that failed (a refusal, a dropped connection), or None.
        self.failure: InputError | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes transferred so far."""
        return self.transport.bytes_read

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """The written ranges, or the whole file when they are not known."""
        if self._data is None:
            yield 0, self.length
            return
        for start, end in self._data:
            yield start, end - start

    def _written(self, page: int) -> bool:
        if self._data is None:
            return True
        lo, hi = page * self.tuning.page, (page + 1) * self.tuning.page
        i = bisect_right(self._starts, hi - 1) - 1
        return i >= 0 and self._data[i][1] > lo

    def read(self, offset: int, length: int) -> bytes:
        """The file's bytes at ``offset``; reads past the end are cut short."""
        end = min(offset + length, self.length)
        if offset < 0 or end <= offset:
            return b""
        size = self.tuning.page
        first, last = offset // size, (end - 1) // size
        if (last - first + 1) * size > self.tuning.capacity // 4:  # a large file: no caching
            return self._direct(offset, end)
        missing = [p for p in range(first, last + 1)
                   if p not in self._pages and self._written(p)]
        if missing:
            self._load(missing)
        out = b"".join(self._page(p) for p in range(first, last + 1))
        lo = offset - first * size
        return out[lo:lo + end - offset]

    def _direct(self, offset: int, end: int) -> bytes:
        """A read larger than the cache should hold (a big file): its written parts only, in
        pieces of at most one response, fetched in parallel; the rest is zeros."""
        step = self.tuning.max_request
        spans = [(offset, end)] if self._data is None else \
            [(max(offset, lo), min(end, hi)) for lo, hi in self._data if lo < end and offset < hi]
        ranges = [(pos, min(step, hi - pos)) for lo, hi in spans for pos in range(lo, hi, step)]
        out = bytearray(end - offset)
        for (pos, length), body in zip(ranges, self._fetch(ranges), strict=True):
            out[pos - offset:pos - offset + length] = body
        return bytes(out)

    def _fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Every fetch goes through here, so the first failure is kept and ends the reading.

        Raises:
            InputError: this fetch failed, or an earlier one did (the same problem again).
        """
        if self.failure is not None:
            raise InputError(self.failure.source, self.failure.problem)
        try:
            return self.transport.fetch(ranges)
        except InputError as exc:
            self.failure = exc
            raise

    def _load(self, missing: list[int]) -> None:
        """Fetch the missing pages and the read-ahead window after them, in one request
        (or a few in parallel when the span is larger than one response may be)."""
        size, tuning = self.tuning.page, self.tuning
        region = missing[0] * size // tuning.region
        window = tuning.later if self._misses[region] else tuning.first
        self._misses[region] += 1
        stop = min(self._page_count, max(missing[-1] + 1, missing[0] + window // size))
        last = missing[-1]
        for page in range(missing[-1] + 1, stop):
            if page in self._pages:
                break
            if self._written(page):
                last = page
        start, end = missing[0] * size, min((last + 1) * size, self.length)
        step = tuning.max_request
        ranges = [(pos, min(step, end - pos)) for pos in range(start, end, step)]
        for (pos, _), body in zip(ranges, self._fetch(ranges), strict=True):
            for i in range(0, len(body), size):
                self._keep((pos + i) // size, body[i:i + size])

    def _keep(self, page: int, data: bytes) -> None:
        self._pages[page] = data
        self._pages.move_to_end(page)
        while len(self._pages) * self.tuning.page > self.tuning.capacity:
            self._pages.popitem(last=False)

    def _page(self, page: int) -> bytes:
        held = self._pages.get(page)
        if held is not None:
            self._pages.move_to_end(page)
            return held
        size = self.tuning.page
        length = min(size, self.length - page * size)
        if not self._written(page):
            return bytes(length)
        body = self._fetch([(page * size, length)])[0]  # evicted meanwhile
        self._keep(page, body)
        return body

    def close(self) -> None:
        """Drop the pages and close the transport."""
        self._pages.clear()
        self.transport.close()
