"""Write files that may hold SAS URIs: mode 0600 from the first byte, replaced atomically.

A submission or a certification package necessarily holds SAS URIs (rulings), which grant
read access to the VHDs; a file created world-readable and chmod-ed afterwards leaks for a
moment, so the file is created 0600 under a temporary name and renamed over the target.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vmimage.errors import InputError


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each 0700; refuse a path that is not a directory.

    Raises:
        InputError: it exists and is not a directory, or cannot be created.
    """
    missing = []
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    try:
        for directory in reversed(missing):  # each new level 0700, not only the last
            directory.mkdir(mode=0o700)
    except FileExistsError:
        raise InputError(path, "exists and is not a directory") from None
    except OSError as exc:
        raise InputError(path, f"cannot create: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise InputError(path, "exists and is not a directory")
    return path


def write_private(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600 (text as UTF-8).

    Raises:
        InputError: the file cannot be written.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
    return path
