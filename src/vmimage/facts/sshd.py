"""sshd's effective configuration, read as OpenSSH's servconf.c reads it.

``ClientAliveInterval`` is a certification test (Microsoft 46, LISA), and the value that
counts is the one sshd uses, not the first line a grep finds. sshd takes the *first* value it
reads for a keyword; ``Include`` is expanded in place (globs sorted, relative paths under
``/etc/ssh``); a ``Match`` block applies only to some connections, so its settings are not the
global value, except under ``Match all``, whose values override for every connection; a
``Match`` inside an included file ends with that file; an ``Include`` inside a ``Match`` block
is part of that block (``sshd -T`` is the tests' oracle). Debian 12 includes
``sshd_config.d/*.conf`` at the top, so a drop-in wins over the main file (rulings).
Microsoft's tool greps the main file only: :meth:`SshdConfig.in_main_file` answers that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vmimage.facts._includes import IncludeWalk
from vmimage.targets.base import Target

SSHDIR = "/etc/ssh"
MAIN = f"{SSHDIR}/sshd_config"
MAX_DEPTH = 16  # SERVCONF_MAX_DEPTH: deeper Includes are an error in sshd
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class SshdSetting:
    """One keyword line: where it is, and its arguments joined by single spaces."""

    keyword: str  # as written in the file
    value: str
    path: str
    line: int
    #: Inside a Match block that not every connection matches (or an Include within one).
    in_match: bool = False
    #: Under ``Match all``: applies to every connection and overrides the startup value.
    match_all: bool = False


@dataclass(frozen=True)
class SshdConfig:
    """Every setting sshd would read, in the order it reads them."""

    settings: tuple[SshdSetting, ...] = ()
    files: tuple[str, ...] = ()
    exists: bool = False
    main: str = MAIN
    #: Problems sshd would refuse or complain about (Include too deep), for evidence.
    problems: tuple[str, ...] = field(default_factory=tuple)

    def get(self, keyword: str) -> SshdSetting | None:
        """The value every connection gets, as ``sshd -T`` prints it.

        The first value under ``Match all`` if there is one (it overrides), else the first
        value read outside Match blocks.
        """
        wanted = keyword.lower()
        found = [s for s in self.settings if s.keyword.lower() == wanted]
        return next((s for s in found if s.match_all), None) or next(
            (s for s in found if not s.in_match), None)

    def get_all(self, keyword: str) -> list[SshdSetting]:
        """Every global occurrence, in reading order (for Port, HostKey, AcceptEnv...)."""
        wanted = keyword.lower()
        return [s for s in self.settings if not s.in_match and s.keyword.lower() == wanted]

    def in_main_file(self, keyword: str) -> SshdSetting | None:
        """The first setting in the main ``sshd_config`` itself, outside Match blocks."""
        wanted = keyword.lower()
        return next((s for s in self.settings if s.path == self.main and not s.in_match
                     and s.keyword.lower() == wanted), None)


def _strdelim(s: str) -> tuple[str | None, str]:
    """misc.c ``strdelim``: the first token (ending at whitespace, a quote or one ``=``)."""
    stops = _WHITESPACE + '"='
    k = next((i for i, c in enumerate(s) if c in stops), -1)
    if k < 0:
        return s, ""
    token, rest = s[:k], s[k:]
    if rest[0] == '"':
        close = rest.find('"', 1)
        if close < 0:
            return None, ""
        token += rest[1:close]
        return token, rest[close + 1:].lstrip(_WHITESPACE)
    equals = rest[0] == "="
    rest = rest[1:].lstrip(_WHITESPACE)
    if not equals and rest.startswith("="):
        rest = rest[1:].lstrip(_WHITESPACE)
    return token, rest


def _argv_split(s: str) -> list[str] | None:
    """misc.c ``argv_split`` with comments terminating: quotes and backslashes removed."""
    args: list[str] = []
    i = 0
    while i < len(s):
        if s[i] in " \t":
            i += 1
            continue
        if s[i] == "#":
            break
        quote = ""
        arg = []
        while i < len(s):
            c = s[i]
            if c == "\\":
                nxt = s[i + 1] if i + 1 < len(s) else ""
                if nxt in ("'", '"', "\\") or (not quote and nxt == " "):
                    i += 1
                    arg.append(nxt)
                else:
                    arg.append(c)
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if quote:
            return None  # unterminated quote: sshd rejects the line
        args.append("".join(arg))
    return args


def split_line(line: str) -> tuple[str, list[str]] | None:
    """``(keyword, arguments)`` of one config line, or None for blanks, comments, bad lines."""
    line = line.rstrip(_WHITESPACE + "\f")
    keyword, rest = _strdelim(line)
    if keyword == "":
        keyword, rest = _strdelim(rest)
    if not keyword or keyword.startswith("#") or not rest:
        return None
    args = _argv_split(rest)
    if not args:
        return None
    return keyword, args


def _match_active(args: list[str]) -> bool:
    """With no connection to match against, only ``Match all`` applies (servconf.c)."""
    words = [a for a in args if a]
    return bool(words) and words[0].lower() == "all" and (len(words) == 1
                                                          or words[1].startswith("#"))


@dataclass
class _Pass:
    """One of sshd's two readings of the file: its Match state and Include flags."""

    active: bool
    match_only: bool = False  # SSHCFG_MATCH_ONLY: before the first Match of the reprocess pass
    never: bool = False  # SSHCFG_NEVERMATCH: included from an inactive Match block


