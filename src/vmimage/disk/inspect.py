"""Recognise a disk image, decode its metadata, and open it for reading.

Every entry point that takes a disk file goes through :func:`inspect_disk`, so every command
refuses the same bad inputs with the same one-line message: an empty file, a directory, an
unreadable file, a truncated or corrupt footer, a BAT pointing past the end of the file, a
VHDX cut short, a virtual size of 0.

Some files can be described but not read truthfully: a differencing disk (its parent holds
blocks), a VHDX whose log was never replayed, a dynamic VHD whose two footer copies disagree.
``inspect_disk`` lists why among the problems; :func:`open_disk`, which every reader of the
data uses, refuses them with that one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmimage.disk import vhd
from vmimage.disk.sources import (
    DiskSource,
    DynamicVhdSource,
    FdReader,
    FileWindow,
    FlatSource,
    LibyalSource,
    Qcow2Source,
)
from vmimage.disk.sparse import allocated_bytes
from vmimage.errors import InputError, UnsupportedError
from vmimage.inputs import open_input
from vmimage.units import MiB

if TYPE_CHECKING:
    from vmimage.disk import qcow2, vhdx, vmdk

# The qcow2, VHDX and VMDK readers are imported by the functions that open those formats:
# ``vhd convert --in-place`` on a raw file must not pay for them at start-up (docs/cli.md).

RAW, VHD_FIXED, VHD_DYNAMIC, VHD_DIFF = "raw", "vhd-fixed", "vhd-dynamic", "vhd-differencing"
VHDX, QCOW2, VMDK = "vhdx", "qcow2", "vmdk"
FORMAT_NAMES = {RAW: "raw", VHD_FIXED: "fixed VHD", VHD_DYNAMIC: "dynamic VHD",
                VHD_DIFF: "differencing VHD", VHDX: "VHDX", QCOW2: "qcow2", VMDK: "VMDK"}
_SIGNATURES = ((b"vhdxfile", VHDX), (b"QFI\xfb", QCOW2), (b"KDMV", VMDK),
               (b"# Disk DescriptorFile", VMDK))


@dataclass
class DiskInfo:
    """What ``vmimage vhd inspect`` reports about one disk image file."""

    path: str
    format: str
    virtual_size: int
    file_size: int
    allocated: int
    footer: vhd.Footer | None = None
    dynamic_header: vhd.DynamicHeader | None = None
    allocated_blocks: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def format_name(self) -> str:
        """The format as people name it."""
        return FORMAT_NAMES[self.format]

    @property
    def whole_mib(self) -> bool:
        """Azure accepts only virtual sizes that are a whole number of MiB."""
        return self.virtual_size % MiB == 0

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {
            "path": self.path,
            "format": self.format,
            "format_name": self.format_name,
            "virtual_size": self.virtual_size,
            "file_size": self.file_size,
            "allocated_bytes": self.allocated,
            "whole_mib": self.whole_mib,
            "footer": self.footer.to_dict() if self.footer else None,
            "footer_checksum_ok": self.footer.checksum_ok if self.footer else None,
            "dynamic_header": self.dynamic_header.to_dict() if self.dynamic_header else None,
            "allocated_blocks": self.allocated_blocks,
            "problems": list(self.problems),
        }


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open read-only; refuse directories, FIFOs, devices, empty and unreadable files.

    Through :func:`vmimage.inputs.open_input`, which looks before it opens: a FIFO opened for
    reading blocks until a writer comes, and hung every disk command (issue 17).
    """
    fd = open_input(path)
    st = os.fstat(fd)
    if st.st_size == 0:
        os.close(fd)
        raise InputError(path, "is empty (0 bytes): not a disk image")
    return fd, st


def _pread(fd: int, path: Path, length: int, offset: int) -> bytes:
    try:
        return os.pread(fd, length, offset)
    except OSError as exc:
        raise InputError(path, f"read error at offset {offset}: {os.strerror(exc.errno or 5)}") from None


