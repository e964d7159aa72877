"""Just enough POSIX shell to read files that are sourced by a shell.

``/etc/os-release`` and ``/etc/default/grub`` (with ``/etc/default/grub.d/*.cfg``) are shell
fragments: their values are quoted, escaped, may continue over lines, and grub's files build on
earlier values (``GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0"``). Reading them with
a regex gets quoting and expansion wrong; running them is impossible offline. This evaluates
the assignments only: quotes, backslashes, ``$NAME``/``${NAME}`` and ``+=``. Commands,
conditionals and command substitutions are skipped or kept as literal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_SEPARATORS = ";&|"


@dataclass(frozen=True, slots=True)
class Assignment:
    """``name=value`` as the shell would store it, with the line it starts on."""

    name: str
    value: str
    line: int


@dataclass(slots=True)
class _Word:
    text: str
    line: int
    assign: str | None = None  # variable name when the word is an assignment
    append: bool = False


class _Lexer:
    """One pass over the text, expanding variables from ``env`` as it goes."""

    def __init__(self, text: str, env: dict[str, str] | None) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.env = env

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def _take(self) -> str:
        c = self.s[self.i]
        self.i += 1
        if c == "\n":
            self.line += 1
        return c

    def _expand(self) -> str:
        """After a ``$``: the variable's value, or the literal text when it is not one."""
        if self.env is None:
            return "$"
        if self._peek() == "{":
            close = self.s.find("}", self.i)
            name = self.s[self.i + 1:close] if close > 0 else ""
            if _NAME.fullmatch(name):
                self.i = close + 1
                return self.env.get(name, "")
            return "$"
        match = _NAME.match(self.s, self.i)
        if match:
            self.i = match.end()
            return self.env.get(match.group(0), "")
        return "$"

    def _double_quoted(self) -> str:
        out = []
        while self.i < len(self.s):
            c = self._take()
            if c == '"':
                break
            if c == "\\" and self._peek() in ('"', "\\", "$", "`", "\n"):
                nxt = self._take()
                if nxt != "\n":
                    out.append(nxt)
            elif c == "$":
                out.append(self._expand())
            else:
                out.append(c)
        return "".join(out)

    def statement(self) -> list[_Word] | None:
        """The words of the next simple command, or None at the end of the text."""
        words: list[_Word] = []
        while self.i < len(self.s):
            c = self._peek()
            if c == "\n" or c in _SEPARATORS:
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
            words.append(self._word())
        return words if words else None

    def _word(self) -> _Word:
        word = _Word("", self.line)
        match = _ASSIGN.match(self.s, self.i)
        if match:
            word.assign, word.append = match.group(1), bool(match.group(2))
            self.i = match.end()
        out = []
        while self.i < len(self.s):
            c = self._peek()
            if c in " \t\r\n" or c in _SEPARATORS:
                break
            self._take()
            if c == "'":
                end = self.s.find("'", self.i)
                end = len(self.s) if end < 0 else end
                chunk = self.s[self.i:end]
                self.line += chunk.count("\n")
                out.append(chunk)
                self.i = min(end + 1, len(self.s))
            elif c == '"':
                out.append(self._double_quoted())
            elif c == "\\":
                if self.i < len(self.s):
                    nxt = self._take()
                    if nxt != "\n":
                        out.append(nxt)
            elif c == "$":
                out.append(self._expand())
            else:
                out.append(c)
        word.text = "".join(out)
        return word


def assignments(text: str, env: dict[str, str] | None = None,
                expand: bool = True) -> list[Assignment]:
    """Every variable assignment in a shell fragment, in order, expanded as the shell would.

    ``env`` holds the variables already set (a file sourced after another continues from the
    first's values) and is updated in place. A statement counts only when all its words are
    assignments (``A=1 B=2``); ``A=1 cmd`` sets A for ``cmd`` alone and is skipped.
    """
    scope = env if env is not None else {}
    lexer = _Lexer(text, scope if expand else None)
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
