"""Make fixed VHDs: convert, create, resize, and turn a raw file into a VHD in place.

Outputs stay sparse: only ranges that hold data are written, holes stay holes. A conversion
or a creation writes a new temporary file with an unpredictable name beside the output and
renames it when complete (:mod:`vmimage.disk.output`), so an interrupted run leaves the input
untouched and no half-written output under the final name; rerun it. Commands that change a
file in place (``--in-place``, ``resize``) judge everything before the first write and put the
file back as it was when a write fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmimage.disk import gpt, output, vhd
from vmimage.disk.inspect import RAW, VHD_FIXED, DiskInfo, inspect_disk, open_disk
from vmimage.disk.sources import DiskSource, DynamicVhdSource, FlatSource
from vmimage.disk.sparse import (
    BLOCK,
    ZERO_CHUNK,
    clone_or_copy,
    copy_nonzero,
    data_extents,
    is_zero,
    nonzero_runs,
)
from vmimage.errors import InputError
from vmimage.units import MiB, format_size

Progress = Callable[[int], None]
CHUNK = len(ZERO_CHUNK)


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion did, for the CLI's summary line and for benchmarks."""

    output: str
    virtual_size: int
    data_bytes_written: int
    method: str


def round_up_mib(size: int) -> int:
    """Azure wants whole MiB; conversions round up, never down (no data is cut)."""
    return -(-size // MiB) * MiB


def _check_target_size(source: str, size: int, minimum: int) -> None:
    if size % MiB:
        raise InputError(source, f"--size {size} is not a whole number of MiB, which Azure "
                                 "requires")
    if size < minimum:
        raise InputError(source, f"--size {format_size(size)} is smaller than the disk's "
                                 f"{format_size(minimum)}")
    if size > vhd.MAX_VIRTUAL_SIZE:
        raise InputError(source, f"--size {format_size(size)} is larger than vmimage accepts")


def _write_error(path: str | os.PathLike[str], exc: OSError, doing: str) -> InputError:
    """An OSError while writing (ENOSPC, EACCES, EIO) as the one-line message the CLI prints."""
    return InputError(path, f"{doing} failed: {output.problem(exc)}")


def _copy_flat(source: FlatSource, dst: int) -> tuple[int, str]:
    """Raw or fixed VHD data: reflink where possible, else the data extents' non-zero blocks.

    A reflink shares the source's blocks (zero blocks included) and costs no space, so it is
    kept where the filesystem offers it.
    """
    read, written, how = clone_or_copy(source.fd, dst, source.size)  # a cloned footer dropped
    source.bytes_read += read
    return written, how


def _copy_dynamic(source: DynamicVhdSource, dst: int, progress: Progress | None) -> int:
    """Dynamic VHD: copy each run of present sectors to its virtual offset, zeros as holes.

    ``present_runs`` turns the BAT and the sector bitmaps into file ranges, so absent blocks
    and sectors are never read; a block that is allocated but holds zeros (Disk2VHD writes
    them) is read and left a hole, as qemu-img leaves it.
    """
    written = 0
    for virtual, file_offset, length in source.present_runs():
        read, n = copy_nonzero(source.fd, dst, file_offset, length, virtual)
        source.bytes_read += read
        written += n
        if progress:
            progress(length)
    return written


def _copy_scanning(source: DiskSource, dst: int, progress: Progress | None) -> int:
    """qcow2, VMDK, VHDX: read the data ranges, write only the non-zero 4 KiB blocks."""
    written = 0
    for offset, length in source.data_ranges():
        end = offset + length
        while offset < end:
            n = min(CHUNK, end - offset)
            chunk = source.read(offset, n)
            if not is_zero(chunk):
                view = memoryview(chunk)
                for start, length in nonzero_runs(chunk):
                    os.pwrite(dst, view[start:start + length], offset + start)
                    written += length
            offset += n
            if progress:
                progress(n)
    return written


def convert(src: str | os.PathLike[str], out: str | os.PathLike[str], size: int | None = None,
            force: bool = False, progress: Progress | None = None) -> ConvertResult:
    """Convert any supported image into a sparse fixed VHD at ``out``.

    The output is written to a temporary file beside it (see :mod:`vmimage.disk.output`) and
    renamed over it when complete, so a failure leaves neither a half output nor a temporary.

    Raises:
        InputError: the input cannot be read, the output exists (without ``force``) or is not
            a regular file, or ``size`` is not a whole MiB at least as large as the disk.
    """
    src_path, out_path = Path(src), Path(out)
    info, source = open_disk(src_path)
    try:
        target = round_up_mib(info.virtual_size) if size is None else size
        _check_target_size(str(src_path), target, info.virtual_size)
        src_stat = src_path.stat()

        def fill(fd: int) -> tuple[int, str]:
            if isinstance(source, FlatSource):
                written, method = _copy_flat(source, fd)
            elif isinstance(source, DynamicVhdSource):
                written, method = _copy_dynamic(source, fd, progress), "sparse copy (BAT)"
            else:
                written, method = _copy_scanning(source, fd, progress), "zero-scan"
            os.ftruncate(fd, target)
            os.pwrite(fd, vhd.Footer.new(target).pack(), target)
            return written, method

        written, method = output.write_new(out_path, force, src_stat, fill, "conversion")
    finally:
        source.close()
    return ConvertResult(str(out_path), target, written, method)


def _free_bytes(fd: int) -> int:
    """Bytes an unprivileged writer may still allocate on the file's filesystem."""
    st = os.fstatvfs(fd)
    return st.f_bavail * st.f_frsize


def convert_in_place(path: str | os.PathLike[str]) -> ConvertResult:
    """Turn a raw image into a fixed VHD by appending a footer: no copy, milliseconds.

    A raw file whose length is not a whole MiB is first extended with zeros (a hole) to the
    next MiB, because Azure accepts nothing else. The footer needs one filesystem block: a
    full filesystem is refused before the file is touched, and any failure truncates the file
    back to its original length, so the input is never left grown.

    Raises:
        InputError: the file is not raw (already a VHD, or another format), the filesystem is
            full, or writing fails (the file is restored).
    """
    info = inspect_disk(path)
    if info.format != RAW:
        raise InputError(path, f"is already a {info.format_name}; --in-place takes a raw image")
    if info.file_size % vhd.SECTOR:
        raise InputError(path, f"length {info.file_size} is not a multiple of 512 bytes")
    target = round_up_mib(info.file_size)
    fd = _open_for_update(path, info.file_size)
    try:
        if _free_bytes(fd) < 2 * BLOCK:  # the footer's block, and one for the file's extents
            raise InputError(path, "no space left on device for the VHD footer; the file is "
                                   "unchanged")
        _apply(path, fd, info.file_size, [gpt.Write(target, vhd.Footer.new(target).pack())],
               "appending the footer")
    finally:
        os.close(fd)
    return ConvertResult(str(path), target, 0, "in-place")


def create(out: str | os.PathLike[str], size: int, force: bool = False) -> ConvertResult:
    """Create an empty, sparse fixed VHD (an empty data disk, OFR-SKU-DISKS).

    Raises:
        InputError: the output exists (without ``force``), is not a regular file, cannot be
            written, or the size is unusable.
    """
    out_path = Path(out)
    _check_target_size(str(out_path), size, 20 * MiB)

    def fill(fd: int) -> None:
        os.ftruncate(fd, size)
        os.pwrite(fd, vhd.Footer.new(size).pack(), size)

    output.write_new(out_path, force, None, fill, "creating the VHD")
    return ConvertResult(str(out_path), size, 0, "create")


def _open_for_update(path: str | os.PathLike[str], length: int) -> int:
    """The inspected file, opened for writing without hanging on a FIFO swapped in since,
    and refused if it is no longer the regular file of ``length`` bytes that was inspected."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _write_error(path, exc, "opening for writing") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != length:
        os.close(fd)
        raise InputError(path, "changed while it was being read; nothing was written")
    return fd


def _apply(path: str | os.PathLike[str], fd: int, length: int, writes: list[gpt.Write],
           doing: str, new_length: int | None = None) -> None:
    """Make ``writes`` (then cut the file to ``new_length``), or none of them.

    The bytes each write replaces inside the original ``length`` are saved first (a cut
    saves only the last 512 bytes: the caller has checked that the rest reads as zeros); on any
    error the file is cut back to ``length`` and they are put back, so a failure (a full
    filesystem, EFBIG, EIO) leaves the file as it was (issue 17: "modified, then failed").

    Raises:
        InputError: a write failed; the file is restored.
    """
    saved = [(w.offset, os.pread(fd, min(len(w.data), length - w.offset), w.offset))
             for w in writes if w.offset < length]
    if new_length is not None and new_length < length:  # a shrink: the cut tail held zeros
        tail = max(new_length, length - vhd.FOOTER_SIZE)  # but for the footer (checked)
        saved.append((tail, os.pread(fd, length - tail, tail)))
    try:
        for w in writes:
            if os.pwrite(fd, w.data, w.offset) != len(w.data):
                raise OSError(errno.ENOSPC, "short write")
        if new_length is not None:
            os.ftruncate(fd, new_length)
    except OSError as exc:
        _restore(fd, length, saved)
        raise _write_error(path, exc, doing) from None


def _restore(fd: int, length: int, saved: list[tuple[int, bytes]]) -> None:
    """Put the original bytes back and cut the file to its original length (best effort:
    restoring writes no more than the failed operation had already written)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, length)
    for offset, data in reversed(saved):
        with contextlib.suppress(OSError):
            os.pwrite(fd, data, offset)