def _detect(fd: int, path: Path, size: int, lenient: bool) -> tuple[str, vhd.Footer | None]:
    head = _pread(fd, path, 512, 0)
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt, None
    tail = _pread(fd, path, vhd.FOOTER_SIZE, size - vhd.FOOTER_SIZE) if size >= 512 else b""
    cut = size % vhd.SECTOR
    if tail[:8] == vhd.COOKIE:
        footer = vhd.Footer.unpack(tail)
    elif cut and _pread(fd, path, 8, size - cut) == vhd.COOKIE:
        # A footer starts on the last sector boundary but the file ends inside it.
        raise InputError(path, f"truncated footer: the file ends {cut} bytes into the "
                               f"{vhd.FOOTER_SIZE}-byte VHD footer")
    elif head[:8] == vhd.COOKIE and len(head) == 512:
        # The trailing footer is gone but the dynamic disk's copy at offset 0 survives.
        raise InputError(path, f"truncated: the VHD footer at the end of the file is missing "
                               f"(file is {size} bytes; a copy exists at offset 0)")
    elif path.suffix.lower() == ".vhd":
        if size < vhd.FOOTER_SIZE:
            raise InputError(path, f"truncated footer: the file is {size} bytes, a VHD footer "
                                   f"alone is {vhd.FOOTER_SIZE}")
        raise InputError(path, f"no VHD footer: the last 512 bytes start with {tail[:8]!r}, "
                               "not the cookie b'conectix'")
    else:
        return RAW, None
    if not lenient and not footer.checksum_ok:
        raise InputError(path, footer.problems()[0])
    if not lenient and footer.fatal_size():
        raise InputError(path, footer.size_problem() or "unusable virtual size")
    kinds = {vhd.DISK_FIXED: VHD_FIXED, vhd.DISK_DYNAMIC: VHD_DYNAMIC,
             vhd.DISK_DIFFERENCING: VHD_DIFF}
    if footer.disk_type not in kinds:
        raise InputError(path, f"VHD footer has disk type {footer.disk_type}, which is not "
                               "fixed, dynamic or differencing")
    return kinds[footer.disk_type], footer


