"""One ext2/3/4, XFS, FAT or NTFS filesystem, seen by in-fs paths: pyfsext, pyfsxfs, our FAT
reader, or pyfsntfs behind :mod:`vmimage.targets.ntfs`.

The bindings' lookups stop at symlinks (``get_file_entry_by_path`` fails through one) and
``get_sub_file_entry_by_name`` fails on every name in the versions we use, so the image
target resolves links itself (:mod:`vmimage.targets.paths`) and asks this class only about
paths whose parents are real directories. Entries are cached: resolving ``/usr/lib/x`` one
component at a time looks up ``/usr``, ``/usr/lib``... once each. The FAT reader
(:mod:`vmimage.targets.fat`) and the NTFS adapter (:mod:`vmimage.targets.ntfs`, whose lookups
ignore case as Windows does) have the bindings' shape, so every filesystem is read the same way.
"""

from __future__ import annotations

import errno
import stat as stat_module
import struct
from typing import Protocol

from vmimage.disk.sources import FileWindow
from vmimage.targets.base import BYTES_MAX, FileStat, UnreadableError, not_regular, too_large
from vmimage.targets.signatures import EXT_TYPES

#: What a damaged filesystem makes the bindings (or our FAT reader) raise: I/O errors, sizes
#: that overflow, allocations that fail. Each becomes :class:`UnreadableError`.
BINDING_ERRORS = (OSError, OverflowError, MemoryError, IndexError, KeyError, struct.error,
                   ZeroDivisionError, RecursionError)
#: Entries one directory may list; a real /usr/lib holds a few thousand.
MAX_ENTRIES = 1_000_000


class _Entry(Protocol):
    def get_name(self) -> str | None: ...
    def get_file_mode(self) -> int: ...
    def get_size(self) -> int: ...
    def get_owner_identifier(self) -> int: ...
    def get_group_identifier(self) -> int: ...
    def get_modification_time_as_integer(self) -> int | None: ...
    def get_symbolic_link_target(self) -> str | None: ...
    def get_number_of_sub_file_entries(self) -> int: ...
    def get_sub_file_entry(self, sub_file_entry_index: int) -> _Entry: ...
    def read_buffer_at_offset(self, size: int, offset: int) -> bytes: ...


class _Volume(Protocol):
    def get_label(self) -> str | None: ...
    def get_file_entry_by_path(self, path: str) -> _Entry | None: ...
    def close(self) -> None: ...