def _fixed_vhd(path: str | os.PathLike[str]) -> DiskInfo:
    info = inspect_disk(path)
    if info.format != VHD_FIXED:
        raise InputError(path, f"is a {info.format_name}; resize takes a fixed VHD "
                               "(convert it first: vmimage vhd convert)")
    if info.file_size != info.virtual_size + vhd.FOOTER_SIZE:
        raise InputError(path, f"file length {info.file_size} is not the virtual size + 512; "
                               "refusing to resize a damaged VHD")
    return info


def _check_shrink(path: str | os.PathLike[str], fd: int, size: int, old: int) -> None:
    """Refuse a shrink that would cut data: the tail must read as zeros."""
    for offset, length in data_extents(fd, size, old):
        pos = offset
        while pos < offset + length:
            n = min(CHUNK, offset + length - pos)
            if not is_zero(os.pread(fd, n, pos)):
                raise InputError(path, f"cannot shrink to {format_size(size)}: data lies "
                                       f"beyond it (at offset {pos})")
            pos += n


def _gpt_writes(path: str | os.PathLike[str], fd: int, old: int, size: int) -> list[gpt.Write]:
    """The writes that move a GPT's backup to the new end; a damaged GPT is refused.

    Both copies are validated before anything is written (issue 17: a header claiming a
    huge entry array made the old code zero 32 MiB of a root filesystem).
    """
    read = gpt.fd_reader(fd)
    if not gpt.has_gpt(read, old):
        return []
    try:
        table = gpt.read_gpt(read, old)
    except gpt.GptError as exc:
        raise InputError(path, f"{exc}; refusing to resize a disk whose partition table is "
                               "damaged (repair it first, e.g. with gdisk)") from None
    return [*gpt.relocation(table, old, size), *gpt.protective_mbr(read, size // vhd.SECTOR)]


def resize(path: str | os.PathLike[str], size: int) -> ConvertResult:
    """Grow (or shrink, if the cut tail is all zeros) a fixed VHD in place.

    Everything is read and judged before the first write: the footer, the zeros a shrink
    cuts, both copies of a GPT, the free space. The new footer is written first and the old
    one zeroed after, so an interruption leaves a valid VHD; an error restores the file (see
    :func:`_apply`). A GPT's backup header is moved to the new last sector (as ``sgdisk -e``).

    Raises:
        InputError: not a fixed VHD, a size that is not whole MiB, a shrink that would cut
            data, a damaged GPT, or a failed write (the file is restored).
    """
    info = _fixed_vhd(path)
    assert info.footer is not None
    old = info.virtual_size
    _check_target_size(str(path), size, 20 * MiB)
    if size == old:
        return ConvertResult(str(path), size, 0, "unchanged")
    fd = _open_for_update(path, info.file_size)
    try:
        footer = info.footer.resized(size)
        if size < old:
            _check_shrink(path, fd, size, old)
            writes = [gpt.Write(size, footer.pack())]
        else:
            writes = [gpt.Write(size, footer.pack()),
                      gpt.Write(old, bytes(vhd.FOOTER_SIZE)),  # the old footer is now disk data
                      *_gpt_writes(path, fd, old, size)]
        need = sum(-(-len(w.data) // BLOCK) + 1 for w in writes) * BLOCK
        if size > old and _free_bytes(fd) < need:
            raise InputError(path, f"not enough free space to resize (needs about {need} "
                                   "bytes); the file is unchanged")
        _apply(path, fd, info.file_size, writes, "resizing", size + vhd.FOOTER_SIZE)
    finally:
        os.close(fd)
    return ConvertResult(str(path), size, 0, "grow" if size > old else "shrink")