def _dynamic_layout(fd: int, path: Path, size: int, footer: vhd.Footer
                    ) -> tuple[vhd.DynamicHeader, Sequence[int]]:
    """Read and check the dynamic header and the BAT against the file's real length.

    Only the entries the virtual size needs are read, and never more than
    :data:`vhd.MAX_BAT_ENTRIES`: a header claiming 2^32 - 1 entries over a sparse file once
    unpacked them all (MemoryError, issue 17).
    """
    end = size - vhd.FOOTER_SIZE
    if footer.data_offset + 1024 > end:
        raise InputError(path, f"dynamic header at offset {footer.data_offset} lies past the "
                               f"end of the file ({size} bytes)")
    header = vhd.DynamicHeader.unpack(_pread(fd, path, 1024, footer.data_offset))
    if header.problems():
        raise InputError(path, header.problems()[0])
    bat_bytes = header.max_table_entries * 4
    if header.table_offset + bat_bytes > end:
        raise InputError(path, f"BAT of {header.max_table_entries} entries ({bat_bytes} bytes at "
                               f"offset {header.table_offset}) is larger than the file "
                               f"({size} bytes)")
    if header.max_table_entries * header.block_size < footer.current_size:
        raise InputError(path, f"BAT covers {header.max_table_entries * header.block_size} "
                               f"bytes, less than the virtual size {footer.current_size}")
    needed = -(-footer.current_size // header.block_size)
    if needed > vhd.MAX_BAT_ENTRIES:
        raise InputError(path, f"a BAT of {needed} entries ({header.block_size}-byte blocks) "
                               f"is more than the {vhd.MAX_BAT_ENTRIES} vmimage reads")
    bat = vhd.unpack_bat(_pread(fd, path, needed * 4, header.table_offset), needed)
    if len(bat) < needed:
        raise InputError(path, f"BAT at offset {header.table_offset} is cut short")
    last = (end - header.bitmap_size - header.block_size) // vhd.SECTOR  # the last usable entry
    for i, entry in enumerate(bat):
        if last < entry != vhd.BAT_UNUSED:
            raise InputError(path, f"BAT entry {i} points past the end of the file (sector "
                                   f"{entry}, file is {size} bytes)")
    return header, bat


def inspect_disk(path: str | os.PathLike[str], lenient: bool = False) -> DiskInfo:
    """Recognise and decode ``path`` without reading its data.

    ``lenient`` decodes a footer whose checksum is wrong and lists that as a problem instead of
    refusing the file, so a person can see what is in it.

    Raises:
        InputError: the file cannot be used at all (the message says why, on one line).
    """
    return _inspect(Path(path), keep_open=False, lenient=lenient)[0]


def open_disk(path: str | os.PathLike[str]) -> tuple[DiskInfo, DiskSource]:
    """Inspect ``path`` and open it for reading its virtual disk.

    Some files can be described but not read truthfully: ``inspect_disk`` lists why among the
    problems, and this refuses them.

    Raises:
        InputError: the file cannot be used (truncated, a VHDX log never replayed, footer
            copies that disagree, a virtual size of 0).
        UnsupportedError: a differencing VHD or VHDX, which needs its parent.
    """
    info, source = _inspect(Path(path), keep_open=True, lenient=False)
    assert source is not None
    return info, source


def _inspect(path: Path, keep_open: bool, lenient: bool) -> tuple[DiskInfo, DiskSource | None]:
    fd, st = _open_regular(path)
    source: DiskSource | None = None
    try:
        decoded = _decode(fd, path, st, lenient)
        info = decoded.info
        refusals = decoded.refusals
        if info.format == QCOW2:
            source = _open_qcow2(path, fd, info, refusals)
        elif info.format in (VMDK, VHDX):
            # The binding alone knows the virtual size, and pyvhdi the VHDX disk type.
            source = _open_libyal(path, fd, info, refusals)
        if info.virtual_size == 0 and info.footer is None:
            # A VHD footer saying 0 is refused with the footer's other fatal sizes.
            info.problems.append("virtual size is 0 bytes: the image describes an empty disk")
            refusals.append(InputError(path, info.problems[-1]))
        if not info.whole_mib:
            info.problems.append(f"virtual size {info.virtual_size} is not a whole number of "
                                 "MiB, which Azure requires")
        if keep_open:
            if refusals:
                raise refusals[0]
            if source is None:
                source = _flat_or_dynamic(path, fd, info, decoded.layout)
    except BaseException:
        if source is not None:
            source.close()  # closes fd too
        else:
            os.close(fd)
        raise
    if keep_open:
        return info, source
    if source is not None:
        source.close()
    else:
        os.close(fd)
    return info, None


_Layout = tuple[vhd.DynamicHeader, Sequence[int]] | None


@dataclass
class _Decoded:
    """What :func:`_decode` learnt: the report, the dynamic VHD layout, and why reading the
    data must be refused even though the file could be described (worst first)."""

    info: DiskInfo
    layout: _Layout = None
    refusals: list[InputError] = field(default_factory=list)


def _decode(fd: int, path: Path, st: os.stat_result, lenient: bool) -> _Decoded:
    """Everything but the data: format, sizes, footer, dynamic header and BAT, problems."""
    fmt, footer = _detect(fd, path, st.st_size, lenient)
    info = DiskInfo(str(path), fmt, 0, st.st_size, allocated_bytes(st), footer)
    decoded = _Decoded(info)
    if fmt == RAW:
        info.virtual_size = st.st_size
        if st.st_size % vhd.SECTOR:
            info.problems.append(f"raw file length {st.st_size} is not a multiple of 512")
        return decoded
    if fmt == VHDX:
        _vhdx_layout(fd, path, st.st_size, decoded)
        return decoded
    if footer is None:  # qcow2, VMDK: sized when opened
        return decoded
    info.virtual_size = footer.current_size
    info.problems += footer.problems()
    if fmt == VHD_FIXED:
        expected = footer.current_size + vhd.FOOTER_SIZE
        if st.st_size < expected:
            raise InputError(path, f"truncated: the footer says {footer.current_size} bytes of "
                                   f"disk but the file holds only {st.st_size - vhd.FOOTER_SIZE}")
        if st.st_size != expected:
            info.problems.append(f"file length {st.st_size} is not the virtual size + 512 "
                                 f"({expected})")
        return decoded
    if fmt == VHD_DIFF:
        info.problems.append("differencing VHD: it needs its parent disk; Azure and vmimage "
                             "accept only a fixed VHD")
        decoded.refusals.append(UnsupportedError(
            path, "differencing VHD is not supported: merge it into its parent first "
                  "(qemu-img convert -O vpc)"))
        return decoded
    mismatch = _footer_copies_mismatch(fd, path, footer)
    if mismatch:
        info.problems.append(mismatch)
        decoded.refusals.append(InputError(path, mismatch))
    header, bat = _dynamic_layout(fd, path, st.st_size, footer)
    info.dynamic_header = header
    info.allocated_blocks = len(bat) - bat.count(vhd.BAT_UNUSED)
    decoded.layout = (header, bat)
    return decoded


def _footer_copies_mismatch(fd: int, path: Path, footer: vhd.Footer) -> str | None:
    """Why the dynamic disk's footer copy at offset 0 differs from the one at the end, or None.

    The spec makes them identical. Readers disagree on which one to trust: qemu-img reads the
    copy at offset 0, vmimage (like the spec's repair advice) the one at the end. When they
    differ the disk has two readings, so vmimage refuses to choose and says which fields differ.
    """
    head = _pread(fd, path, vhd.FOOTER_SIZE, 0)
    if head == footer.pack():
        return None
    if head[:8] != vhd.COOKIE:
        return ("the footer copy at offset 0 is missing (found "
                f"{head[:8]!r}): the two footer copies of a dynamic VHD disagree")
    copy = vhd.Footer.unpack(head)
    fields = [name for name in ("current_size", "original_size", "disk_type", "data_offset",
                                "unique_id", "cylinders", "heads", "sectors_per_track",
                                "timestamp", "creator_application", "features",
                                "format_version", "saved_state")
              if getattr(copy, name) != getattr(footer, name)]
    if "current_size" in fields:
        what = (f"the copy at offset 0 says {copy.current_size} bytes, the one at the end "
                f"{footer.current_size}")
    elif fields:
        what = f"they differ in {', '.join(fields)}"
    elif not copy.checksum_ok:
        what = "the copy at offset 0 has a wrong checksum"
    else:
        what = "they differ in reserved bytes"
    return (f"the two footer copies of the dynamic VHD disagree: {what} (qemu-img reads the "
            "copy at offset 0, vmimage the one at the end)")


def _vhdx_layout(fd: int, path: Path, size: int, decoded: _Decoded) -> None:
    """Judge a VHDX's own structures, which libvhdi reads without judging (see ``vhdx``).

    A file cut short is refused outright, as a truncated VHD is; a log never replayed is
    described by ``inspect`` and refused when the data is read.
    """
    from vmimage.disk import vhdx

    def read(offset: int, length: int) -> bytes:
        return _pread(fd, path, length, offset)

    try:
        layout = vhdx.read_layout(read, size)
        vhdx.check_length(read, layout, size)
    except vhdx.VhdxTruncatedError as exc:
        raise InputError(path, str(exc)) from None
    except vhdx.VhdxFormatError as exc:
        raise InputError(path, f"corrupt VHDX: {exc}") from None
    if layout.header.log_pending:
        problem = (f"the VHDX log was never replayed (log GUID {layout.header.log_guid} in "
                   "the active header), so its blocks may be stale: replay it first with "
                   "qemu-img check -r all, or attach the disk once in Hyper-V")
        decoded.info.problems.append(problem)
        decoded.refusals.append(InputError(path, problem))


def _flat_or_dynamic(path: Path, fd: int, info: DiskInfo, layout: _Layout) -> DiskSource:
    if info.format == VHD_DYNAMIC:
        assert layout is not None and info.footer is not None
        return DynamicVhdSource(str(path), fd, info.footer, *layout)
    return FlatSource(str(path), fd, info.virtual_size)


def _open_libyal(path: Path, fd: int, info: DiskInfo, refusals: list[InputError]
                 ) -> LibyalSource:
    """VMDK and VHDX through their libyal binding."""
    fmt = info.format
    reader = FdReader(fd)
    fileobj = FileWindow(reader, 0, info.file_size)
    handle: Any  # pyvmdk.handle or pyvhdi.file: one read interface
    ranges = None
    try:
        if fmt == VMDK:
            import pyvmdk

            ranges = _check_vmdk_extents(path, reader.read, info.file_size)
            handle = pyvmdk.handle()
            handle.open(str(path))
            handle.open_extent_data_files()
        else:
            import pyvhdi

            ranges = _vhdx_ranges(fileobj.read_at, info.file_size)
            handle = pyvhdi.file()
            handle.open_file_object(fileobj)
            if handle.get_disk_type() == pyvhdi.disk_types.DIFFERENTIAL:
                # pyvhdi opens it without the parent; the parent's blocks then fail to read.
                info.problems.append("differencing VHDX: it needs its parent disk; Azure and "
                                     "vmimage accept only a fixed VHD")
                refusals.append(UnsupportedError(
                    path, "differencing VHDX is not supported: merge it into its parent first "
                          "(Hyper-V's Merge-VHD)"))
    except OSError as exc:
        raise InputError(path, f"cannot be read as {FORMAT_NAMES[fmt]}: "
                               f"{str(exc).splitlines()[0]}") from None
    source = LibyalSource(str(path), fd, handle, reader, ranges)
    info.virtual_size = source.size
    return source


def _open_qcow2(path: Path, fd: int, info: DiskInfo, refusals: list[InputError]
                ) -> Qcow2Source | None:
    """A qcow2 through vmimage's own reader (see :mod:`vmimage.disk.qcow2`).

    A header whose tables cannot be trusted stops here, as a truncated VHD does. One that is
    sound but uses what vmimage does not read (a backing file, an external data file,
    encryption, zstd, the corrupt bit) is described by ``inspect`` and refused when the data is
    read, as a differencing VHD is; then no reader is made (None). The tables are walked when
    a converter asks, and a bad one is one line then.
    """
    from vmimage.disk import qcow2

    reader = FdReader(fd)
    try:
        header = qcow2.read_header(reader.read, info.file_size)
        if header.size == 0:  # a valid header, but vmimage refuses an empty disk everywhere
            raise qcow2.Qcow2Error("the virtual size is 0 bytes: the image describes an "
                                   "empty disk")
        info.virtual_size = header.size
        try:
            qcow2.check_readable(header, reader.read, info.file_size)
        except qcow2.Qcow2Error as exc:
            info.problems.append(str(exc))
            refusals.append(_qcow2_refusal(path, exc))
            return None
        image = qcow2.Qcow2Image(reader.read, info.file_size, header)
    except qcow2.Qcow2Error as exc:
        raise _qcow2_refusal(path, exc, "cannot be read as qcow2: ") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read as qcow2: {os.strerror(exc.errno or 5)}"
                         ) from None
    return Qcow2Source(str(path), fd, reader, image)


