"""Just enough POSIX shell to read files that are sourced by a shell, and the lexer GRUB shares.

``/etc/os-release`` and ``/etc/default/grub`` (with ``/etc/default/grub.d/*.cfg``) are shell
fragments: their values are quoted, escaped, may continue over lines, and grub's files build on
earlier values (``GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0"``). Reading them with
a regex gets quoting and expansion wrong; running them is impossible offline. This evaluates
the assignments only: quotes, backslashes, ``$NAME``/``${NAME}`` and ``+=``. Commands,
conditionals and command substitutions are skipped or kept as literal text.

GRUB's script language (``grub.cfg``, read by :mod:`vmimage.facts._grub`) is lexed by the same
rules: comments, single quotes, double quotes with backslash escapes, backslash-newline,
``$NAME`` and ``${NAME}``. One :class:`Lexer` serves both; a :class:`Dialect` holds what
differs (which characters end a command, which names ``$`` takes, what a backslash escapes
inside double quotes, whether an unquoted expansion splits into words, whether ``NAME=``
starts an assignment, and GRUB's ``{``/``}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmimage.errors import InputError

#: Characters all expansions of one text may produce. ``A="$A$A"`` forty times is a terabyte;
#: a real file expands to a few KiB.
MAX_EXPANSION = 16 * 1024 * 1024
#: How far after ``${`` the closing ``}`` is looked for: a name is short, and searching the
#: whole rest of the text for each ``${`` is quadratic.
MAX_BRACED_NAME = 1024
_SH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_FIELD_SEPARATORS = re.compile(r"[ \t\n]+")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the shell-like languages this lexer reads."""

    separators: str  # besides a newline, what ends a command (and the word before it)
    name: re.Pattern[str]  # what may follow ``$`` or sit inside ``${...}``
    dquote_escapes: str  # what a backslash escapes inside double quotes
    split_fields: bool = False  # an unquoted expansion splits into words at blanks
    assignments: bool = False  # ``NAME=`` or ``NAME+=`` at a word's start assigns
    block_words: frozenset[str] = frozenset()  # a lone unquoted word that ends its command


#: POSIX sh as far as assignments need it.
SH = Dialect(";&|", _SH_NAME, '"\\$`\n', assignments=True)


@dataclass(frozen=True, slots=True)
class Assignment:
    """``name=value`` as the shell would store it, with the line it starts on."""

    name: str
    value: str
    line: int


@dataclass(slots=True)
class Word:
    """One word as the shell sees it after quote removal and expansion."""

    text: str
    line: int
    quoted: bool = False  # part of it was quoted: it stays a word even when empty
    assign: str | None = None  # variable name when the word is an assignment
    append: bool = False


class ExpansionError(InputError):
    """The text's variable expansions produce more than :data:`MAX_EXPANSION` characters."""


