"""Local accounts (``/etc/passwd`` joined with ``/etc/shadow``) and the effective sudoers lines.

"No default accounts", "root password removed" and LISA's pre-existing-user rule are decided
on the password field the system would check. Like ``pam_unix``, that is the shadow hash when
the passwd field is ``x`` and the passwd field itself otherwise (an old-style or emptied passwd
field wins over shadow). LISA's rule: a field containing ``*`` or ``!`` is locked, ``x``
without a shadow line cannot log in; an *empty* field logs in with no password at all, which
is worse than a password, so it is reported separately as :attr:`User.empty_password`.

sudoers is read as sudo reads it: ``@include``/``#include`` and ``@includedir``/
``#includedir`` followed in place, backslash continuations joined.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from vmimage.facts._includes import IncludeWalk, read_config
from vmimage.targets.base import Target

PASSWD = "/etc/passwd"
SHADOW = "/etc/shadow"
SUDOERS = "/etc/sudoers"
NON_LOGIN_SHELLS = frozenset({"nologin", "false", "sync", "shutdown", "halt"})
_MAX_INCLUDE_DEPTH = 128  # sudo's own limit

#: Shell and REPL history files in a home directory: what LINUX-SHELL-HISTORY-EMPTY judges and
#: what ``vmimage generalize`` deletes (one list, so the two never disagree).
HISTORY_NAMES = (".bash_history", ".sh_history", ".zsh_history", ".ksh_history",
                 ".history", ".csh_history", ".tcsh_history", ".ash_history",
                 ".mysql_history", ".python_history", ".lesshst")


@dataclass(frozen=True, slots=True)
class User:
    """One account with the password field that decides whether it can log in."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    password: str  # the shadow hash field, or passwd's field when that is not "x"
    passwd_line: int
    shadow_line: int | None

    @property
    def empty_password(self) -> bool:
        """Logs in with no password at all (where PAM allows ``nullok``, as Debian does)."""
        return self.password == ""

    @property
    def has_usable_password(self) -> bool:
        """A password one can log in with (LISA: locked fields hold ``*`` or ``!``)."""
        field = self.password
        if field == "" or "*" in field or "!" in field:
            return False
        return not (field == "x" and self.shadow_line is None)

    @property
    def is_login_shell(self) -> bool:
        """The shell lets one in (an empty shell field means ``/bin/sh``)."""
        return posixpath.basename(self.shell) not in NON_LOGIN_SHELLS

    @property
    def is_system(self) -> bool:
        """A system account by the usual ranges (uid below 1000, not root)."""
        return 0 < self.uid < 1000


def _read(target: Target, path: str) -> str | None:
    """The file's text, None when absent; unreadable content raises the typed error."""
    return read_config(target, path)


def read_users(target: Target) -> list[User]:
    """Every account in ``/etc/passwd`` (NIS ``+``/``-`` lines and malformed ones skipped)."""
    shadow: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate((_read(target, SHADOW) or "").splitlines(), start=1):
        fields = raw.split(":")
        if len(fields) >= 2 and fields[0] and fields[0] not in shadow:
            shadow[fields[0]] = (fields[1], number)
    users = []
    for number, raw in enumerate((_read(target, PASSWD) or "").splitlines(), start=1):
        fields = raw.split(":")
        if len(fields) < 7 or not fields[0] or fields[0][0] in "+-#":
            continue
        try:
            uid, gid = int(fields[2]), int(fields[3])
        except ValueError:
            continue
        name = fields[0]
        hashed = shadow.get(name)
        shadow_line = hashed[1] if hashed else None
        password = hashed[0] if fields[1] == "x" and hashed is not None else fields[1]
        users.append(User(name, uid, gid, fields[5], fields[6], password, number, shadow_line))
    return users


# --- sudoers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SudoersLine:
    """One logical sudoers line (continuations joined, comment removed) and where it starts."""

    path: str
    line: int
    text: str


_INCLUDE = re.compile(r"[#@](include|includedir)\s+(.+)")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash-newline continuations joined, numbered by their first line."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment; ``#1000`` (a uid) and ``#`` inside a word are not comments."""
    for match in re.finditer(r"#", line):
        k = match.start()
        nxt = line[k + 1:k + 2]
        if (k == 0 or line[k - 1] in " \t,=:!") and not (nxt.isdigit() or nxt == "-"):
            return line[:k].rstrip()
    return line.rstrip()


def _included_dir(target: Target, directory: str) -> list[str]:
    """A directory's files in sudo's order, skipping names with ``.`` or ending in ``~``."""
    try:
        names = target.iterdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f"{directory.rstrip('/')}/{n}" for n in sorted(names)
            if "." not in n and not n.endswith("~")]


def _read_sudoers(walk: IncludeWalk, path: str, depth: int, out: list[SudoersLine]) -> None:
    """One sudoers file, its includes followed in place (a cycle or an include tree over the
    work bound raises :class:`~vmimage.facts._includes.IncludeError`)."""
    if depth > _MAX_INCLUDE_DEPTH:
        return
    with walk.visit(path) as text:
        if text is None:
            return
        for number, raw in _logical_lines(text):
            stripped = raw.strip()
            match = _INCLUDE.fullmatch(stripped)
            if match:
                _include(walk, path, match, depth, out)
                continue
            text_line = _strip_comment(stripped)
            if text_line:
                out.append(SudoersLine(path, number, text_line))


def _include(walk: IncludeWalk, path: str, match: re.Match[str], depth: int,
             out: list[SudoersLine]) -> None:
    """``@include``/``@includedir`` (or ``#``): relative to the including file's directory."""
    arg = match.group(2).strip().strip('"')
    if not arg.startswith("/"):
        arg = posixpath.join(posixpath.dirname(path), arg)
    if match.group(1) == "includedir":
        for included in _included_dir(walk.target, arg):
            _read_sudoers(walk, included, depth + 1, out)
    else:
        _read_sudoers(walk, arg, depth + 1, out)


def read_sudoers(target: Target) -> list[SudoersLine]:
    """Every rule and Defaults line sudo would read, in the order it reads them."""
    out: list[SudoersLine] = []
    _read_sudoers(IncludeWalk(target, SUDOERS, "sudoers include"), SUDOERS, 0, out)
    return out
