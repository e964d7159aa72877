"""Read any supported disk image as one flat, virtual disk.

Every reader answers the same three questions: how large is the virtual disk, what bytes are
at an offset, and which ranges may hold data (so that converting, uploading or checking never
walks the holes). Each counts the bytes it reads, so benchmarks can say what a check cost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from vmimage.disk import vhd
from vmimage.disk.sparse import data_extents
from vmimage.errors import InputError

if TYPE_CHECKING:
    from vmimage.disk import qcow2


class DiskSource(Protocol):
    """A virtual disk, read-only."""

    path: str
    size: int
    bytes_read: int

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``; reads past the end are cut short."""
        ...

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """Regions of the virtual disk that may hold data; everything else reads as zeros."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class FlatSource:
    """A raw image or a fixed VHD: the virtual disk is the file's first ``size`` bytes."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path, self.fd, self.size = path, fd, size
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        """Read with ``pread``: no shared file position, so readers can interleave."""
        length = max(0, min(length, self.size - offset))
        data = os.pread(self.fd, length, offset) if length else b""
        self.bytes_read += len(data)
        return data

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """Ask the filesystem (SEEK_DATA/SEEK_HOLE)."""
        return data_extents(self.fd, 0, self.size)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)


class Reader(Protocol):
    """Anything that reads bytes at an offset: a file, the cached disk, an LVM volume."""

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``; reads past the end are cut short."""
        ...


class FdReader:
    """Reads a file descriptor with ``pread``, counting the bytes (what the image cost)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``."""
        data = os.pread(self.fd, length, offset)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        """Close the file descriptor (for the source that owns it)."""
        os.close(self.fd)


class ImageFile(Reader, Protocol):
    """An image file's own bytes (not its virtual disk's), read at offsets: a local file
    (:class:`FdReader`) or a page blob read by ranges (:mod:`vmimage.disk.remote`)."""

    @property
    def bytes_read(self) -> int:
        """What reading the file cost so far: bytes read from disk, or transferred."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class CountsFileReads:
    """``bytes_read`` for a source that reads its file through an :class:`ImageFile`: what
    the file read (or transferred), plus what a caller (the convert loop, copying ranges
    itself) adds."""

    reader: ImageFile
    _own_reads: int = 0

    @property
    def bytes_read(self) -> int:
        """Bytes read from the image file (not the virtual bytes returned)."""
        return self.reader.bytes_read + self._own_reads

    @bytes_read.setter
    def bytes_read(self, value: int) -> None:
        self._own_reads = value - self.reader.bytes_read