class Lexer:
    """One pass over the text, expanding variables from ``env`` as it goes (none when None).

    ``undefined`` tells whether the last statement expanded a variable that is not set.
    ``source`` names the text in the :class:`ExpansionError` raised when its expansions
    grow past ``max_expansion`` characters.
    """

    def __init__(self, text: str, env: dict[str, str] | None, dialect: Dialect = SH,
                 source: str = "shell text", max_expansion: int = MAX_EXPANSION) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.env = env
        self.dialect = dialect
        self.undefined = False
        self.source = source
        self.budget = max_expansion

    def _peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def _take(self) -> str:
        c = self.s[self.i]
        self.i += 1
        if c == "\n":
            self.line += 1
        return c

    def _expand(self) -> str:
        """After a ``$``: the variable's value, or ``$`` itself when no name follows."""
        if self.env is None:
            return "$"
        if self._peek() == "{":
            close = self.s.find("}", self.i, self.i + 2 + MAX_BRACED_NAME)
            name = self.s[self.i + 1:close] if close > 0 else ""
            if not self.dialect.name.fullmatch(name):
                return "$"
            self.i = close + 1
        else:
            match = self.dialect.name.match(self.s, self.i)
            if not match:
                return "$"
            name = match.group(0)
            self.i = match.end()
        if name not in self.env:
            self.undefined = True
        value = self.env.get(name, "")
        self.budget -= len(value)
        if self.budget < 0:
            raise ExpansionError(self.source, "variable expansions grow past "
                                              f"{MAX_EXPANSION} characters; not evaluated")
        return value

    def _double_quoted(self) -> str:
        out = []
        while self.i < len(self.s):
            c = self._take()
            if c == '"':
                break
            if c == "\\" and self._peek() in self.dialect.dquote_escapes and self._peek():
                nxt = self._take()
                if nxt != "\n":
                    out.append(nxt)
            elif c == "$":
                out.append(self._expand())
            else:
                out.append(c)
        return "".join(out)

    def statement(self) -> list[Word] | None:
        """The words of the next simple command, or None at the end of the text."""
        words: list[Word] = []
        self.undefined = False
        while self.i < len(self.s):
            c = self._peek()
            if c == "\n" or c in self.dialect.separators:
                self._take()
                if words:
                    return words
                continue
            if c in " \t\r":
                self._take()
                continue
            if c == "#":
                while self.i < len(self.s) and self._peek() != "\n":
                    self._take()
                continue
            pieces = self._word()
            words += pieces
            if (len(pieces) == 1 and not pieces[0].quoted
                    and pieces[0].text in self.dialect.block_words):
                return words
        return words if words else None

    def _word(self) -> list[Word]:
        """One word as written; several when an unquoted expansion splits (GRUB)."""
        line = self.line
        done: list[Word] = []
        assign, append = None, False
        if self.dialect.assignments:
            match = _ASSIGN.match(self.s, self.i)
            if match:
                assign, append = match.group(1), bool(match.group(2))
                self.i = match.end()
        out: list[str] = []
        quoted = False
        stops = " \t\r\n" + self.dialect.separators
        while self.i < len(self.s):
            c = self._peek()
            if c in stops:
                break
            self._take()
            if c == "'":
                quoted = True
                end = self.s.find("'", self.i)
                end = len(self.s) if end < 0 else end
                chunk = self.s[self.i:end]
                self.line += chunk.count("\n")
                out.append(chunk)
                self.i = min(end + 1, len(self.s))
            elif c == '"':
                quoted = True
                out.append(self._double_quoted())
            elif c == "\\":
                if self.i < len(self.s):
                    nxt = self._take()
                    if nxt != "\n":
                        out.append(nxt)
            elif c == "$":
                value = self._expand()
                if not self.dialect.split_fields:
                    out.append(value)
                    continue
                fields = _FIELD_SEPARATORS.split(value)
                out.append(fields[0])
                for field in fields[1:]:
                    done.append(Word("".join(out), line, quoted))
                    out, quoted = [field], False
            else:
                out.append(c)
        done.append(Word("".join(out), line, quoted))
        done[0].assign, done[0].append = assign, append
        return done


def assignments(text: str, env: dict[str, str] | None = None,
                expand: bool = True, source: str = "shell text") -> list[Assignment]:
    """Every variable assignment in a shell fragment, in order, expanded as the shell would.

    ``env`` holds the variables already set (a file sourced after another continues from the
    first's values) and is updated in place. A statement counts only when all its words are
    assignments (``A=1 B=2``); ``A=1 cmd`` sets A for ``cmd`` alone and is skipped.
    """
    scope = env if env is not None else {}
    lexer = Lexer(text, scope if expand else None, source=source)
    found: list[Assignment] = []
    while True:
        words = lexer.statement()
        if words is None:
            return found
        if words[0].text == "export" and words[0].assign is None:
            words = words[1:]
        if not words or any(w.assign is None for w in words):
            continue
        for w in words:
            name = w.assign or ""
            value = scope.get(name, "") + w.text if w.append else w.text
            scope[name] = value
            found.append(Assignment(name, value, w.line))
