"""Write disk outputs strictly: a new file with an unpredictable name, renamed into place.

``OUT.partial`` used to be opened with ``O_CREAT | O_TRUNC``: a symbolic link planted under
that name (``out.vhd.partial -> in.raw``) made ``vhd convert`` destroy its own input (issue 17).
Here the temporary file gets a random name in the output's own directory and is created with
``O_EXCL | O_NOFOLLOW``, so no one can have placed anything there first; it is renamed over
the output only when complete, and removed on any failure. An existing output that is not a
regular file (a directory, a FIFO, a device, a symbolic link to one of those) is refused even
with ``--force``: renaming over a device node would replace it with a regular file.

:mod:`vmimage.privatefile` does the same for small files held in memory; a disk image is
written piecemeal and sparse, so it needs a descriptor rather than bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vmimage.errors import InputError
from vmimage.inputs import not_regular

T = TypeVar("T")

def problem(exc: OSError) -> str:
    """An OSError's reason, as ``strerror`` says it (``No space left on device``)."""
    return os.strerror(exc.errno or errno.EIO)


def _kind(mode: int) -> str | None:
    """Why an existing file of this mode may not be replaced by a disk image, or None."""
    reason = not_regular(mode)
    return None if reason is None else f"{reason}: refusing to replace it"


def check_output(out: Path, force: bool, src: os.stat_result | None = None) -> None:
    """Refuse an output we may not create or replace.

    Raises:
        InputError: it exists (without ``force``), is not a regular file (even with
            ``force``; a symbolic link is judged by what it points to), is the input itself,
            or its directory is missing.
    """
    try:
        lst = os.lstat(out)
    except FileNotFoundError:
        lst = None
    except OSError as exc:
        raise InputError(out, f"cannot be written: {problem(exc)}") from None
    if lst is None:
        if not out.parent.is_dir():
            raise InputError(out, f"cannot be written: directory {out.parent} does not exist")
        return
    st: os.stat_result | None = lst
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = out.stat()
        except OSError:
            st = None  # a dangling link: the rename replaces the link, its target untouched
    kind = _kind(st.st_mode) if st is not None else None
    if kind:
        raise InputError(out, kind)
    if src is not None and st is not None and (st.st_dev, st.st_ino) == (src.st_dev, src.st_ino):
        raise InputError(out, "is the input file; use --in-place to convert a raw file in place")
    if not force:
        raise InputError(out, "already exists (use --force to overwrite it)")


def temp_name(out: Path) -> Path:
    """A random name beside ``out`` for its temporary file (named before it exists, so that
    a signal arriving while it is created still finds the name to remove)."""
    return out.with_name(f".{out.name}.{os.urandom(8).hex()}.partial")


def create_temp(out: Path, tmp: Path) -> int:
    """Create ``tmp`` (from :func:`temp_name`) empty: nobody else can have created or
    linked it.

    Raises:
        InputError: it cannot be created (read-only, permission, no space).
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o644)
    except OSError as exc:
        raise InputError(out, f"cannot be written: {problem(exc)}") from None


def discard(fd: int, tmp: Path) -> None:
    """Close and remove a temporary file after a failure; never raises (it is cleanup)."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        tmp.unlink()


def write_new(out: Path, force: bool, src: os.stat_result | None,
              fill: Callable[[int], T], doing: str) -> T:
    """Create ``out`` through a temporary file that ``fill(fd)`` writes; all or nothing.

    Raises:
        InputError: the output is refused (:func:`check_output`), or creating, filling or
            renaming it fails (one line naming ``out``; nothing is left behind).
    """
    check_output(out, force, src)
    tmp, fd = temp_name(out), -1
    try:
        fd = create_temp(out, tmp)
        result = fill(fd)
        closing, fd = fd, -1
        os.close(closing)
        tmp.replace(out)
    except InputError:
        discard(fd, tmp)
        raise
    except OSError as exc:
        discard(fd, tmp)
        raise InputError(out, f"{doing} failed: {problem(exc)}") from None
    except BaseException:
        discard(fd, tmp)
        raise
    return result