@dataclass
class _Reader:
    """Reads the files once while following both of sshd's passes over them.

    sshd parses the configuration twice. At startup (no connection): lines before any Match
    and after ``Match all`` are active, and the first value wins. For each connection (and for
    ``sshd -T``) it parses again with only the matching Match blocks active and lets the
    values found there override the startup ones (servconf.c ``parse_server_match_config``).
    Offline no User/Host/Address criterion can match, so only ``Match all`` blocks do.
    """

    target: Target
    walk: IncludeWalk
    settings: list[SshdSetting] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def read(self, path: str, depth: int, startup: _Pass, connection: _Pass) -> None:
        """Read one file; both passes' states are updated in place as sshd's ``activep``.

        Includes are followed through :class:`IncludeWalk`: a cycle or a tree over its bound
        raises :class:`~vmimage.facts._includes.IncludeError` (sshd itself would not start).
        """
        with self.walk.visit(path) as text:
            if text is not None:
                self.files.append(path)
                self._lines(text, path, depth, startup, connection)

    def _lines(self, text: str, path: str, depth: int, startup: _Pass,
               connection: _Pass) -> None:
        """The keyword lines of one file, in order, Includes expanded in place."""
        for number, raw in enumerate(text.split("\n"), start=1):
            parsed = split_line(raw)
            if parsed is None:
                continue
            keyword, args = parsed
            lowered = keyword.lower()
            if lowered == "match":
                for state in (startup, connection):
                    state.active = not state.never and _match_active(args)
                    state.match_only = False
            elif lowered == "include":
                self._include(args, path, number, depth, startup, connection)
            else:
                self.settings.append(SshdSetting(keyword, " ".join(args), path, number,
                                                 in_match=not startup.active,
                                                 match_all=connection.active))

    def _include(self, args: list[str], path: str, number: int, depth: int,
                 startup: _Pass, connection: _Pass) -> None:
        outer = (startup.active, connection.active)
        for arg in args:
            pattern = arg if arg.startswith(("/", "~")) else f"{SSHDIR}/{arg}"
            if depth + 1 > MAX_DEPTH:
                self.problems.append(f"{path}:{number}: Include nested deeper than {MAX_DEPTH}")
                return
            matches = self.target.glob(pattern) if not pattern.startswith("~") else []
            for included in sorted(matches):
                inner = [_Pass(state.active, state.match_only,
                               not state.match_only and not state.active)
                         for state in (startup, connection)]
                self.read(included, depth + 1, inner[0], inner[1])
                startup.active, connection.active = outer


def _is_link(target: Target, path: str) -> bool:
    try:
        return target.stat(path, follow=False).is_symlink
    except OSError:
        return False


def read_sshd_config(target: Target, path: str = MAIN) -> SshdConfig:
    """The configuration sshd reads, starting at ``path`` (``/etc/ssh/sshd_config``)."""
    if not target.exists(path) and not _is_link(target, path):
        return SshdConfig(main=path)  # a symlink loop is read, and says why it cannot be
    reader = _Reader(target, IncludeWalk(target, path, "Include"))
    reader.read(path, 0, _Pass(active=True), _Pass(active=False, match_only=True))
    return SshdConfig(tuple(reader.settings), tuple(reader.files), bool(reader.files), path,
                      tuple(reader.problems))


#: Where a value that only ``sshd -T`` gave is said to come from.
SSHD_T = "sshd -T"


def with_effective(config: SshdConfig, effective: dict[str, str]) -> SshdConfig:
    """The configuration read from the files, where ``sshd -T`` (a live VM's sshd reading its
    own files) disagrees on a keyword the files set: sshd's value goes first, so ``get``
    answers what sshd really uses (evidence ``sshd -T``), and the file lines stay for
    :meth:`SshdConfig.in_main_file`. A keyword the files do not set is left unset: ``sshd
    -T`` prints every default, and "not set" is what the rules judge there."""
    first: list[SshdSetting] = []
    for setting in config.settings:
        keyword = setting.keyword.lower()
        seen = effective.get(keyword)
        chosen = config.get(setting.keyword)
        if seen is None or chosen is not setting or any(s.keyword.lower() == keyword
                                                        for s in first):
            continue
        if seen.lower() != " ".join(setting.value.split()).lower():
            first.append(SshdSetting(setting.keyword, seen, SSHD_T, 0,
                                     match_all=setting.match_all))
    if not first:
        return config
    return SshdConfig((*first, *config.settings), config.files, config.exists, config.main,
                      config.problems)
