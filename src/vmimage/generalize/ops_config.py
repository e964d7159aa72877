"""The configuration fixes the checks ask for: sshd's keep-alive, the kernel command line, swap,
NetworkManager, and NIC configurations pinned to the builder's MAC address (issue 10).

Each reads the image as its check does, through the facts (sshd's Include and Match, GRUB's
script and BLS snippets, fstab as libmount reads it, systemd's links, the network stacks),
plans the fewest line changes that make the check pass under the chosen profile, and keeps
every other byte. Before planning a write it reads the result back the same way, so what a fix
cannot reach (a parameter that comes from a variable, a swap partition, a package to remove)
becomes a note, never a guess.

A configuration file that is a symbolic link is never written through: a link resolving inside
the root is replaced by a file holding the edited text (as :func:`ops.hostname` does), or left
alone when its target is itself one of the files the fix edits (RHEL's EFI ``grubenv``); a link
that does not resolve inside the root is noted and left.
"""

from __future__ import annotations

import posixpath
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vmimage.errors import InputError
from vmimage.facts._shell import assignments
from vmimage.facts.bootcfg import (
    DEFAULT_GRUB,
    DEFAULT_GRUB_D,
    FORBIDDEN_ARGS,
    GRUB_CFGS,
    GRUBENVS,
    REQUIRED_CONSOLES,
    KernelCmdline,
    read_kernel_cmdlines,
)
from vmimage.facts.network import (
    managing_stack,
    network_stacks,
    networkmanager_installed,
    nm_connection_files,
)
from vmimage.facts.osrelease import read_os_release
from vmimage.facts.packages import read_packages
from vmimage.facts.services import ETC as UNIT_ETC
from vmimage.facts.services import VENDOR_DIRS, service_state
from vmimage.facts.sshd import MAIN as SSHD_CONFIG
from vmimage.facts.sshd import SshdConfig, read_sshd_config, split_line
from vmimage.facts.swap import FSTAB, read_swap
from vmimage.facts.waagent import PATH as WAAGENT_CONF
from vmimage.generalize.plan import Action, Note, Options, operation
from vmimage.generalize.rootfs import WritableRoot
from vmimage.profiles import Profile, load_profile
from vmimage.targets.base import Target
from vmimage.targets.rootdir import RootDirTarget
from vmimage.targets.signatures import SWAP_PAGES, is_swap_area

# --- reading the root as the checks do, and planning writes ----------------------------------


@dataclass(frozen=True)
class _File:
    """A configuration file to edit: its text as the checks read it, and the link it is."""

    path: str
    text: str
    link: str | None  # where a symbolic link at ``path`` resolves inside the root
    mode: int | None  # the mode the replacing file keeps when ``path`` is a link