def _qcow2_refusal(path: Path, exc: qcow2.Qcow2Error, prefix: str = "") -> InputError:
    """The one line for a refused qcow2: a feature vmimage does not read is unsupported (the
    message says so itself); anything else is a bad input."""
    from vmimage.disk import qcow2

    if isinstance(exc, qcow2.Qcow2UnsupportedError):
        return UnsupportedError(path, str(exc))
    return InputError(path, f"{prefix}{exc}")


def _vhdx_ranges(read: vhdx.Read, file_size: int) -> Callable[[], Iterator[tuple[int, int]]]:
    """The payload blocks a VHDX's BAT places in the file (read as qemu-img reads them: any
    other state is zeros), so a small VHDX claiming terabytes is not zero-scanned. The layout
    was judged when the file was inspected."""
    from vmimage.disk import vhdx

    def ranges() -> Iterator[tuple[int, int]]:
        layout = vhdx.read_layout(read, file_size)
        for block in vhdx.stored_blocks(read, layout):
            if block.payload is not None:
                yield block.payload * layout.block_size, layout.block_size

    return ranges


def _check_vmdk_extents(path: Path, read: vmdk.Read, file_size: int
                        ) -> Callable[[], Iterator[tuple[int, int]]] | None:
    """Refuse a VMDK naming an extent outside its directory before libvmdk opens anything.

    Returns the allocated ranges of a monolithic sparse VMDK (one extent: the file itself),
    walked from its grain tables when a converter asks, or None (the zero scan).
    """
    from vmimage.disk import vmdk

    try:
        extents = vmdk.check_extents(path, read, file_size)
    except vmdk.VmdkError as exc:
        raise InputError(path, f"refusing this VMDK: {exc}") from None
    itself = len(extents) == 1 and extents[0].kind == "SPARSE" and extents[0].file and \
        os.path.realpath(path.parent / extents[0].file) == os.path.realpath(path)
    if not itself:
        return None

    def ranges() -> Iterator[tuple[int, int]]:
        try:
            walk = vmdk.allocated_ranges(read, file_size)
            yield from (walk if walk is not None else [(0, 2**63)])  # clipped to the disk
        except vmdk.VmdkError as exc:
            raise InputError(path, f"corrupt VMDK: {exc}") from None

    return ranges