class DynamicVhdSource(CountsFileReads):
    """A dynamic VHD: blocks located through the BAT, sectors present per the block's bitmap.

    One implementation for every place the VHD file lies: ``file`` is a local file's
    descriptor (read with ``pread``, through an :class:`FdReader`), or any :class:`ImageFile`,
    such as a page blob read by ranges (:mod:`vmimage.disk.remote`). Only how the file's
    bytes are fetched differs; the BAT, the bitmaps and the zeros of absent sectors do not.
    """

    def __init__(self, path: str, file: int | ImageFile, footer: vhd.Footer,
                 header: vhd.DynamicHeader, bat: Sequence[int]) -> None:
        self.path, self.footer, self.header, self.bat = path, footer, header, bat
        self.reader: ImageFile = FdReader(file) if isinstance(file, int) else file
        self._read = self.reader.read  # bound once: called for every block a read crosses
        self.size = footer.current_size
        self._own_reads = 0
        self._bitmaps: dict[int, bytes] = {}

    @property
    def fd(self) -> int:
        """The local file's descriptor, which the converter copies runs from.

        Raises:
            AttributeError: the file is not a local one (a blob has no descriptor).
        """
        if isinstance(self.reader, FdReader):
            return self.reader.fd
        raise AttributeError(f"{self.path}: not a local file, no file descriptor")

    def _bitmap(self, block: int) -> bytes:
        cached = self._bitmaps.get(block)
        if cached is None:
            cached = self._read(self.bat[block] * vhd.SECTOR, self.header.bitmap_size)
            self._bitmaps[block] = cached
        return cached

    def _read_block_part(self, block: int, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start`` inside ``block``; absent sectors are zeros.

        The bytes the file returns are handed on as they are when every sector is present
        (the common case): a converter moves a GiB through here, and each copy costs ~0.1 s.
        """
        entry = self.bat[block]
        if entry == vhd.BAT_UNUSED:
            return bytes(length)
        base = entry * vhd.SECTOR + self.header.bitmap_size
        raw = self._read(base + start, length)
        if len(raw) < length:
            raw += bytes(length - len(raw))
        bitmap = self._bitmap(block)
        first, last = start // vhd.SECTOR, (start + length - 1) // vhd.SECTOR
        lo_byte, hi_byte = (first + 7) // 8, (last + 1) // 8  # whole bytes inside the range
        if (bitmap[lo_byte:hi_byte] == b"\xff" * max(0, hi_byte - lo_byte)
                and all(bitmap[i // 8] & (0x80 >> (i % 8))
                        for i in (*range(first, min(lo_byte * 8, last + 1)),
                                  *range(max(hi_byte * 8, first), last + 1)))):
            return raw  # every sector present, checked a bitmap byte at a time
        data = bytearray(raw)
        for sector in range(first, last + 1):
            if not bitmap[sector // 8] & (0x80 >> (sector % 8)):
                lo = max(sector * vhd.SECTOR, start) - start
                hi = min((sector + 1) * vhd.SECTOR, start + length) - start
                data[lo:hi] = bytes(hi - lo)
        return bytes(data)

    def read(self, offset: int, length: int) -> bytes:
        """Assemble the range from the blocks it crosses (one join, no intermediate copies)."""
        length = max(0, min(length, self.size - offset))
        parts = []
        bs = self.header.block_size
        while length > 0:
            block, start = divmod(offset, bs)
            part = min(length, bs - start)
            parts.append(self._read_block_part(block, start, part))
            offset, length = offset + part, length - part
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def present_runs(self) -> Iterator[tuple[int, int, int]]:
        """``(virtual offset, file offset, length)`` of every run of present sectors, in order.

        What a converter needs to copy a dynamic disk from file offsets rather than through
        ``read``: allocated blocks, cut where the block's bitmap says a sector is absent (it
        reads as zeros, so it stays a hole), and at the virtual size.
        """
        bs = self.header.block_size
        for block, entry in enumerate(self.bat):
            virtual = block * bs
            if entry == vhd.BAT_UNUSED or virtual >= self.size:
                continue
            base = entry * vhd.SECTOR + self.header.bitmap_size
            limit = min(bs, self.size - virtual)
            sectors = -(-limit // vhd.SECTOR)
            bitmap = self._bitmap(block)
            whole = sectors // 8
            if bitmap[:whole] == b"\xff" * whole and all(
                    bitmap[i // 8] & (0x80 >> (i % 8)) for i in range(whole * 8, sectors)):
                yield virtual, base, limit
                continue
            run = -1
            for i in range(sectors + 1):
                present = i < sectors and bitmap[i // 8] & (0x80 >> (i % 8))
                if present and run < 0:
                    run = i
                elif not present and run >= 0:
                    length = min(i * vhd.SECTOR, limit) - run * vhd.SECTOR
                    yield virtual + run * vhd.SECTOR, base + run * vhd.SECTOR, length
                    run = -1

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """Allocated blocks, merged where they follow each other."""
        bs = self.header.block_size
        run_start = None
        for i, entry in enumerate(self.bat):
            if entry != vhd.BAT_UNUSED and i * bs < self.size:
                if run_start is None:
                    run_start = i
            elif run_start is not None:
                yield run_start * bs, min(i * bs, self.size) - run_start * bs
                run_start = None
        if run_start is not None:
            end = min(len(self.bat) * bs, self.size)
            yield run_start * bs, end - run_start * bs

    def close(self) -> None:
        """Close the file (the descriptor, or the blob's connections)."""
        self.reader.close()


class FileWindow:
    """A file object (``read``/``seek``/``tell``/``get_size``) over ``size`` bytes at ``offset``.

    This is what ``pyfsext``, ``pyfsxfs`` and ``pyvslvm`` open: a partition or a logical
    volume seen as a file of its own.
    """

    def __init__(self, reader: Reader, offset: int, size: int) -> None:
        self.reader, self.offset, self.size = reader, offset, size
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the current position."""
        if size is None or size < 0:
            size = self.size - self.pos
        size = max(0, min(size, self.size - self.pos))
        data = self.reader.read(self.offset + self.pos, size) if size else b""
        self.pos += len(data)
        return data

    def read_at(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset`` inside the window, without moving the position."""
        length = max(0, min(length, self.size - offset))
        return self.reader.read(self.offset + offset, length) if length and offset >= 0 else b""

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        """The current position."""
        return self.pos

    def get_size(self) -> int:
        """The window's length."""
        return self.size


class Qcow2Source(CountsFileReads):
    """A qcow2, read by vmimage's own reader (:mod:`vmimage.disk.qcow2`), which also walks
    the L1/L2 tables for the clusters that hold data, so only those are read."""

    def __init__(self, path: str, fd: int, reader: FdReader, image: qcow2.Qcow2Image) -> None:
        self.path, self.fd, self.reader, self.image = path, fd, reader, image
        self.size = image.size
        self._own_reads = 0

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``; a table or cluster the reader refuses, or a failing read of
        the file, is one line naming the image and the virtual offset."""
        from vmimage.disk.qcow2 import Qcow2Error

        try:
            return self.image.read(offset, length)
        except Qcow2Error as exc:
            raise InputError(self.path, f"read error at virtual offset {offset}: {exc}") from None
        except OSError as exc:
            raise InputError(self.path, f"read error at virtual offset {offset}: "
                                        f"{os.strerror(exc.errno or 5)}") from None

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """The clusters the tables say may hold data (compressed ones included)."""
        from vmimage.disk.qcow2 import Qcow2Error

        try:
            yield from self.image.allocated_ranges()
        except Qcow2Error as exc:
            raise InputError(self.path, f"corrupt qcow2: {exc}") from None
        except OSError as exc:
            raise InputError(self.path, f"read error in the qcow2 tables: "
                                        f"{os.strerror(exc.errno or 5)}") from None

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)


class LibyalSource(CountsFileReads):
    """VMDK and VHDX through the libyal bindings (pyvmdk, pyvhdi).

    No binding says which blocks are allocated (rulings): where the opener can tell from the
    format's own tables (a sparse VMDK's grain tables, a VHDX's BAT) it passes
    ``ranges``, so only those are read; otherwise ``data_ranges`` is the whole disk and callers
    that care skip zero chunks themselves.
    """

    def __init__(self, path: str, fd: int, handle: Any, reader: FdReader,  # noqa: ANN401
                 ranges: Callable[[], Iterator[tuple[int, int]]] | None = None) -> None:
        self.path, self.fd, self.handle, self.reader = path, fd, handle, reader
        self.size = int(handle.get_media_size())
        self._own_reads = 0
        self._ranges = ranges

    def read(self, offset: int, length: int) -> bytes:
        """Delegate to the binding; its errors (corrupt tables, short files) become InputError.

        The bindings raise a bare OSError with several lines of libyal context; the CLI must
        print one line naming the file instead of a traceback.
        """
        length = max(0, min(length, self.size - offset))
        if not length:
            return b""
        try:
            return bytes(self.handle.read_buffer_at_offset(length, offset))
        except OSError as exc:
            # libyal chains its call stack into one message; its first sentence says enough.
            first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(self.path, f"read error at virtual offset {offset}: {first}") from None

    def data_ranges(self) -> Iterator[tuple[int, int]]:
        """The allocated ranges where known, else the whole disk (bindings do not say)."""
        if self._ranges is None:
            yield 0, self.size
            return
        for offset, length in self._ranges():
            length = min(length, self.size - offset)
            if length > 0:
                yield offset, length

    def close(self) -> None:
        """Close the binding, then the file."""
        self.handle.close()
        os.close(self.fd)
