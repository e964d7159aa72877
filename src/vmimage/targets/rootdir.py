"""A mounted root filesystem (or an unpacked tree) as a target.

Symlinks resolve inside the directory, never on the host: ``/etc/resolv.conf -> /run/...``
inside ``/mnt/image`` means ``/mnt/image/run/...``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from vmimage.errors import InputError
from vmimage.targets import paths
from vmimage.targets.base import (
    BYTES_MAX,
    DiskLayout,
    FileStat,
    PathTarget,
    not_regular,
    too_large,
    unreadable,
)

#: Read in pieces this size, so a file that grows while read costs at most one more piece.
_CHUNK = 1024 * 1024


class RootDirTarget(PathTarget):
    """Read a system from a directory holding its root filesystem."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "is not a directory")
        self.name = str(self.root)
        self.capabilities = frozenset({"filesystem"})

    def _host(self, inner: str) -> Path:
        return self.root / paths.normalize(inner).lstrip("/")

    def _kind(self, inner: str) -> str | None:
        try:
            mode = os.lstat(self._host(inner)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:  # a name no host path can hold (a lone surrogate): not there
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "dir" if stat.S_ISDIR(mode) else "file"

    def _readlink(self, inner: str) -> str:
        return os.readlink(self._host(inner))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The path inside the root with symlinks resolved inside it."""
        return paths.resolve(path, self._kind, self._readlink, follow_last)

    def _real(self, path: str) -> Path:
        return self._host(self.resolve(path))

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """Read a regular file, following links inside the root.

        The file is stat'ed before it is opened and opened with ``O_NONBLOCK|O_NOFOLLOW``:
        ``open()`` on a FIFO blocks forever and on a device node reads the host's device, so
        anything but a regular file is refused, and a file over ``max_size`` is too.
        """
        with self._open_regular(path) as (fh, st):
            want = limit if limit is not None else max_size + 1
            if limit is None and st.st_size > max_size:
                raise too_large(path, st.st_size, max_size)
            data = _read_upto(fh, want, path)
        if limit is None and len(data) > max_size:
            raise too_large(path, len(data), max_size)
        return data

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes from ``offset`` of a regular file (opened as
        :meth:`read_bytes` opens it)."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        with self._open_regular(path) as (fh, _):
            try:
                fh.seek(offset)
            except OSError as exc:
                raise unreadable(exc, path) from None
            return _read_upto(fh, size, path)

    @contextlib.contextmanager
    def _open_regular(self, path: str) -> Iterator[tuple[io.RawIOBase, os.stat_result]]:
        host = self._real(path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
                raise
            raise unreadable(exc, path) from None
        with os.fdopen(fd, "rb", buffering=0) as fh:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(21, "Is a directory", path)
            if not stat.S_ISREG(st.st_mode):
                raise not_regular(path, st.st_mode)
            yield fh, st

    def stat(self, path: str, follow: bool = True) -> FileStat:
        """Stat inside the root."""
        host = self._host(self.resolve(path, follow_last=follow))
        st = os.lstat(host)
        return FileStat(st.st_mode, st.st_size, st.st_uid, st.st_gid, st.st_mtime)

    def iterdir(self, path: str) -> list[str]:
        """Sorted names in a directory."""
        return sorted(os.listdir(self._real(path)))

    def readlink(self, path: str) -> str:
        """A symlink's stored target."""
        return os.readlink(self._host(self.resolve(path, follow_last=False)))

    def layout(self) -> DiskLayout | None:
        """A directory has no disk."""
        return None

    def close(self) -> None:
        """Nothing to release."""


def _read_upto(fh: io.RawIOBase, size: int, path: str) -> bytes:
    """At most ``size`` bytes, in pieces; a host read error becomes the typed error."""
    out = bytearray()
    try:
        while len(out) < size:
            piece = fh.read(min(_CHUNK, size - len(out)))
            if not piece:
                break
            out += piece
    except OSError as exc:
        raise unreadable(exc, path) from None
    return bytes(out)
