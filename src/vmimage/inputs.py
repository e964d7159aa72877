"""Open the files a user names for reading, or refuse them on one line.

Every input file goes through here, so every command refuses the same things the same way:
a missing file, a directory, a FIFO, a device or a socket, a file we may not read. Each is an
:class:`~vmimage.errors.InputError` naming the file (exit 2), never a traceback, and never a
hang: a FIFO opened for reading blocks until a writer comes, so the path is looked at before
it is opened, and opened with ``O_NONBLOCK`` in case it changed in between. A device is never
opened at all (opening a tape or a terminal has effects of its own).

:func:`read_bounded` reads small files whole (``@FILE`` URLs, SAS token files), with a size
limit, so that ``@/dev/zero`` or a disk image named by mistake cannot fill the memory.

A leaf: it imports nothing from vmimage but the errors and units.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from vmimage.errors import InputError
from vmimage.units import KiB, format_size

#: Large enough for hundreds of SAS URIs, small enough to refuse a disk image named by mistake.
MAX_SMALL_FILE = 256 * KiB

_PROBLEMS = {
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "no such file (a part of the path is not a directory)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "the file name is too long",
}


def _problem(exc: OSError) -> str:
    return _PROBLEMS.get(exc.errno or 0) or f"cannot read: {os.strerror(exc.errno or errno.EIO)}"


def not_regular(mode: int) -> str | None:
    """Why a file of this mode is no regular file (``is a FIFO (named pipe), not a regular
    file``), or None for a regular file: the words every input and output refusal uses."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def open_input(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file ``path`` (symbolic links followed); the
    caller closes it.

    Raises:
        InputError: naming ``path``: missing, not a regular file, or not readable.
    """
    try:
        kind = not_regular(Path(path).stat().st_mode)
        if kind is not None:
            raise InputError(path, kind)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(path, _problem(exc)) from None
    try:
        kind = not_regular(os.fstat(fd).st_mode)  # it may have been swapped since the stat
        if kind is not None:
            raise InputError(path, kind)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_input(path: str | os.PathLike[str]) -> os.stat_result:
    """The status of ``path`` once it is known to be a regular file we can open for reading:
    for callers that hand the path to a library which opens it itself.

    Raises:
        InputError: as :func:`open_input`.
    """
    fd = open_input(path)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def read_bounded(path: str | os.PathLike[str], limit: int = MAX_SMALL_FILE) -> bytes:
    """The whole content of the small regular file ``path``, at most ``limit`` bytes.

    Raises:
        InputError: as :func:`open_input`, or the file is larger than ``limit``.
    """
    fd = open_input(path)
    try:
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise InputError(path, _problem(exc)) from None
    finally:
        os.close(fd)
    if total > limit:
        raise InputError(path, f"is larger than {format_size(limit)}: not the small text file "
                               "expected here")
    return b"".join(chunks)


def read_bounded_text(path: str | os.PathLike[str], limit: int = MAX_SMALL_FILE) -> str:
    """:func:`read_bounded`, decoded as UTF-8 (a byte-order mark is dropped).

    Raises:
        InputError: as :func:`read_bounded`, or the file is not UTF-8 text.
    """
    try:
        return read_bounded(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "is not UTF-8 text") from None


def read_url_argument(text: str) -> str:
    """The URL itself, or the first non-empty line of ``FILE`` for ``@FILE``.

    Raises:
        InputError: the file cannot be read (see :mod:`vmimage.inputs`) or holds no line.
    """
    if not text.startswith("@"):
        return text.strip()
    path = Path(text[1:])
    lines = [ln.strip() for ln in read_bounded_text(path).splitlines() if ln.strip()]
    if not lines:
        raise InputError(path, "the URL file is empty")
    return lines[0]
