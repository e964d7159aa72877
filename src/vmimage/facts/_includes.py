"""Follow a configuration file's includes with cycle detection and a bound on the total work.

sshd's ``Include``, sudo's ``@include``/``@includedir`` and ifupdown's ``source``/
``source-directory`` each expand into a tree of files, and a hostile image can make that tree
a cycle (a 3-line ``/etc/sudoers`` including itself twice doubles the work at each of sudo's
128 levels) or merely enormous. The tools themselves refuse a cycle (sshd and sudo stop at
their depth limit with an error and do not start; ifupdown recurses until it fails), so a
cycle, or a tree over :data:`MAX_FILES` files or :data:`MAX_BYTES` bytes, is refused with
:class:`IncludeError`: the rule that needed the configuration is skipped with the reason.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from vmimage.errors import InputError
from vmimage.targets.base import TEXT_MAX, Target

#: Files one include tree may read (a real one reads a handful; a missing name counts too).
MAX_FILES = 256
#: Bytes one include tree may read in all.
MAX_BYTES = 16 * 1024 * 1024


class IncludeError(InputError):
    """An include tree that cannot be followed: a cycle, or more than the work bound."""


def read_config(target: Target, path: str, max_size: int = TEXT_MAX) -> str | None:
    """A configuration file's text, or None when it is absent (or a directory).

    Any other failure (a symlink loop, a damaged inode, a FIFO, over ``max_size``) raises the
    target's typed :class:`~vmimage.targets.base.UnreadableError`.
    """
    try:
        return target.read_text(path, max_size)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@dataclass
class IncludeWalk:
    """The state of one walk over an include tree rooted at ``root``."""

    target: Target
    root: str
    directive: str  # "Include", "#include", "source": for the messages
    max_files: int = MAX_FILES
    max_bytes: int = MAX_BYTES
    files: int = 0
    bytes: int = 0
    stack: list[str] = field(default_factory=list)

    def _refuse(self, problem: str) -> IncludeError:
        return IncludeError(self.root, problem)

    @contextmanager
    def visit(self, path: str) -> Iterator[str | None]:
        """Enter ``path`` (its text, None when absent) for as long as the block runs.

        Raises:
            IncludeError: ``path`` is already being read (a cycle), or the tree has read
                more than the bound of files or bytes.
        """
        key = posixpath.normpath(path)
        if key in self.stack:
            chain = " -> ".join([*self.stack[self.stack.index(key):], key])
            raise self._refuse(f"{self.directive} cycle: {chain}")
        self.files += 1
        if self.files > self.max_files:
            raise self._refuse(f"{self.directive} reaches more than {self.max_files} files; "
                               "not followed further")
        text = read_config(self.target, path)
        self.bytes += len(text) if text is not None else 0
        if self.bytes > self.max_bytes:
            raise self._refuse(f"{self.directive} reaches more than {self.max_bytes} bytes; "
                               "not followed further")
        self.stack.append(key)
        try:
            yield text
        finally:
            self.stack.pop()
