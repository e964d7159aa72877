"""VMDK descriptors: find the extent files a VMDK names, and refuse the ones outside it.

A VMDK descriptor is text written by whoever made the image; each extent line names a file
that libvmdk then opens and reads as disk data. A descriptor naming ``/root/.ssh/id_rsa`` or
``/dev/sda``, or a FLAT extent that is a symbolic link to one, made ``vhd convert`` copy that
host file into the VHD that ``upload`` then sends away (issue 17). So before the binding opens
anything, every extent must resolve inside the descriptor's own directory (no absolute path,
no ``..``, no symbolic link out) and be a regular file; a FIFO is never opened (it would
block). A delta disk (one with a parent) is refused: its parent is another file it names.

Reference: VMware's "Virtual Disk Format 5.0" (the descriptor's extent lines and the sparse
extent header).
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
TEXT_SIGNATURE = b"# Disk DescriptorFile"
SPARSE_MAGIC = b"KDMV"
#: Descriptors are a few hundred bytes; VMware reserves 20 sectors for an embedded one.
MAX_DESCRIPTOR = 64 * 1024
_SPARSE_HEADER = struct.Struct("<4sIIQQQQ")  # magic .. descriptor offset, descriptor size
#: ``ACCESS SIZE TYPE ["FILE" [OFFSET]]``, as VMware writes them.
_EXTENT = re.compile(r'^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?'
                     r"\s*$")
_FILE_TYPES = {"FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "VMFSRDM", "VMFSRAW", "SESPARSE"}

Read = Callable[[int, int], bytes]


class VmdkError(ValueError):
    """A descriptor or extent vmimage will not open; the message says which and why."""


@dataclass(frozen=True)
class Extent:
    """One extent line: its type, size in sectors, and file (None for a ZERO extent)."""

    kind: str
    sectors: int
    file: str | None


def descriptor(read: Read, file_size: int) -> str:
    """The descriptor text of a VMDK: the whole file, or the one a sparse header embeds.

    Raises:
        VmdkError: it is too large, lies outside the file, or is not text.
    """
    head = read(0, _SPARSE_HEADER.size)
    if head.startswith(TEXT_SIGNATURE):
        if file_size > MAX_DESCRIPTOR:
            raise VmdkError(f"the descriptor file is {file_size} bytes, more than the "
                            f"{MAX_DESCRIPTOR} a descriptor can need")
        raw = read(0, file_size)
    elif head[:4] == SPARSE_MAGIC and len(head) == _SPARSE_HEADER.size:
        *_, offset, sectors = _SPARSE_HEADER.unpack(head)
        if not offset or not sectors:
            return ""  # a sparse extent with no descriptor: its data is its own
        if sectors * SECTOR > MAX_DESCRIPTOR or (offset + sectors) * SECTOR > file_size:
            raise VmdkError(f"the embedded descriptor ({sectors} sectors at sector {offset}) "
                            "is too large or lies outside the file")
        raw = read(offset * SECTOR, sectors * SECTOR).split(b"\0", 1)[0]
    else:
        raise VmdkError("no VMDK descriptor or sparse header")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise VmdkError("the descriptor is not UTF-8 text") from None


def extents(text: str) -> list[Extent]:
    """The extent lines of a descriptor, in order.

    Raises:
        VmdkError: a line names an extent type that takes a file but gives none, or the disk
            has a parent.
    """
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("parentFileNameHint"):
            raise VmdkError("a VMDK with a parent disk (a delta or snapshot) is not supported: "
                            "flatten it first (qemu-img convert -O vmdk)")
        match = _EXTENT.match(line)
        if not match:
            continue
        kind, name = match.group(3), match.group(4)
        if kind in _FILE_TYPES and not name:
            raise VmdkError(f"a {kind} extent names no file")
        found.append(Extent(kind, int(match.group(2)), name if kind in _FILE_TYPES else None))
    return found


def check_extent_file(directory: Path, name: str) -> Path:
    """The extent ``name`` as a regular file inside ``directory``, looked at without opening.

    Raises:
        VmdkError: an absolute path, a ``..``, a symbolic link leading out of ``directory``,
            a missing file, or anything but a regular file (a FIFO, a device).
    """
    if not name or "\0" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise VmdkError(f"extent {name!r} is not a file name relative to the descriptor")
    if ".." in re.split(r"[/\\]", name):
        raise VmdkError(f"extent {name!r} leads out of the descriptor's directory")
    base = os.path.realpath(directory)
    real = os.path.realpath(directory / name)
    if os.path.commonpath([base, real]) != base:
        raise VmdkError(f"extent {name!r} resolves to {real}, outside the descriptor's "
                        "directory")
    try:
        mode = os.stat(real).st_mode  # noqa: PTH116 - the resolved path, never opened here
    except OSError as exc:
        raise VmdkError(f"extent {name!r} cannot be found: {os.strerror(exc.errno or 2)}"
                        ) from None
    if not stat.S_ISREG(mode):
        raise VmdkError(f"extent {name!r} is not a regular file")
    return Path(real)


def check_extents(path: Path, read: Read, file_size: int) -> list[Extent]:
    """Every extent of the VMDK at ``path``, each file checked by :func:`check_extent_file`.

    Raises:
        VmdkError: see :func:`descriptor`, :func:`extents` and :func:`check_extent_file`.
    """
    found = extents(descriptor(read, file_size))
    for extent in found:
        if extent.file is not None:
            check_extent_file(path.parent, extent.file)
    return found


_HEADER = struct.Struct("<4sIIQQQQIQQQ")
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_COMPRESSED_GRAINS = 1 << 16


def _grain_tables(read: Read, file_size: int) -> tuple[int, int, int, int, bool] | None:
    """``(capacity, grain bytes, GD offset, GTEs per GT, compressed)`` of a sparse extent
    whose grain directory is where its header says, or None (a stream-optimized file keeps
    it in a footer: left to the zero scan)."""
    raw = read(0, _HEADER.size)
    if len(raw) < _HEADER.size or raw[:4] != SPARSE_MAGIC:
        return None
    _, _, flags, capacity, grain, _, _, per_gt, _, gd_offset, _ = _HEADER.unpack(raw)
    if gd_offset == _GD_AT_END:
        return None
    if not 1 <= grain <= 1 << 12 or grain & (grain - 1) or not 1 <= per_gt <= 512:
        raise VmdkError(f"grain size {grain} sectors or {per_gt} entries per grain table "
                        "is not what a sparse extent can have")
    return capacity, grain * SECTOR, gd_offset * SECTOR, per_gt, bool(
        flags & _COMPRESSED_GRAINS)


def allocated_ranges(read: Read, file_size: int) -> Iterator[tuple[int, int]] | None:
    """``(virtual offset, length)`` of the grains a monolithic sparse extent stores, or None
    when its tables are not where this reader looks (the caller scans everything then).

    Like qcow2's tables (:mod:`vmimage.disk.qcow2`), the work is bounded by the file: the
    grain directory and tables must lie inside it, and the grains they claim must fit in it.

    Raises:
        VmdkError: a table outside the file or claiming more than the file holds (while
            iterating), or an impossible grain geometry (at once).
    """
    found = _grain_tables(read, file_size)
    if found is None:
        return None
    return _walk_grains(read, file_size, *found)


def _walk_grains(read: Read, file_size: int, capacity: int, grain: int, gd_offset: int,
                 per_gt: int, compressed: bool) -> Iterator[tuple[int, int]]:
    size = capacity * SECTOR
    span = grain * per_gt  # virtual bytes one grain table covers
    tables = -(-size // span)
    if gd_offset + tables * 4 > file_size:
        raise VmdkError(f"the grain directory ({tables} entries at byte {gd_offset}) lies "
                        "outside the file")
    budget = file_size
    start = end = -1
    for t, (gt,) in enumerate(struct.iter_unpack("<I", read(gd_offset, tables * 4))):
        if not gt:
            continue
        budget -= per_gt * 4
        if gt * SECTOR + per_gt * 4 > file_size or budget < 0:
            raise VmdkError(f"grain table {t} lies outside the file, or the tables claim more "
                            "than the file holds")
        for g, (entry,) in enumerate(struct.iter_unpack("<I", read(gt * SECTOR, per_gt * 4))):
            if entry <= 1:  # 0: not allocated; 1: a grain of zeros
                continue
            budget -= SECTOR if compressed else grain
            if budget < 0:
                raise VmdkError("the grain tables claim more grains than the file of "
                                f"{file_size} bytes can hold")
            offset = t * span + g * grain
            if offset >= size:
                continue
            if offset == end:
                end += grain
                continue
            if start >= 0:
                yield start, min(end, size) - start
            start, end = offset, offset + grain
    if start >= 0:
        yield start, min(end, size) - start
