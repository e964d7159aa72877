"""Byte access under the filesystem readers: a block cache over the disk, and windows onto it.

The libyal bindings read in small pieces (a superblock, an inode, a 4 KiB directory block),
hundreds of calls to read one file. Over a local file that costs little; over a dynamic VHD,
a qcow2 or, later, HTTP range requests, each call is a real read. A cache of aligned 64 KiB
blocks turns those many small reads into few large ones, and windows (a partition, an LVM
logical volume) are file objects in the shape the bindings want, all sharing that one cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from vmimage.disk.sources import DiskSource
from vmimage.log import debugging, get

_log = get("reads")

BLOCK = 64 * 1024
CAPACITY = 256  # blocks: 16 MiB, a whole Debian dpkg status file and its neighbours


class BlockCache:
    """An LRU cache of aligned blocks over a :class:`DiskSource`.

    Missing blocks that follow each other are fetched with one read, so a large file's
    content costs one read per run of blocks, not one per block.
    """

    def __init__(self, source: DiskSource, block: int = BLOCK, capacity: int = CAPACITY) -> None:
        self.source, self.block, self.capacity = source, block, capacity
        self.size = source.size
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self.calls = 0  # reads asked of the cache, for benchmarks

    def _fetch(self, first: int, last: int) -> None:
        """Load blocks ``first..last`` (inclusive) that are not cached, a run at a time."""
        index = first
        while index <= last:
            if index in self._blocks:
                self._blocks.move_to_end(index)
                index += 1
                continue
            run_end = index
            while run_end + 1 <= last and run_end + 1 not in self._blocks:
                run_end += 1
            data = self._read(index * self.block, (run_end - index + 1) * self.block)
            for i in range(index, run_end + 1):
                lo = (i - index) * self.block
                self._blocks[i] = data[lo:lo + self.block]
            index = run_end + 1
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)

    def _read(self, offset: int, length: int) -> bytes:
        """One read of the image (``--debug`` shows each, with its time)."""
        if not debugging(_log):
            return self.source.read(offset, length)
        start = time.perf_counter()
        data = self.source.read(offset, length)
        _log.debug("read %d bytes at offset %d in %.2f ms", len(data), offset,
                   1000 * (time.perf_counter() - start))
        return data

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``, from cached blocks."""
        self.calls += 1
        first, lo = divmod(offset, self.block)
        if lo + length <= self.block and offset + length <= self.size and offset >= 0:
            cached = self._blocks.get(first)  # the common case: a small read in a cached block
            if cached is not None:
                self._blocks.move_to_end(first)
                return cached[lo:lo + length]
        length = max(0, min(length, self.size - offset))
        if length == 0 or offset < 0:
            return b""
        first, last = offset // self.block, (offset + length - 1) // self.block
        if last - first >= self.capacity:  # larger than the cache: do not churn it
            return self._read(offset, length)
        self._fetch(first, last)
        if first == last:
            lo = offset - first * self.block
            return self._blocks[first][lo:lo + length]
        out = bytearray()
        for i in range(first, last + 1):
            out += self._blocks[i]
        lo = offset - first * self.block
        return bytes(out[lo:lo + length])


