"""GRUB 2's script language, evaluated just far enough to list what ``grub.cfg`` boots.

grub-mkconfig writes a program, not a table: the default entry is a variable set inside
``if`` blocks, RHEL 8 sets ``kernelopts`` only ``if [ -z "${kernelopts}" ]`` (grubenv wins),
Ubuntu appends ``$vt_handoff``. This walks the commands in order with grub's quoting rules
(grub-core/script/yylex.l; the lexer is the shell's, :mod:`vmimage.facts._shell`), keeps
variables, decides the ``[ ... ]`` tests whose operands are all known, and runs both branches
of the others. Functions are not run; menu entries are
collected with their ``linux`` commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from vmimage.errors import InputError
from vmimage.facts import _shell

_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
#: grub-core/script/yylex.l: ``;`` ends a command, ``$`` takes names, digits and ``?#@*``,
#: a backslash in double quotes escapes only ``$ " \`` and a newline.
GRUB = _shell.Dialect(";", re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#@*]"), '"\\$\n',
                      split_fields=True, block_words=frozenset({"{", "}"}))
LINUX_COMMANDS = ("linux", "linux16", "linuxefi")
#: Blocks (if, menuentry, submenu, function...) one grub.cfg may nest: a real one nests four.
MAX_DEPTH = 256

#: What a current GRUB announces about itself before reading grub.cfg (normal/main.c).
FEATURES = {name: "y" for name in (
    "feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint",
    "feature_default_font_path", "feature_all_video_module", "feature_menuentry_id",
    "feature_menuentry_options", "feature_200_final", "feature_nativedisk_cmd",
    "feature_timeout_style")}


@dataclass(slots=True)
class Command:
    """One simple command: its expanded words and the line it starts on."""

    words: list[str]
    line: int
    undefined: bool = False  # an expansion referred to a variable that was never set


class Lexer:
    """Yields commands lazily, so each is expanded with the variables set before it.

    GRUB's words are lexed as the shell's (:mod:`vmimage.facts._shell`, GRUB's dialect): an
    unquoted ``$var`` holding blanks splits into words, an empty unquoted one is no word, and
    a lone ``{`` or ``}`` ends its command.
    """

    def __init__(self, text: str, env: dict[str, str], source: str = "grub.cfg") -> None:
        self._lexer = _shell.Lexer(text, env, GRUB, source)

    def commands(self) -> Iterator[Command]:
        """Each command in order; ``{`` ends a command (kept as its last word), ``}`` is one."""
        while True:
            words = self._lexer.statement()
            if words is None:
                return
            kept = [w for w in words if w.quoted or w.text]
            if kept:
                yield Command([w.text for w in kept], kept[0].line, self._lexer.undefined)


def test_condition(words: list[str]) -> bool | None:
    """The value of ``[ ... ]`` for the forms grub-mkconfig writes, None when undecidable."""
    if len(words) < 2 or words[0] != "[" or words[-1] != "]":
        return None
    inner = words[1:-1]
    if len(inner) == 1:
        return inner[0] != ""
    if len(inner) == 2 and inner[0] in ("-z", "-n"):
        return (inner[1] == "") == (inner[0] == "-z")
    if len(inner) == 3 and inner[1] in ("=", "==", "!="):
        return (inner[0] == inner[2]) == (inner[1] != "!=")
    return None


@dataclass(slots=True)
class LinuxLine:
    """A ``linux`` command inside a menu entry."""

    kernel: str
    args: tuple[str, ...]
    line: int


@dataclass(slots=True)
class MenuEntry:
    """A ``menuentry`` (or ``submenu``, which holds others), as grub lists it."""

    title: str
    entry_id: str
    line: int
    kind: str  # "menuentry" | "submenu"
    linux: list[LinuxLine] = field(default_factory=list)
    children: list[MenuEntry] = field(default_factory=list)


def _entry_head(words: list[str], kind: str, line: int) -> MenuEntry:
    """Title and id from ``menuentry TITLE [--class C]... [--id ID] {``."""
    takes_value = {"--class", "--users", "--hotkey", "--id", "--source"}
    positional: list[str] = []
    entry_id = ""
    args = words[1:-1] if words[-1] == "{" else words[1:]
    k = 0
    while k < len(args):
        arg = args[k]
        if arg in takes_value:
            if arg == "--id" and k + 1 < len(args):
                entry_id = args[k + 1]
            k += 2
            continue
        if not arg.startswith("--"):
            positional.append(arg)
        k += 1
    title = positional[0] if positional else ""
    if not entry_id and len(positional) > 1:
        entry_id = positional[1]
    return MenuEntry(title, entry_id, line, kind)


@dataclass
class _Frame:
    kind: str  # "if", "menuentry", "submenu", "function", "block", "loop"
    cond: bool | None = None
    in_else: bool = False
    entry: MenuEntry | None = None
    owner: MenuEntry | None = None  # the innermost menu entry at or around this frame

    @property
    def blocks(self) -> bool:
        """Commands inside this frame do not run (a function body, an untaken branch)."""
        return self.kind == "function" or (self.kind == "if" and self.cond is not None
                                           and self.cond == self.in_else)


class _Stack:
    """The open blocks, with what every command asks of them kept up to date as they change:
    whether commands run, and the menu entry they belong to. Asking by walking the whole stack
    for each command is quadratic in the nesting, which a hostile grub.cfg makes deep.
    """

    def __init__(self, source: str) -> None:
        self.frames: list[_Frame] = []
        self.blocked = 0
        self.source = source

    @property
    def running(self) -> bool:
        """No open block stops commands from running."""
        return self.blocked == 0

    @property
    def owner(self) -> MenuEntry | None:
        """The innermost menu entry (or submenu) being read."""
        return self.frames[-1].owner if self.frames else None

    @property
    def top(self) -> _Frame | None:
        """The innermost open block."""
        return self.frames[-1] if self.frames else None

    def push(self, frame: _Frame) -> None:
        """Open a block; deeper than :data:`MAX_DEPTH` is refused."""
        if len(self.frames) >= MAX_DEPTH:
            raise GrubError(self.source, f"blocks nested deeper than {MAX_DEPTH}; not read")
        frame.owner = frame.entry or self.owner
        self.frames.append(frame)
        self.blocked += frame.blocks

    def pop(self) -> None:
        """Close the innermost block (a stray closing word closes nothing)."""
        if self.frames:
            self.blocked -= self.frames.pop().blocks

    def branch(self, cond: bool | None, in_else: bool) -> None:
        """``elif``/``else``: the innermost ``if`` takes another branch."""
        frame = self.frames[-1]
        self.blocked -= frame.blocks
        frame.cond, frame.in_else = cond, in_else
        self.blocked += frame.blocks


class GrubError(InputError):
    """A grub.cfg this reader refuses: nested deeper than any real one."""


@dataclass
class Script:
    """The result of walking a grub.cfg: its menu and its variables at the end."""

    entries: list[MenuEntry]
    env: dict[str, str]
    blscfg: bool  # the file calls ``blscfg``: BLS entries are part of its menu


def run(text: str, env: dict[str, str], source: str = "grub.cfg") -> Script:
    """Walk a grub.cfg with ``env`` as the variables grub has when it starts (grubenv).

    Linear in the text: each command costs the same however deep it is nested.
    """
    entries: list[MenuEntry] = []
    stack = _Stack(source)
    blscfg = False
    for cmd in Lexer(text, env, source).commands():
        words = cmd.words
        while words and words[0] in ("then", "else", "do") and len(words) > 1:
            _keyword(words[0], stack, cmd)
            words = words[1:]
        head = words[0]
        if head in ("if", "elif", "then", "else", "fi", "do", "done", "while", "until", "for"):
            _keyword(head, stack, Command(words, cmd.line, cmd.undefined))
            continue
        if head == "}":
            stack.pop()
            continue
        if words[-1] == "{":
            stack.push(_open_block(words, cmd.line, stack, entries))
            continue
        if not stack.running:
            continue
        if head in LINUX_COMMANDS and len(words) > 1:
            entry = stack.owner
            if entry is not None and entry.kind == "menuentry":
                entry.linux.append(LinuxLine(words[1], tuple(words[2:]), cmd.line))
        elif head == "blscfg":
            blscfg = True
        else:
            _assign(words, env)
    return Script(entries, env, blscfg)


def _keyword(head: str, stack: _Stack, cmd: Command) -> None:
    top = stack.top
    if head == "if":
        cond = None if cmd.undefined else test_condition(cmd.words[1:])
        stack.push(_Frame("if", cond))
    elif head in ("while", "until", "for"):
        stack.push(_Frame("loop"))
    elif head == "elif" and top is not None and top.kind == "if":
        stack.branch(None, False)
    elif head == "else" and top is not None and top.kind == "if":
        stack.branch(top.cond, True)
    elif head in ("fi", "done"):
        stack.pop()


def _open_block(words: list[str], line: int, stack: _Stack,
                entries: list[MenuEntry]) -> _Frame:
    kind = words[0] if words[0] in ("menuentry", "submenu", "function") else "block"
    if kind in ("menuentry", "submenu") and stack.running:
        entry = _entry_head(words, kind, line)
        parent = stack.owner
        if parent is not None and parent.kind == "submenu":
            parent.children.append(entry)
        elif parent is None:
            entries.append(entry)
        return _Frame(kind, entry=entry)
    if kind in ("menuentry", "submenu"):
        return _Frame("function")  # a menu entry in a branch that does not run
    return _Frame(kind)


def _assign(words: list[str], env: dict[str, str]) -> None:
    if words[0] == "set":
        for word in words[1:]:
            match = _ASSIGN.fullmatch(word)
            if match:
                env[match.group(1)] = match.group(2)
    elif words[0] == "unset":
        for name in words[1:]:
            env.pop(name, None)
    elif len(words) == 1:
        match = _ASSIGN.fullmatch(words[0])
        if match:
            env[match.group(1)] = match.group(2)


def parse_grubenv(text: str) -> dict[str, str]:
    """The 1 KiB environment block: ``name=value`` lines after the header, ``#`` padding."""
    values: dict[str, str] = {}
    for raw in text.split("\n"):
        if not raw or raw.startswith("#"):
            continue
        name, sep, value = raw.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            values[name] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                  value)
    return values