def short_error(exc: BaseException) -> str:
    """The first sentence of a libyal error: the rest is the call stack, one clause a frame."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    return text.split(". ", 1)[0].rstrip(".")


class Filesystem:
    """Read-only lookups in one filesystem; paths are absolute inside it, without symlinks."""

    def __init__(self, fs_type: str, window: FileWindow, options: tuple[str, ...] = ()) -> None:
        """Open the filesystem in ``window``; ``options`` are fstab's mount options, which
        decide FAT's modes and owners (ext and XFS keep their own)."""
        # the bindings keep no reference to the file object they read: we must
        self.fs_type, self.window = fs_type, window
        volume: _Volume
        if fs_type in EXT_TYPES:
            import pyfsext

            ext = pyfsext.volume()
            ext.open_file_object(window)
            volume = ext
        elif fs_type == "xfs":
            import pyfsxfs

            xfs = pyfsxfs.volume()
            xfs.open_file_object(window)
            volume = xfs
        elif fs_type == "vfat":
            from vmimage.targets.fat import FatVolume

            volume = FatVolume(window.read_at, options)
        elif fs_type == "ntfs":
            from vmimage.targets.ntfs import NtfsVolume

            volume = NtfsVolume(window)
        else:
            raise ValueError(f"{fs_type} is not readable")
        self._volume = volume
        self._entries: dict[str, _Entry | None] = {}

    def _entry(self, path: str) -> _Entry | None:
        if path not in self._entries:
            try:
                self._entries[path] = self._volume.get_file_entry_by_path(path)
            except (ValueError, UnicodeError):  # a NUL or a lone surrogate: no such name
                self._entries[path] = None
            except BINDING_ERRORS as exc:
                raise self._unreadable(exc, path) from None
        return self._entries[path]

    def _unreadable(self, exc: BaseException, path: str) -> UnreadableError:
        """A damaged inode or block as the typed error, naming the filesystem."""
        return UnreadableError(path, f"{self.fs_type}: cannot read: {short_error(exc)}",
                               errno.EIO)

    def _existing(self, path: str) -> _Entry:
        entry = self._entry(path)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return entry

    def _mode(self, entry: _Entry, path: str) -> int:
        try:
            return int(entry.get_file_mode())
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None

    def kind(self, path: str) -> str | None:
        """``dir``, ``link``, ``file`` (anything else that exists) or None (lstat-like)."""
        entry = self._entry(path)
        if entry is None:
            return None
        mode = self._mode(entry, path)
        if stat_module.S_ISDIR(mode):
            return "dir"
        return "link" if stat_module.S_ISLNK(mode) else "file"

    def readlink(self, path: str) -> str:
        """A symlink's target as stored."""
        entry = self._existing(path)
        if not stat_module.S_ISLNK(self._mode(entry, path)):
            raise OSError(errno.EINVAL, "Invalid argument: not a symbolic link", path)
        try:
            return entry.get_symbolic_link_target() or ""
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None

    def follow(self, path: str) -> str:
        """The target to resolve a symlink through: its ``readlink``, except on NTFS, whose
        junctions and symbolic links name a drive of the VM and are never followed
        (:class:`UnreadableError`)."""
        if self.fs_type == "ntfs":
            from vmimage.targets.ntfs import NtfsVolume

            assert isinstance(self._volume, NtfsVolume)
            return self._volume.follow(path)
        return self.readlink(path)

    def lstat(self, path: str) -> FileStat:
        """Mode, size, owner and modification time, not following a final symlink."""
        entry = self._existing(path)
        try:
            mtime_ns = entry.get_modification_time_as_integer() or 0
            return FileStat(entry.get_file_mode(), entry.get_size(),
                            entry.get_owner_identifier(), entry.get_group_identifier(),
                            mtime_ns / 1e9)
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None

    def listdir(self, path: str) -> list[str]:
        """Sorted names in a directory (at most :data:`MAX_ENTRIES`: a damaged directory
        claiming millions is refused rather than listed)."""
        entry = self._existing(path)
        if not stat_module.S_ISDIR(self._mode(entry, path)):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
        names = []
        try:
            count = entry.get_number_of_sub_file_entries()
            if count > MAX_ENTRIES:
                raise UnreadableError(path, f"{self.fs_type}: a directory of {count} entries, "
                                            f"over the limit of {MAX_ENTRIES}; not listed")
            for index in range(count):
                name = entry.get_sub_file_entry(index).get_name()
                if name and name not in (".", ".."):
                    names.append(name)  # a damaged index may list a name twice: set below
        except UnreadableError:
            raise
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None
        return sorted(set(names))

    def _regular(self, path: str) -> tuple[_Entry, int]:
        """A regular file's entry and size; FIFOs, sockets and device nodes hold no content."""
        entry = self._existing(path)
        mode = self._mode(entry, path)
        if stat_module.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat_module.S_ISREG(mode):
            raise not_regular(path, mode)
        try:
            return entry, int(entry.get_size())
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None

    def _read_entry(self, entry: _Entry, path: str, size: int, offset: int) -> bytes:
        try:
            return bytes(entry.read_buffer_at_offset(size, offset)) if size > 0 else b""
        except (*BINDING_ERRORS, ValueError) as exc:
            raise self._unreadable(exc, path) from None

    def read(self, path: str, limit: int | None = None, max_size: int = BYTES_MAX) -> bytes:
        """A regular file's content, or its first ``limit`` bytes.

        Without ``limit`` a file over ``max_size`` is refused before anything is read: the
        size is the inode's claim (1 TB in a 64 MiB image), and the binding would try to
        allocate all of it.
        """
        entry, size = self._regular(path)
        if limit is None and size > max_size:
            raise too_large(path, size, max_size)
        return self._read_entry(entry, path, size if limit is None else min(size, max(limit, 0)), 0)

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes of a regular file from ``offset``: only those are read."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        entry, length = self._regular(path)
        return self._read_entry(entry, path, min(size, max(length - offset, 0)), offset)

    def close(self) -> None:
        """Close the binding's volume."""
        self._entries.clear()
        self._volume.close()

