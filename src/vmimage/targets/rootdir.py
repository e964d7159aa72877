"""A mounted root filesystem (or an unpacked tree) as a target.

Symlinks resolve inside the directory, never on the host: ``/etc/resolv.conf -> /run/...``
inside ``/mnt/image`` means ``/mnt/image/run/...``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vmimage.errors import InputError
from vmimage.targets import paths
from vmimage.targets.base import DiskLayout, FileStat, PathTarget


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

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """Read a file, following links inside the root."""
        with open(self._real(path), "rb") as f:
            return f.read() if limit is None else f.read(limit)

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
