"""One ext2/3/4, XFS or FAT filesystem, seen by in-fs paths: pyfsext, pyfsxfs, or our FAT reader.

The bindings' lookups stop at symlinks (``get_file_entry_by_path`` fails through one) and
``get_sub_file_entry_by_name`` fails on every name in the versions we use, so the image
target resolves links itself (:mod:`vmimage.targets.paths`) and asks this class only about
paths whose parents are real directories. Entries are cached: resolving ``/usr/lib/x`` one
component at a time looks up ``/usr``, ``/usr/lib``... once each. The FAT reader
(:mod:`vmimage.targets.fat`) has the bindings' shape, so every filesystem is read the same way.
"""

from __future__ import annotations

import errno
import stat as stat_module
from typing import Protocol

from vmimage.disk.sources import FileWindow
from vmimage.targets.base import FileStat
from vmimage.targets.signatures import EXT_TYPES


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
        else:
            raise ValueError(f"{fs_type} is not readable")
        self._volume = volume
        self._entries: dict[str, _Entry | None] = {}

    def _entry(self, path: str) -> _Entry | None:
        if path not in self._entries:
            try:
                self._entries[path] = self._volume.get_file_entry_by_path(path)
            except OSError as exc:
                raise OSError(errno.EIO, f"{self.fs_type}: cannot read: {short_error(exc)}",
                              path) from None
            except ValueError:  # a NUL or a lone surrogate: no such name can be stored
                self._entries[path] = None
        return self._entries[path]

    def _existing(self, path: str) -> _Entry:
        entry = self._entry(path)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return entry

    def kind(self, path: str) -> str | None:
        """``dir``, ``link``, ``file`` (anything else that exists) or None (lstat-like)."""
        entry = self._entry(path)
        if entry is None:
            return None
        mode = entry.get_file_mode()
        if stat_module.S_ISDIR(mode):
            return "dir"
        return "link" if stat_module.S_ISLNK(mode) else "file"

    def readlink(self, path: str) -> str:
        """A symlink's target as stored."""
        entry = self._existing(path)
        if not stat_module.S_ISLNK(entry.get_file_mode()):
            raise OSError(errno.EINVAL, "Invalid argument: not a symbolic link", path)
        return entry.get_symbolic_link_target() or ""

    def lstat(self, path: str) -> FileStat:
        """Mode, size, owner and modification time, not following a final symlink."""
        entry = self._existing(path)
        mtime_ns = entry.get_modification_time_as_integer() or 0
        return FileStat(entry.get_file_mode(), entry.get_size(), entry.get_owner_identifier(),
                        entry.get_group_identifier(), mtime_ns / 1e9)

    def listdir(self, path: str) -> list[str]:
        """Sorted names in a directory."""
        entry = self._existing(path)
        if not stat_module.S_ISDIR(entry.get_file_mode()):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
        names = []
        try:
            for index in range(entry.get_number_of_sub_file_entries()):
                name = entry.get_sub_file_entry(index).get_name()
                if name and name not in (".", ".."):
                    names.append(name)
        except OSError as exc:
            raise OSError(errno.EIO, f"{self.fs_type}: cannot read: {short_error(exc)}",
                          path) from None
        return sorted(names)

    def read(self, path: str, limit: int | None = None) -> bytes:
        """A regular file's content, or its first ``limit`` bytes."""
        entry = self._existing(path)
        mode = entry.get_file_mode()
        if stat_module.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        size = entry.get_size()
        size = size if limit is None else min(size, limit)
        try:
            return bytes(entry.read_buffer_at_offset(size, 0)) if size > 0 else b""
        except OSError as exc:
            raise OSError(errno.EIO, f"{self.fs_type}: cannot read: {short_error(exc)}",
                          path) from None

    def close(self) -> None:
        """Close the binding's volume."""
        self._entries.clear()
        self._volume.close()

