"""A Linux root directory opened for change, every path resolved inside it.

Generalizing deletes and rewrites files of an image that anyone may have built: a
``/root/.bash_history`` that is a symbolic link to ``/etc/passwd``, or a ``/etc/resolv.conf``
pointing at ``../../../../etc/shadow``, must never make vmimage touch the host. So no path is
ever handed to the kernel whole: each component is opened relative to its parent directory's
descriptor with ``O_NOFOLLOW``, a symbolic link met on the way is resolved by us *inside the
root* (an absolute target restarts at the root, ``..`` never climbs above it), and the last
component is acted on by name in its parent (``unlink`` removes a link, never its target). A
file is replaced by writing a temporary file beside it and renaming it over the old one, so a
kill at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from vmimage.errors import InputError
from vmimage.targets.base import BYTES_MAX, PathTarget
from vmimage.targets.paths import normalize
from vmimage.targets.rootdir import RootDirTarget

MAX_LINKS = 40  # as the kernel's own limit on symbolic links in one lookup
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """What is at a path: its kind (``file``, ``dir``, ``link``, ``other``), size and mode."""

    kind: str
    size: int
    mode: int


class WritableRoot:
    """A root directory, held open; paths are absolute *inside* it (``/etc/hostname``)."""

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise InputError(path, f"cannot open the root directory: "
                                   f"{os.strerror(exc.errno or errno.EIO)}") from None
        self.path = path

    def close(self) -> None:
        """Release the root's descriptor."""
        os.close(self.fd)

    def __enter__(self) -> WritableRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    # Lookup

    @contextlib.contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str] | None]:
        """``(directory fd, last name)`` for ``path``, the directories resolved inside the
        root; None when a directory on the way does not exist (nothing to change there)."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts:
            raise ValueError("the root itself has no parent")
        *dirs, name = parts
        fd = self._walk(dirs)
        if fd is None:
            yield None
            return
        try:
            yield fd, name
        finally:
            os.close(fd)

    def _walk(self, parts: list[str]) -> int | None:
        """A descriptor of the directory ``parts`` names, inside the root."""
        stack = [os.dup(self.fd)]
        todo = list(parts)
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                try:
                    st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
                except FileNotFoundError:
                    return None
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_LINKS:
                        raise InputError(self.path, f"too many symbolic links in /{'/'.join(parts)}")
                    target = os.readlink(part, dir_fd=stack[-1])
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    todo = [p for p in target.split("/") if p] + todo
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    return None
                stack.append(os.open(part, _DIR_FLAGS, dir_fd=stack[-1]))
            return os.dup(stack[-1])
        finally:
            for fd in stack:
                os.close(fd)

    def directory(self, path: str) -> int | None:
        """A new descriptor of the directory at ``path``, resolved inside the root (None when
        it is not a directory); the caller closes it."""
        return self._walk([p for p in path.split("/") if p])

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry at ``path`` itself (a link not followed), its directories resolved
        inside the root; None if nothing is there."""
        with self.parent(path) as where:
            return _lstat_at(where)

    def entry(self, path: str) -> Entry | None:
        """What is at ``path`` (a link is reported as a link, not followed); None if nothing."""
        st = self.lstat(path)
        if st is None:
            return None
        kind = ("link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)
                else "file" if stat.S_ISREG(st.st_mode) else "other")
        return Entry(kind, st.st_size, stat.S_IMODE(st.st_mode))

    def listdir(self, path: str) -> list[str]:
        """Names in a directory inside the root (empty when it is not there)."""
        fd = self._walk([p for p in path.split("/") if p])
        if fd is None:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def glob(self, pattern: str) -> list[str]:
        """Paths inside the root matching ``pattern`` (``*``, ``?``, ``[...]`` in any
        component, as the checks' globs), sorted; directories met on the way resolve inside
        the root."""
        import fnmatch

        found = ["/"]
        for part in [p for p in pattern.split("/") if p]:
            nxt = []
            for base in found:
                prefix = base.rstrip("/")
                if any(c in part for c in "*?["):
                    nxt += [f"{prefix}/{n}" for n in self.listdir(base)
                            if fnmatch.fnmatchcase(n, part)]
                elif self.entry(f"{prefix}/{part}") is not None:
                    nxt.append(f"{prefix}/{part}")
            found = nxt
        return sorted(found)

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """A regular file's text (None when absent or not a regular file); never follows a
        link at the last component."""
        with self.parent(path) as where:
            if where is None:
                return None
            fd, name = where
            try:
                file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                return None
            try:
                if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                    return None
                return os.read(file_fd, limit).decode("utf-8", errors="surrogateescape")
            finally:
                os.close(file_fd)

    def target(self, writes: dict[str, str] | None = None) -> RootDirTarget:
        """The root as the checks' facts read it (read-only), with ``writes`` (path -> new
        text) read in place of the files: an operation proves a fix with the same parsers
        the checks use before planning it."""
        return OverlayTarget(self.path, writes or {}, set())

    # ---------------------------------------------------------------------------------------
    # Changes

    def remove(self, path: str) -> bool:
        """Delete what is at ``path``: a file or a link (the link itself), or a directory and
        everything under it, never leaving the root. True when something was removed."""
        with self.parent(path) as where:
            st = _lstat_at(where)
            if where is None or st is None:
                return False
            fd, name = where
            if stat.S_ISDIR(st.st_mode):
                _rmtree_at(fd, name)
            else:
                os.unlink(name, dir_fd=fd)
            return True

    def replace(self, path: str, data: str | bytes, mode: int | None = None) -> None:
        """Replace (or create) a regular file atomically: a temporary file beside it, synced,
        renamed over it. Keeps the old file's mode, owner and group unless ``mode`` is given;
        a link at ``path`` is replaced by the file, its target untouched."""
        raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
        with self.parent(path) as where:
            if where is None:
                raise InputError(self.path, f"cannot write {path}: its directory is missing")
            fd, name = where
            try:
                old: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and not stat.S_ISREG(old.st_mode):
                old = None
            tmp = f".{name}.vmimage-tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)  # left by a killed run
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=fd)
            try:
                os.write(out, raw)
                os.fchmod(out, mode if mode is not None else
                          stat.S_IMODE(old.st_mode) if old is not None else 0o644)
                if old is not None:
                    with contextlib.suppress(PermissionError):
                        os.fchown(out, old.st_uid, old.st_gid)
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def _lstat_at(where: tuple[int, str] | None) -> os.stat_result | None:
    """The entry ``name`` in directory ``fd`` itself (a link not followed); None if absent."""
    if where is None:
        return None
    fd, name = where
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _rmtree_at(parent: int, name: str) -> None:
    """Remove directory ``name`` under ``parent`` and all it holds, links never followed."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _rmtree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def under(path: str, tops: set[str]) -> bool:
    """``path`` is one of ``tops`` or inside one (all normalized absolute paths): what a
    planned removal of ``tops`` takes with it."""
    return any(path == top or path.startswith(top.rstrip("/") + "/") for top in tops)


class OverlayTarget(RootDirTarget):
    """A root directory read as it will be once planned writes and removals are done."""

    def __init__(self, root: str, writes: dict[str, str], removed: set[str]) -> None:
        super().__init__(root)
        self.writes = {normalize(p): t for p, t in writes.items()}
        self.removed = {normalize(p) for p in removed}

    def _planned(self, path: str) -> str:
        """``path`` (or, failing that, where it resolves) as the plan knows it."""
        key = normalize(path)
        if key not in self.writes and not under(key, self.removed):
            with contextlib.suppress(OSError):
                key = self.resolve(path)
        return key

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """The planned text of a written file, nothing for a removed one, else the file's."""
        key = self._planned(path)
        if key in self.writes:
            data = self.writes[key].encode("utf-8", "surrogateescape")
            return data if limit is None else data[:limit]
        if under(key, self.removed):
            raise FileNotFoundError(2, "No such file or directory (removed by the plan)", path)
        return super().read_bytes(path, limit, max_size=max_size)

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """Parts read as :meth:`read_bytes` reads the whole: the plan's view."""
        return PathTarget.read_at(self, path, offset, size)
