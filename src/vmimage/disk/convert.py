"""Make fixed VHDs: convert, create, resize, and turn a raw file into a VHD in place.

Outputs stay sparse: only ranges that hold data are written, holes stay holes. A conversion
writes ``OUT.partial`` beside the output and renames it when complete, so an interrupted run
leaves the input untouched and no half-written output under the final name; rerun it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmimage.disk import gpt, vhd
from vmimage.disk.inspect import RAW, VHD_FIXED, DiskInfo, inspect_disk, open_disk
from vmimage.disk.sources import DiskSource, DynamicVhdSource, FlatSource
from vmimage.disk.sparse import (
    ZERO_CHUNK,
    copy_nonzero,
    data_extents,
    is_zero,
    nonzero_runs,
    try_reflink,
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
    return InputError(path, f"{doing} failed: {os.strerror(exc.errno or errno.EIO)}")


def _prepare_output(src: Path | None, out: Path, force: bool) -> Path:
    """The ``.partial`` path to write to; refuses to overwrite, or to clobber the input."""
    if out.exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite it)")
    if src is not None and out.exists() and out.resolve() == src.resolve():
        raise InputError(out, "is the input file; use --in-place to convert a raw file in place")
    if out.is_dir():
        raise InputError(out, "is a directory")
    if not out.parent.is_dir():
        raise InputError(out, f"cannot be written: directory {out.parent} does not exist")
    return out.with_name(out.name + ".partial")


def _copy_flat(source: FlatSource, dst: int) -> tuple[int, str]:
    """Raw or fixed VHD data: reflink where possible, else the data extents' non-zero blocks.

    A reflink shares the source's blocks (zero blocks included) and costs no space, so it is
    kept where the filesystem offers it.
    """
    if source.size and try_reflink(source.fd, dst):
        os.ftruncate(dst, source.size)  # drop a cloned footer; the new one goes after
        return 0, "reflink"
    read, written = copy_nonzero(source.fd, dst, 0, source.size)
    source.bytes_read += read
    return written, "sparse copy"


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

    Raises:
        InputError: the input cannot be read, the output exists (without ``force``), or
            ``size`` is not a whole MiB at least as large as the disk.
    """
    src_path, out_path = Path(src), Path(out)
    info, source = open_disk(src_path)
    try:
        target = round_up_mib(info.virtual_size) if size is None else size
        _check_target_size(str(src_path), target, info.virtual_size)
        partial = _prepare_output(src_path, out_path, force)
        try:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _write_error(out_path, exc, "creating the output") from None
        try:
            try:
                if isinstance(source, FlatSource):
                    written, method = _copy_flat(source, fd)
                elif isinstance(source, DynamicVhdSource):
                    written, method = _copy_dynamic(source, fd, progress), "sparse copy (BAT)"
                else:
                    written, method = _copy_scanning(source, fd, progress), "zero-scan"
                os.ftruncate(fd, target)
                os.pwrite(fd, vhd.Footer.new(target).pack(), target)
                os.close(fd)
                fd = -1
                partial.replace(out_path)
            except OSError as exc:
                raise _write_error(out_path, exc, "conversion") from None
        except BaseException:
            if fd >= 0:
                os.close(fd)
            partial.unlink(missing_ok=True)
            raise
    finally:
        source.close()
    return ConvertResult(str(out_path), target, written, method)


def convert_in_place(path: str | os.PathLike[str]) -> ConvertResult:
    """Turn a raw image into a fixed VHD by appending a footer: no copy, milliseconds.

    A raw file whose length is not a whole MiB is first extended with zeros (a hole) to the
    next MiB, because Azure accepts nothing else.

    Raises:
        InputError: the file is not raw (already a VHD, or another format).
    """
    info = inspect_disk(path)
    if info.format != RAW:
        raise InputError(path, f"is already a {info.format_name}; --in-place takes a raw image")
    if info.file_size % vhd.SECTOR:
        raise InputError(path, f"length {info.file_size} is not a multiple of 512 bytes")
    target = round_up_mib(info.file_size)
    try:
        with open(path, "r+b") as f:
            f.truncate(target)
            f.seek(target)
            f.write(vhd.Footer.new(target).pack())
    except OSError as exc:
        raise _write_error(path, exc, "appending the footer") from None
    return ConvertResult(str(path), target, 0, "in-place")


def create(out: str | os.PathLike[str], size: int, force: bool = False) -> ConvertResult:
    """Create an empty, sparse fixed VHD (an empty data disk, OFR-SKU-DISKS).

    Raises:
        InputError: the output exists (without ``force``) or the size is unusable.
    """
    out_path = Path(out)
    _check_target_size(str(out_path), size, 20 * MiB)
    partial = _prepare_output(None, out_path, force)
    try:
        with open(partial, "wb") as f:
            f.truncate(size)
            f.seek(size)
            f.write(vhd.Footer.new(size).pack())
        partial.replace(out_path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise _write_error(out_path, exc, "creating the VHD") from None
    return ConvertResult(str(out_path), size, 0, "create")


def _fixed_vhd(path: str | os.PathLike[str]) -> DiskInfo:
    info = inspect_disk(path)
    if info.format != VHD_FIXED:
        raise InputError(path, f"is a {info.format_name}; resize takes a fixed VHD "
                               "(convert it first: vmimage vhd convert)")
    if info.file_size != info.virtual_size + vhd.FOOTER_SIZE:
        raise InputError(path, f"file length {info.file_size} is not the virtual size + 512; "
                               "refusing to resize a damaged VHD")
    return info


def resize(path: str | os.PathLike[str], size: int) -> ConvertResult:
    """Grow (or shrink, if the cut tail is all zeros) a fixed VHD in place.

    The new footer is written first and the old one zeroed after, so an interruption leaves a
    valid VHD. A GPT's backup header is moved to the new last sector (as ``sgdisk -e`` does).

    Raises:
        InputError: not a fixed VHD, a size that is not whole MiB, or a shrink that would cut data.
    """
    info = _fixed_vhd(path)
    assert info.footer is not None
    old = info.virtual_size
    _check_target_size(str(path), size, 20 * MiB)
    if size == old:
        return ConvertResult(str(path), size, 0, "unchanged")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise _write_error(path, exc, "opening for writing") from None
    try:
        if size < old:
            for offset, length in data_extents(fd, size, old):
                pos = offset
                while pos < offset + length:
                    n = min(CHUNK, offset + length - pos)
                    if not is_zero(os.pread(fd, n, pos)):
                        raise InputError(path, f"cannot shrink to {format_size(size)}: data lies "
                                               f"beyond it (at offset {pos})")
                    pos += n
        footer = info.footer.resized(size)
        if size > old:
            os.pwrite(fd, footer.pack(), size)
            os.pwrite(fd, bytes(vhd.FOOTER_SIZE), old)  # the old footer is now disk data
            gpt.relocate_backup(fd, old, size)
            os.ftruncate(fd, size + vhd.FOOTER_SIZE)
        else:
            os.pwrite(fd, footer.pack(), size)
            os.ftruncate(fd, size + vhd.FOOTER_SIZE)
    except OSError as exc:
        raise _write_error(path, exc, "resizing") from None
    finally:
        os.close(fd)
    return ConvertResult(str(path), size, 0, "grow" if size > old else "shrink")