class _Edits:
    """One operation's planned writes, file by file, and its notes."""

    def __init__(self, root: WritableRoot, op: str) -> None:
        self.root = root
        self.op = op
        self.target = root.target()
        self.files: dict[str, _File] = {}
        self.texts: dict[str, str] = {}
        self.reasons: dict[str, list[str]] = {}
        self.notes: list[Note] = []

    def open(self, path: str, skip_links_to: Iterable[str] = ()) -> _File | None:
        """The file at ``path`` to edit; None when there is nothing to edit there (absent, a
        directory, a link into another file the fix edits, or unusable: then noted)."""
        if path in self.files:
            return self.files[path]
        entry = self.root.entry(path)
        if entry is None or entry.kind == "dir":
            return None
        link, mode = None, None
        if entry.kind == "link":
            try:
                link = self.target.resolve(path)
                mode = stat.S_IMODE(self.target.stat(path).mode)
            except OSError:
                self.note(f"{path} is a symbolic link that does not resolve inside the image: "
                          "not changed")
                return None
            if link in set(skip_links_to):
                return None  # its target is edited as itself
        try:
            raw = self.target.read_bytes(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            self.note(f"{exc}: not changed")
            return None
        found = _File(path, raw.decode("utf-8", "surrogateescape"), link, mode)
        self.files[path] = found
        self.texts[path] = found.text
        return found

    def text(self, path: str) -> str:
        """The text of an opened file with the edits planned so far."""
        return self.texts[path]

    def set(self, path: str, text: str, reason: str) -> None:
        """Plan ``text`` as the new content of an opened file."""
        if text != self.texts[path]:
            self.texts[path] = text
            if reason not in self.reasons.setdefault(path, []):
                self.reasons[path].append(reason)

    def note(self, text: str) -> None:
        """A warning in the plan."""
        self.notes.append(Note(self.op, text))

    def view(self) -> RootDirTarget:
        """The root as it reads with the planned writes."""
        return self.root.target({p: t for p, t in self.texts.items()
                                 if t != self.files[p].text})

    def steps(self) -> Iterator[Action | Note]:
        """The notes, then one write per changed file."""
        yield from self.notes
        for path, found in self.files.items():
            if self.texts[path] == found.text:
                continue
            reason = "; ".join(self.reasons.get(path, []))
            if found.link is not None:
                reason += f" (a symbolic link to {found.link}: replaced by a file)"
            yield Action(self.op, "write", path, reason, self.texts[path], found.mode)


def _glob(target: Target, patterns: Iterable[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        found = target.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
        out += [p for p in found if p not in out]
    return out


def _set_line(lines: list[str], index: int, text: str) -> None:
    """Replace a line, keeping its carriage return."""
    lines[index] = text + ("\r" if lines[index].endswith("\r") else "")


def _insert_line(lines: list[str], index: int | None, text: str) -> None:
    """Insert a line before ``lines[index]`` (None: as the file's last line), with the file's
    line ending."""
    if index is None:
        index = len(lines) - 1 if lines and lines[-1] == "" else len(lines)
    lines.insert(index, text + ("\r" if lines and lines[0].endswith("\r") else ""))


def _is_file(target: Target, path: str) -> bool:
    try:
        return target.stat(path).is_file
    except OSError:
        return False


# --- sshd ------------------------------------------------------------------------------------

CLIENT_ALIVE = "ClientAliveInterval"


def _client_alive_ok(config: SshdConfig, profile: Profile) -> bool:
    """What LINUX-SSH-CLIENT-ALIVE decides under ``profile``: passed, or not."""
    setting = config.get(CLIENT_ALIVE)
    if setting is None:
        return False
    try:
        value = int(setting.value)
    except ValueError:
        return False
    if not profile.number("client_alive_min") <= value <= profile.number("client_alive_max"):
        return False
    if profile.flag("ssh_dropin_only_is_warning"):
        if setting.path != SSHD_CONFIG and config.in_main_file(CLIENT_ALIVE) is None:
            return False
        return value == profile.number("client_alive_recommended")
    return True


def _first_include_or_match(lines: list[str]) -> int | None:
    """The index of the main file's first Include or Match line: above it, sshd has read
    nothing else yet."""
    for index, raw in enumerate(lines):
        parsed = split_line(raw)
        if parsed is not None and parsed[0].lower() in ("include", "match"):
            return index
    return None


@operation("sshd-client-alive", "Set sshd's ClientAliveInterval 180 where sshd reads it first",
           fixes=("LINUX-SSH-CLIENT-ALIVE",))
def sshd_client_alive(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """Azure's load balancer drops a connection idle for 4 minutes; the guide and the tests
    want a keep-alive every 180 s. sshd takes the first value it reads and Debian includes
    ``sshd_config.d`` at the top, while Microsoft's tool greps the main file only: so the
    line is set in the main file where no drop-in precedes it, and a ``Match all`` value,
    which overrides for every connection, is set too."""
    edits = _Edits(root, "sshd-client-alive")
    profile = load_profile(options.profile)
    best = profile.number("client_alive_recommended")
    wanted = f"{CLIENT_ALIVE} {best}"
    if not _is_file(edits.target, "/usr/sbin/sshd"):
        return  # no SSH server: the check skips, the option is not needed
    try:
        config = read_sshd_config(edits.target)
        if _client_alive_ok(config, profile):
            return
        if edits.open(SSHD_CONFIG) is None or not config.exists:
            if root.entry(SSHD_CONFIG) is None:
                edits.note(f"no {SSHD_CONFIG}: not created (sshd's default sends no "
                           "keep-alive)")
            yield from edits.steps()
            return
        seen = config.get(CLIENT_ALIVE)
        lines = edits.text(SSHD_CONFIG).split("\n")
        first = next((s for s in config.settings
                      if s.keyword.lower() == CLIENT_ALIVE.lower() and not s.in_match), None)
        if first is not None and first.path == SSHD_CONFIG:  # read before any drop-in
            _set_setting(lines, first.line, wanted)
        else:  # none, or a drop-in read first: above the main file's first Include and Match
            _insert_line(lines, _first_include_or_match(lines), wanted)
        edits.set(SSHD_CONFIG, "\n".join(lines),
                  f"{CLIENT_ALIVE} {seen.value if seen else 'not set'}")
        after = read_sshd_config(edits.view())
        effective = after.get(CLIENT_ALIVE)
        if effective is not None and effective.match_all and effective.value != str(best) \
                and edits.open(effective.path) is not None:
            lines = edits.text(effective.path).split("\n")
            _set_setting(lines, effective.line, wanted)
            edits.set(effective.path, "\n".join(lines),
                      f"{CLIENT_ALIVE} {effective.value} under Match all")
            after = read_sshd_config(edits.view())
        if not _client_alive_ok(after, profile):
            edits.note(f"{wanted} could not be made effective: see `vmimage check --check "
                       "LINUX-SSH-CLIENT-ALIVE`")
    except InputError as exc:  # an Include cycle, an unreadable file: sshd would not start
        edits.note(f"sshd's configuration cannot be read: {exc}")
    yield from edits.steps()


def _set_setting(lines: list[str], number: int, text: str) -> None:
    """Replace the keyword line ``number``, keeping its indentation."""
    raw = lines[number - 1]
    _set_line(lines, number - 1, raw[:len(raw) - len(raw.lstrip(" \t"))] + text)


# --- the kernel command line ------------------------------------------------------------------

#: LINUX-KERNEL-CMDLINE: a console and early printk on the serial port the portal shows, and
#: the root delay the 2015 guide asks for (azure-current warns without it).
REQUIRED = (*(f"{name}={value}" for name, value in REQUIRED_CONSOLES), "rootdelay=300")
FORBIDDEN = FORBIDDEN_ARGS
GRUB_VARS = ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")
KERNEL_CMDLINE = "/etc/kernel/cmdline"
_WORD_STOP = " \t\r;&|"


def _has(args: list[str], param: str) -> bool:
    """Whether ``param`` is given: ``console=ttyS0,115200n8`` counts as ``console=ttyS0``, as
    in the check; ``rootdelay`` counts only with the value 300."""
    name, _, value = param.partition("=")
    if name == "rootdelay":
        return param in args
    return any(a.startswith(f"{name}=") and a[len(name) + 1:].split(",")[0] == value
               for a in args)


def _wanted(args: Iterable[str]) -> tuple[set[str], list[str]]:
    """(arguments to drop, arguments to add) for one kernel command line: the forbidden ones
    and any other root delay go (the kernel keeps the last), the required ones missing come."""
    args = list(args)
    drop = {a for a in args if a in FORBIDDEN or (a.startswith("rootdelay=")
                                                   and a != "rootdelay=300")}
    kept = [a for a in args if a not in drop]
    return drop, [p for p in REQUIRED if not _has(kept, p)]


def _drop_words(text: str, drop: Iterable[str]) -> str:
    """``text`` without each whole word of ``drop`` (a word ends at blanks or quotes) and one
    blank beside it."""
    for word in sorted(drop):
        pattern = re.compile(rf"(?P<pre>[ \t]*)(?<![^\s\"']){re.escape(word)}"
                             rf"(?![^\s\"'])(?P<post>[ \t]*)")
        text = pattern.sub(lambda m: m.group("pre") if m.group("pre") and m.group("post")
                           else "", text)
    return text


def _append_words(text: str, add: list[str]) -> str:
    """``text`` with ``add`` after its last word (before trailing blanks)."""
    if not add:
        return text
    body = text.rstrip(" \t\r")
    gap = " " if body and not body.endswith((" ", "\t")) else ""
    return body + gap + " ".join(add) + text[len(body):]


def _edit_line(text: str, index: int, drop: set[str], add: list[str]) -> str:
    lines = text.split("\n")
    lines[index] = _append_words(_drop_words(lines[index], drop), add)
    return "\n".join(lines)


def _grubenv(edits: _Edits, paths: list[str]) -> None:
    """``kernelopts`` in each grubenv (RHEL 8: its BLS entries say ``options $kernelopts``),
    the 1 KiB block kept whole by its ``#`` padding."""
    for path in paths:
        found = edits.open(path, skip_links_to=paths)
        if found is None:
            continue
        lines = found.text.split("\n")
        index = next((i for i, ln in enumerate(lines) if ln.startswith("kernelopts=")), None)
        if index is None:
            continue
        value = lines[index][len("kernelopts="):]
        drop, add = _wanted(value.split())
        if not drop and not add:
            continue
        lines[index] = "kernelopts=" + _append_words(_drop_words(value, drop), add)
        grown = len("\n".join(lines).encode()) - len(found.text.encode())
        padding = lines[-1]
        if padding.strip("#") or len(padding) < grown:
            edits.note(f"{path}: no room left in the 1 KiB environment block: kernelopts "
                       "not changed (grub2-editenv - set kernelopts=...)")
            continue
        lines[-1] = "#" * (len(padding) - grown)
        edits.set(path, "\n".join(lines), "kernelopts " + _summary(drop, add))


def _summary(drop: Iterable[str], add: Iterable[str]) -> str:
    parts = [f"-{a}" for a in sorted(drop)] + [f"+{a}" for a in add]
    return " ".join(parts)


def _boot_entries(edits: _Edits, entries: list[KernelCmdline], cfgs: list[str]) -> None:
    """The ``linux`` lines of grub.cfg and the ``options`` lines of BLS snippets, every
    entry's (recovery too: update-grub gives them GRUB_CMDLINE_LINUX); a grub.cfg copied
    elsewhere (the EFI one) gets the same edits."""
    for entry in entries:
        drop, add = _wanted(entry.args)
        if (not drop and not add) or entry.source not in ("grub.cfg", "bls"):
            continue
        found = edits.open(entry.path, skip_links_to=cfgs)
        if found is None:
            continue
        text = edits.text(entry.path)
        lines = text.split("\n")
        if entry.source == "grub.cfg":
            head = lines[entry.line - 1].split() if 0 < entry.line <= len(lines) else []
            if not head or head[0] not in ("linux", "linux16", "linuxefi") or \
                    lines[entry.line - 1].rstrip().endswith("\\"):
                continue  # the command is not on one line: left to the note below
            text = _edit_line(text, entry.line - 1, drop, add)
        else:
            for i, raw in enumerate(lines):
                if raw.strip().partition(" ")[0] == "options":
                    lines[i] = _drop_words(raw, drop)
            if entry.line:
                lines[entry.line - 1] = _append_words(lines[entry.line - 1], add)
            elif add:
                _insert_line(lines, None, "options " + " ".join(add))
            text = "\n".join(lines)
        edits.set(entry.path, text, _summary(drop, add))
    edited = {edits.files[p].text: (edits.text(p), edits.reasons[p]) for p in cfgs
              if p in edits.files and edits.text(p) != edits.files[p].text}
    for path in cfgs:  # an identical copy was one menu to the reader: same lines, same edits
        copy = edits.open(path, skip_links_to=cfgs)
        if copy is not None and edits.text(path) == copy.text and copy.text in edited:
            text, reasons = edited[copy.text]
            edits.set(path, text, "; ".join(reasons))


def _value_span(line: str, name: str, nth: int) -> tuple[int, int] | None:
    """Where the value of the ``nth`` assignment to ``name`` on a shell line is; None when it
    does not end on that line or holds a command substitution (not edited)."""
    starts = [m.end() for m in re.finditer(rf"(?<![^\s;&|]){name}\+?=", line)]
    if nth >= len(starts):
        return None
    i = start = starts[nth]
    while i < len(line) and line[i] not in _WORD_STOP:
        c = line[i]
        if c == "\\":
            i += 2
        elif c == "'":
            i = line.find("'", i + 1) + 1
        elif c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                if line[i] == "`" or line.startswith("$(", i):
                    return None
                i += 2 if line[i] == "\\" else 1
            i += 1
        elif c == "`" or line.startswith("$(", i):
            return None
        else:
            i += 1
        if i <= 0 or i > len(line):
            return None
    return start, i


def _append_to_value(value: str, add: list[str]) -> str:
    """A shell word with ``add`` appended to what it holds: inside its closing quote, or as a
    quoted part of its own after an unquoted word."""
    words = " ".join(add)
    if not value:
        return f'"{words}"'
    if len(value) >= 2 and value[-1] in "\"'":
        inner = value[:-1]
        gap = "" if inner in ("'", '"') or inner.endswith((" ", "\t")) else " "
        return f"{inner}{gap}{words}{value[-1]}"
    return f'{value}" {words}"'


def _words(name: str, value: str) -> list[str] | None:
    """The words a shell assignment's value holds, variables left as written."""
    found = assignments(f"{name}={value}\n", expand=False)
    return found[0].value.split() if len(found) == 1 and found[0].name == name else None


def _grub_env(edits: _Edits, files: list[str]) -> tuple[dict[str, str], list[tuple[str, int,
                                                                                     str]]]:
    """The variables as grub-mkconfig sources the files, and where each kernel command line
    variable is assigned: (path, line, name), in order."""
    env: dict[str, str] = {}
    sites: list[tuple[str, int, str]] = []
    for path in files:
        for assigned in assignments(edits.text(path), env, source=path):
            if assigned.name in GRUB_VARS:
                sites.append((path, assigned.line, assigned.name))
    return env, sites


def _edit_assignment(edits: _Edits, path: str, line: int, name: str, before: int,
                     change: tuple[set[str], list[str]]) -> None:
    """Drop and append words in the value of one assignment, once the shell would read the new
    value as exactly those words; else noted and left."""
    lines = edits.text(path).split("\n")
    raw = lines[line - 1]
    span = _value_span(raw, name, before)
    old = None if span is None else raw[span[0]:span[1]]
    new = None if old is None else _drop_words(old, change[0])
    new = _append_to_value(new, change[1]) if new is not None and change[1] else new
    was = None if old is None else _words(name, old)
    if new is None or was is None or _words(name, new) != [
            w for w in was if w not in change[0]] + change[1]:
        edits.note(f"{path} line {line}: {name} is not a value vmimage edits "
                   f"({_summary(*change)} not applied there)")
        return
    assert span is not None
    lines[line - 1] = raw[:span[0]] + new + raw[span[1]:]
    edits.set(path, "\n".join(lines),
              f"{name} {_summary([w for w in was if w in change[0]], change[1])}")


def _grub_wanted(edits: _Edits, files: list[str]) -> tuple[set[str], list[str],
                                                            list[tuple[str, int, str]]]:
    """What the normal entries update-grub writes lack and hold too much, and the sites."""
    env, sites = _grub_env(edits, files)
    drop, add = _wanted(f"{env.get(GRUB_VARS[0], '')} {env.get(GRUB_VARS[1], '')}".split())
    return drop, add, sites


def _default_grub(edits: _Edits) -> None:
    """What the next update-grub or grub2-mkconfig writes: GRUB_CMDLINE_LINUX and
    GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and its grub.d drop-ins. Forbidden words go
    from every assignment; missing ones join the GRUB_CMDLINE_LINUX that wins (all entries,
    recovery too, get it)."""
    if edits.open(DEFAULT_GRUB) is None:
        return
    files = [p for p in [DEFAULT_GRUB, *edits.target.glob(DEFAULT_GRUB_D)]
             if edits.open(p) is not None]
    drop, add, sites = _grub_wanted(edits, files)
    if drop:
        counts: dict[tuple[str, int, str], int] = {}
        for path, line, name in sites:
            before = counts.get((path, line, name), 0)
            counts[(path, line, name)] = before + 1
            _edit_assignment(edits, path, line, name, before, (drop, []))
        _, add, sites = _grub_wanted(edits, files)
    linux = [s for s in sites if s[2] == GRUB_VARS[0]]
    if add and linux:
        path, line, name = linux[-1]
        before = sum(1 for s in linux[:-1] if s[:2] == (path, line))
        _edit_assignment(edits, path, line, name, before, (set(), add))
    elif add:
        lines = edits.text(DEFAULT_GRUB).split("\n")
        _insert_line(lines, None, f'{GRUB_VARS[0]}="{" ".join(add)}"')
        edits.set(DEFAULT_GRUB, "\n".join(lines), f"{GRUB_VARS[0]} {_summary(set(), add)}")
    drop, add, _ = _grub_wanted(edits, files)
    if drop or add:
        edits.note(f"{DEFAULT_GRUB}: the next update-grub would still write "
                   f"{_summary(drop, add)}")


def _kernel_install(edits: _Edits) -> None:
    """/etc/kernel/cmdline, which kernel-install writes into the BLS entry of every kernel
    installed later (RHEL 9, Fedora)."""
    found = edits.open(KERNEL_CMDLINE)
    if found is None:
        return
    drop, add = _wanted(found.text.split())
    if not drop and not add:
        return
    lines = [_drop_words(ln, drop) for ln in found.text.split("\n")]
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=0)
    lines[last] = _append_words(lines[last], add)
    edits.set(KERNEL_CMDLINE, "\n".join(lines), _summary(drop, add))


def _left_over(target: Target) -> list[str]:
    """What the kernel command line checks would still find: the normal entries' missing and
    forbidden words."""
    entries = [c for c in read_kernel_cmdlines(target) if not c.recovery]
    if not entries:
        return ["no boot entry found (no grub.cfg, BLS entry, grubenv kernelopts or "
                "/etc/default/grub): nothing to edit"]
    problems = []
    for entry in entries:
        drop, add = _wanted(entry.args)
        if drop or add:
            problems.append(f"{entry.path} line {entry.line} ({entry.title or entry.source}) "
                            f"still needs {_summary(drop, add)}: it comes from a construct "
                            "vmimage does not edit")
    return problems


@operation("kernel-cmdline", "Serial console and rootdelay=300 on the kernel command line, "
           "no forbidden parameters",
           fixes=("LINUX-KERNEL-CMDLINE", "LINUX-KERNEL-CMDLINE-FORBIDDEN"))
def kernel_cmdline(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """The serial console is how the portal shows a VM that does not boot, and
    libata.atapi_enabled=0 or reserve=0x1f0,0x8 hide Azure's disks. The menu that boots is
    fixed (grub.cfg, BLS snippets, RHEL 8's grubenv ``kernelopts``), and so are the files the
    next kernel update regenerates it from (/etc/default/grub, /etc/kernel/cmdline)."""
    edits = _Edits(root, "kernel-cmdline")
    try:
        envs = _glob(edits.target, GRUBENVS)
        _grubenv(edits, envs)
        cfgs = _glob(edits.target, GRUB_CFGS)
        _boot_entries(edits, read_kernel_cmdlines(edits.view()), cfgs)
        _default_grub(edits)
        _kernel_install(edits)
        for problem in _left_over(edits.view()):
            edits.note(problem)
    except InputError as exc:  # a grub.cfg too deep, an expansion too large, unreadable
        edits.note(f"the boot configuration cannot be read: {exc}")
    yield from edits.steps()


# --- swap -------------------------------------------------------------------------------------


@operation("swap", "Remove swap from fstab, swap files and swap units; no swap from the agent",
           fixes=("LINUX-NO-SWAP",))
def swap(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """Swap on the OS disk fails certification (both profiles), and images fail it with swap
    that appears at first boot (research §5): fstab lines go (the rest of fstab stays byte for
    byte), with the swap files they name, ``.swap`` units in /etc, and
    ResourceDisk.EnableSwap=y. A partition or cloud-init's YAML is noted, not changed."""
    edits = _Edits(root, "swap")
    try:
        sources = read_swap(edits.target).sources
    except InputError as exc:
        edits.note(f"the swap configuration cannot be read: {exc}")
        sources = []
    fstab_lines: set[int] = set()
    removals: dict[str, str] = {}
    for source in sources:
        if source.kind in ("fstab-file", "fstab-partition"):
            fstab_lines.add(source.line or 0)
        if source.kind == "fstab-partition":
            edits.note(f"a swap partition exists ({source.what}, {FSTAB} line {source.line}): "
                       "removing a partition is not done; see remediation (its fstab line is "
                       "removed)")
        elif source.kind in ("fstab-file", "systemd-unit") and source.what.startswith("/") \
                and not source.what.startswith("/dev/"):
            removals.setdefault(source.what, f"a swap file ({source.description})")
        if source.kind == "systemd-unit":
            name = posixpath.basename(source.path)
            for path in [source.path, *root.glob(f"{UNIT_ETC}/*.wants/{name}"),
                         *root.glob(f"{UNIT_ETC}/*.requires/{name}")]:
                removals.setdefault(path, f"swap unit {name}")
        elif source.kind == "cloud-init":
            edits.note(f"cloud-init makes swap ({source.description}; {source.path} line "
                       f"{source.line}): remove that setting (YAML is not edited)")
        elif source.kind == "waagent":
            _agent_swap_off(edits, source.line or 0)
    found = edits.open(FSTAB) if fstab_lines else None
    if found is not None:
        lines = found.text.split("\n")
        kept = [ln for i, ln in enumerate(lines, start=1) if i not in fstab_lines]
        edits.set(FSTAB, "\n".join(kept), f"swap on line(s) "
                  f"{', '.join(map(str, sorted(fstab_lines)))}")
    for path, reason in list(removals.items()):
        entry = root.entry(path)
        if entry is None or entry.kind not in ("file", "link"):
            del removals[path]
        elif reason.startswith("a swap file") and not _is_swap_file(edits.target, path):
            del removals[path]
            edits.note(f"{path} is named as swap but holds no swap signature: kept")
    yield from edits.steps()
    for path, reason in removals.items():
        yield Action("swap", "remove", path, reason)




def _is_swap_file(target: Target, path: str) -> bool:
    """Whether the file holds mkswap's signature: a line in fstab is no reason to delete a file
    that is not swap (a mistyped or hostile fstab naming /etc/shadow)."""
    try:
        head = target.read_bytes(path, limit=max(SWAP_PAGES))
    except OSError:
        return False
    return is_swap_area(head)


def _agent_swap_off(edits: _Edits, line: int) -> None:
    """ResourceDisk.EnableSwap=n where the agent reads it: the check fails any agent swap."""
    found = edits.open(WAAGENT_CONF)
    if found is None or line <= 0:
        return
    lines = edits.text(WAAGENT_CONF).split("\n")
    _set_line(lines, line - 1, "ResourceDisk.EnableSwap=n")
    edits.set(WAAGENT_CONF, "\n".join(lines), "ResourceDisk.EnableSwap=y makes swap")


# --- NetworkManager ---------------------------------------------------------------------------

#: NetworkManager's units and aliases: ``systemctl disable NetworkManager`` removes their links
#: (its ``Also=``); wait-online left enabled would start NetworkManager again (Requires=).
NM_UNITS = ("NetworkManager.service", "NetworkManager-wait-online.service",
            "NetworkManager-dispatcher.service", "dbus-org.freedesktop.NetworkManager.service",
            "dbus-org.freedesktop.nm-dispatcher.service")


def _nm_verdict(target: Target, profile: Profile) -> tuple[str, str]:
    """What LINUX-NETWORKMANAGER-DISABLED wants here: ("", why it passes), ("disable", ...),
    or ("uninstall", ...)."""
    if read_packages(target).first("NetworkManager", "network-manager") is None \
            and not networkmanager_installed(target):
        return "", "not installed"
    osr = read_os_release(target)
    distro, major = (osr.distro, osr.major) if osr else ("other", None)
    rhel = major if distro == "rhel" else None
    if profile.thresholds.get("networkmanager_rule", "guide") == "lisa" and rhel:
        if rhel >= 7:
            return "", "the RHEL family's own stack from 7 on"
        return "uninstall", f"LISA wants NetworkManager not installed below RHEL 7 ({rhel})"
    if rhel == 7:
        return "", "CentOS 7 and derivatives keep it"
    state = service_state(target, "NetworkManager.service")
    if state.enabled and not state.masked:
        return "disable", state.evidence
    return "", "not enabled"


def _other_stack_brings_eth0_up(target: Target) -> bool:
    """Whether a network stack other than NetworkManager starts at boot and brings eth0 up:
    without one, disabling NetworkManager leaves the VM offline."""
    osr = read_os_release(target)
    stacks = [s for s in network_stacks(target, osr.distro if osr else "other")
              if "NetworkManager" not in s.name]
    stack = managing_stack(stacks)
    config = stack.primary() if stack is not None else None
    return config is not None and config.at_boot


def _nm_links(root: WritableRoot, target: Target) -> list[str]:
    """The links in /etc that start NetworkManager: wants/requires links and aliases."""
    found = []
    for path in [*root.glob(f"{UNIT_ETC}/*.wants/*"), *root.glob(f"{UNIT_ETC}/*.requires/*"),
                 *root.glob(f"{UNIT_ETC}/*")]:
        entry = root.entry(path)
        name = posixpath.basename(path)
        in_etc = posixpath.dirname(path) == UNIT_ETC
        if entry is not None and entry.kind == "file" and not in_etc and name in NM_UNITS:
            found.append(path)  # a copy in a .wants directory starts it as a link does
        if entry is None or entry.kind != "link":
            continue
        try:
            to = target.readlink(path)
        except OSError:
            continue
        points = posixpath.basename(to)
        if to == "/dev/null" or (in_etc and name in NM_UNITS[:3]):
            continue  # a mask, or the unit itself linked in (systemctl link): kept
        if name in NM_UNITS or points in NM_UNITS:
            found.append(path)
    found += root.glob("/etc/rc[2345].d/S[0-9][0-9]NetworkManager")  # SysV (RHEL 6)
    return found


@operation("networkmanager", "Disable NetworkManager where the profile wants it off",
           fixes=("LINUX-NETWORKMANAGER-DISABLED",))
def networkmanager(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """The 2015 agent restarted networking with ifup/ifdown, which NetworkManager fights; the
    rule exempts CentOS 7 (and azure-current the whole RHEL family from 7 on), so this plans
    from the rule's own verdict. It disables as ``systemctl disable`` does, by removing links,
    and never the only stack that brings eth0 up."""
    target = root.target()
    try:
        verdict, why = _nm_verdict(target, load_profile(options.profile))
        if verdict == "uninstall":
            yield Note("networkmanager", f"{why}: removing a package is not done; see "
                                         "remediation")
            return
        if verdict != "disable":
            return
        if not _other_stack_brings_eth0_up(target):
            yield Note("networkmanager", "NetworkManager is enabled and no other network stack "
                                         "brings eth0 up at boot: not disabled (the VM would "
                                         "stay offline); configure the distribution's own stack "
                                         "first, see remediation")
            return
        links = _nm_links(root, target)
        vendor = [f"{d}/{n}" for base in VENDOR_DIRS for d in target.glob(f"{base}/*.wants")
                  for n in target.iterdir(d) if n in NM_UNITS]
    except (InputError, OSError) as exc:
        yield Note("networkmanager", f"cannot tell how NetworkManager starts: {exc}")
        return
    for path in links:
        yield Action("networkmanager", "remove", path, "starts NetworkManager at boot")
    if vendor:
        yield Note("networkmanager", f"{vendor[0]} enables NetworkManager from the "
                                     "distribution's own directory: mask it (systemctl mask "
                                     "NetworkManager); vmimage makes no links")


# --- NIC configurations pinned to a MAC address ----------------------------------------------

IFCFG_GLOBS = ("/etc/sysconfig/network-scripts/ifcfg-*", "/etc/sysconfig/network/ifcfg-*")
#: HWADDR binds an ifcfg file to a NIC (RHEL); MACADDR and SUSE's LLADDR set the NIC's address:
#: either way the builder's MAC, which no Azure VM has.
PINNING_KEYS = ("HWADDR", "MACADDR", "LLADDR")
_LONE_PIN = re.compile(rf"[ \t]*(export[ \t]+)?({'|'.join(PINNING_KEYS)})=\S*[ \t\r]*")
_KEYFILE_SECTIONS = ("[ethernet]", "[802-3-ethernet]")


def _ifcfg_unpinned(edits: _Edits, path: str) -> None:
    found = edits.open(path)
    if found is None:
        return
    try:
        pinned = {a.line for a in assignments(found.text, expand=False, source=path)
                  if a.name in PINNING_KEYS}
    except InputError as exc:
        edits.note(f"{path}: {exc}: not changed")
        return
    lines = found.text.split("\n")
    lone = {n for n in pinned if _LONE_PIN.fullmatch(lines[n - 1])}
    for number in sorted(pinned - lone):
        edits.note(f"{path} line {number} sets a MAC address among other words: not changed")
    if lone:
        kept = [ln for i, ln in enumerate(lines, start=1) if i not in lone]
        names = sorted({lines[n - 1].split("=")[0].split()[-1] for n in lone})
        edits.set(path, "\n".join(kept), f"pinned to the builder's MAC ({', '.join(names)})")


def _keyfile_unpinned(edits: _Edits, path: str) -> None:
    found = edits.open(path)
    if found is None:
        return
    lines = found.text.split("\n")
    section, pinned = "", []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section in _KEYFILE_SECTIONS and line.partition("=")[0].strip() == "mac-address":
            pinned.append(i)
    if pinned:
        kept = [ln for i, ln in enumerate(lines) if i not in pinned]
        edits.set(path, "\n".join(kept), "pinned to the builder's MAC (mac-address)")


@operation("net-hwaddr", "Remove MAC addresses pinned in NIC configurations (HWADDR, "
           "mac-address)", fixes=("LINUX-DHCP",))
def net_hwaddr(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """A configuration bound to the builder's MAC matches no NIC of a new VM: eth0 stays down
    (virt-sysprep's net-hwaddr; LINUX-DHCP finds no configuration for eth0). Only the lines
    that pin go; NetworkManager keyfiles keep their mode."""
    edits = _Edits(root, "net-hwaddr")
    for path in _glob(edits.target, IFCFG_GLOBS):
        _ifcfg_unpinned(edits, path)
    for path in nm_connection_files(edits.target):
        if path.startswith("/etc/"):
            _keyfile_unpinned(edits, path)
    yield from edits.steps()
