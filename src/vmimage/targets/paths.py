"""Resolve paths inside a target's root, one component at a time.

Debian 12's ``/bin``, ``/lib`` and ``/sbin`` are symlinks, and an absolute link in an image
points into the image, not the host (rulings). Every target resolves paths with this one
function, given two primitives: ``lstat``-like ``kind`` and ``readlink``.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Callable

from vmimage.targets.base import UnreadableError

MAX_LINKS = 40  # as Linux's MAXSYMLINKS: a loop fails instead of hanging

#: Returns "dir", "link", "file" (anything else that exists) or None when missing.
KindFn = Callable[[str], str | None]
ReadlinkFn = Callable[[str], str]


def normalize(path: str) -> str:
    """An absolute, normalized POSIX path (``..`` cannot climb above ``/``)."""
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def resolve(path: str, kind: KindFn, readlink: ReadlinkFn, follow_last: bool = True) -> str:
    """The path with every symlink resolved inside the root.

    Raises:
        FileNotFoundError: a component is missing (the path as given is in the message), or
            the path holds a NUL, which no file name can.
        NotADirectoryError: a component that must be a directory is not one.
        UnreadableError: too many levels of symbolic links (a loop, or a chain longer than
            Linux follows): typed, so a fact reader's caller skips with the reason.
    """
    if "\0" in path:  # from image content (a config file's value): missing, not ValueError
        raise FileNotFoundError(2, "No such file or directory", path)
    pending = [p for p in normalize(path).split("/") if p]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/" + "/".join([*done, part])
        what = kind(candidate)
        if what is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if what == "link" and (pending or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise UnreadableError(path, f"too many levels of symbolic links (over "
                                            f"{MAX_LINKS}: a loop or a long chain)", errno.ELOOP)
            target = readlink(candidate)
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p and p != "."] + pending
            continue
        if pending and what not in ("dir", "link"):
            raise NotADirectoryError(20, "Not a directory", path)
        done.append(part)
    return "/" + "/".join(done)


def glob_components(pattern: str, listdir: Callable[[str], list[str]],
                    is_dir: Callable[[str], bool]) -> list[str]:
    """Expand a shell pattern component by component (no ``**``), sorted like the shell."""
    import fnmatch

    results = ["/"]
    for part in [p for p in normalize(pattern).split("/") if p]:
        nxt: list[str] = []
        for base in results:
            if not any(ch in part for ch in "*?["):
                cand = posixpath.join(base, part)
                nxt.append(cand)
                continue
            if not is_dir(base):
                continue
            try:
                names = listdir(base)
            except OSError:
                continue
            nxt += [posixpath.join(base, n) for n in names
                    if fnmatch.fnmatchcase(n, part) and (part.startswith(".")
                                                         or not n.startswith("."))]
        results = nxt
    return sorted(results)
