"""Write output files strictly: a new file renamed into place, never through a link.

Submissions, certification packages and ``sas create -o`` files hold SAS URIs, which grant
read access to the VHDs (rulings): they are written with mode 0600 from the first byte, since
a file created world-readable and chmod-ed afterwards leaks for a moment
(:func:`write_private`). Reports (``check --output``) are written the same way, readable by
all (:func:`write_public`).

Either way the data goes to a new file with an unpredictable name in the output's own
directory, created with ``O_EXCL | O_NOFOLLOW`` (no one can have placed a link there first),
and is renamed over the output only once complete: a reader never sees half a file, an
existing output is never written through (a symbolic or hard link to another file stays
untouched), and nothing is left behind on failure. An existing output that is not a regular
file (a directory, a FIFO, a device, a symbolic link) is refused, as is a missing directory:
every failure is one :class:`~vmimage.errors.InputError` naming the output.

A leaf: it imports nothing from vmimage but the errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from vmimage.errors import InputError

PRIVATE = 0o600
PUBLIC = 0o644

_PROBLEMS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "the file name is too long",
}


def _problem(exc: OSError) -> str:
    return _PROBLEMS.get(exc.errno or 0) or os.strerror(exc.errno or errno.EIO)


def _check_target(path: Path) -> None:
    """Refuse an output that exists and is not a regular file, or whose directory is missing."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise InputError(path, f"cannot write: {path.parent} is not a directory") from None
        raise InputError(path, f"cannot write: {_problem(exc)}") from None
    if mode is None:
        if not path.parent.is_dir():
            reason = "is not a directory" if path.parent.exists() else "does not exist"
            raise InputError(path, f"cannot write: the directory {path.parent} {reason}")
    elif stat.S_ISLNK(mode):
        raise InputError(path, "is a symbolic link: refusing to write through it (remove it, "
                               "or name the file it points to)")
    elif stat.S_ISDIR(mode):
        raise InputError(path, "is a directory: name a file")
    elif not stat.S_ISREG(mode):
        raise InputError(path, "exists and is not a regular file")


def _write(path: Path, raw: bytes, mode: int) -> Path:
    """Write ``raw`` to a new file beside ``path`` and rename it over ``path``."""
    _check_target(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode)
    except OSError as exc:
        raise InputError(path, f"cannot write: {_problem(exc)}") from None
    try:
        try:
            if mode == PRIVATE:
                os.fchmod(fd, PRIVATE)  # the umask only removes bits: make it exact
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise InputError(path, f"cannot write: {_problem(exc)}") from None
        raise
    return path


def write_private(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path``, readable by its owner only (0600).

    Raises:
        InputError: naming ``path``: see the module's docstring.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _write(Path(path), raw, PRIVATE)


def write_public(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` readable by all (0644, less the umask), as
    strictly as :func:`write_private`: for reports, which hold no secret.

    Raises:
        InputError: naming ``path``: see the module's docstring.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _write(Path(path), raw, PUBLIC)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create the directory ``path`` and its missing parents, each new level 0700; an existing
    directory is used as it is.

    Raises:
        InputError: it exists and is not a directory, or cannot be created.
    """
    path = Path(path)
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
    except NotADirectoryError:
        raise InputError(path, "cannot create: a part of the path is not a directory") from None
    except OSError as exc:
        raise InputError(path, f"cannot create: {_problem(exc)}") from None
    if not path.is_dir():
        raise InputError(path, "exists and is not a directory")
    return path
