"""The kernel command lines the image boots with, read from the boot loader's configuration.

``console=ttyS0`` and ``earlyprintk=ttyS0`` are certification tests (Microsoft 40, LISA), read
live from ``/proc/cmdline``. Offline, what boots is the boot loader's menu (rulings): GRUB's
``grub.cfg``, the BLS snippets in ``/boot/loader/entries`` that ``blscfg`` turns into menu
entries (with ``$kernelopts`` from ``grubenv`` on RHEL 8), or extlinux. Only when no boot entry
exists anywhere are ``/etc/default/grub`` and its ``grub.d`` drop-ins used: they are what the
next ``update-grub`` would write, with ``GRUB_CMDLINE_LINUX_DEFAULT`` on normal entries only.
The default entry comes first, so a check can look at what boots when nobody picks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cmp_to_key

from vmimage.facts import _grub, _shell
from vmimage.facts._includes import read_config
from vmimage.facts.versions import rpmvercmp
from vmimage.targets.base import Target

GRUB_CFGS = ("/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/boot/efi/EFI/*/grub.cfg")
GRUBENVS = ("/boot/grub2/grubenv", "/boot/grub/grubenv", "/boot/efi/EFI/*/grubenv")
BLS_DIR = "/boot/loader/entries"
EXTLINUX = ("/boot/extlinux/extlinux.conf", "/boot/extlinux.conf", "/extlinux.conf",
            "/boot/syslinux/syslinux.cfg", "/boot/syslinux.cfg")
DEFAULT_GRUB = "/etc/default/grub"
#: The serial console the portal shows, as (parameter, value) (LINUX-KERNEL-CMDLINE).
REQUIRED_CONSOLES = (("console", "ttyS0"), ("earlyprintk", "ttyS0"))
#: LINUX-KERNEL-CMDLINE-FORBIDDEN: LISA's verify_grub refuses them (they break Azure's disks).
FORBIDDEN_ARGS = ("libata.atapi_enabled=0", "reserve=0x1f0,0x8")
DEFAULT_GRUB_D = "/etc/default/grub.d/*.cfg"
_RECOVERY_ARGS = ("single", "recovery", "emergency", "systemd.unit=rescue.target",
                  "systemd.unit=emergency.target")


@dataclass(frozen=True, slots=True)
class KernelCmdline:
    """The arguments one boot entry passes to the kernel (the kernel image itself excluded)."""

    args: tuple[str, ...]
    path: str
    line: int
    source: str  # "grub.cfg" | "bls" | "extlinux" | "grubenv" | "default-grub"
    title: str
    recovery: bool
    kernel: str = ""
    default: bool = False  # the entry the boot loader starts when nobody chooses

    def values(self, name: str) -> tuple[str, ...]:
        """Every value given to ``name=`` (``console`` may appear several times), in order."""
        prefix = name + "="
        return tuple(a[len(prefix):] for a in self.args if a.startswith(prefix))

    def value(self, name: str) -> str | None:
        """The last value of ``name=``: the one the kernel keeps (its console, for console=)."""
        found = self.values(name)
        return found[-1] if found else None

    def has(self, name: str) -> bool:
        """Whether ``name`` is given, bare or with a value."""
        return any(a == name or a.startswith(name + "=") for a in self.args)

    @property
    def text(self) -> str:
        """The arguments as one line, for evidence."""
        return " ".join(self.args)


def _read(target: Target, path: str) -> str | None:
    """The file's text, None when absent; unreadable content raises the typed error."""
    return read_config(target, path)


def _expand(patterns: tuple[str, ...], target: Target) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        found = target.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
        out += [p for p in found if p not in out]
    return out


def _is_recovery(title: str, args: tuple[str, ...]) -> bool:
    lowered = title.lower()
    return ("recovery" in lowered or "rescue" in lowered
            or any(a in _RECOVERY_ARGS for a in args))


def read_grubenv(target: Target) -> tuple[str | None, dict[str, str]]:
    """The first grubenv found and its variables (``saved_entry``, ``kernelopts``...)."""
    for path in _expand(GRUBENVS, target):
        text = _read(target, path)
        if text is not None:
            return path, _grub.parse_grubenv(text)
    return None, {}


# --- grub.cfg ---------------------------------------------------------------------------------


def _pick(entries: list[_grub.MenuEntry], spec: str) -> list[int] | None:
    """The index path grub's ``default`` names: a number, a title, an id, or ``a>b``."""
    path: list[int] = []
    level = entries
    for part in spec.split(">"):
        part = part.strip()
        number = part.isascii() and part.isdigit() and len(part) < 10  # int() of 5000 digits
        index = int(part) if number else next(
            (k for k, e in enumerate(level) if part in (e.title, e.entry_id)), None)
        if index is None or index >= len(level):
            return None
        path.append(index)
        level = level[index].children
    return path


def _flatten(entries: list[_grub.MenuEntry]) -> list[tuple[tuple[int, ...], _grub.MenuEntry]]:
    """Every entry with its index path, depth first, without recursion (a hostile menu may
    nest submenus as deep as the reader allows)."""
    out: list[tuple[tuple[int, ...], _grub.MenuEntry]] = []
    pending: list[tuple[tuple[int, ...], _grub.MenuEntry]] = [
        ((k,), e) for k, e in reversed(list(enumerate(entries)))]
    while pending:
        key, entry = pending.pop()
        out.append((key, entry))
        pending += [((*key, k), e) for k, e in reversed(list(enumerate(entry.children)))]
    return out


def _grub_cfg(path: str, text: str,
              grubenv: dict[str, str]) -> tuple[list[KernelCmdline], _grub.Script]:
    env = {**_grub.FEATURES, **grubenv}
    script = _grub.run(text, env, path)
    chosen = _pick(script.entries, script.env.get("default", "0") or "0") or [0]
    flat = _flatten(script.entries)
    kinds = {key: entry.kind for key, entry in flat}
    default_key = tuple(chosen)
    # a default naming a submenu boots the submenu's first entry
    while kinds.get(default_key) == "submenu":
        default_key = (*default_key, 0)
    found: list[KernelCmdline] = []
    for key, entry in flat:
        for linux in entry.linux:
            found.append(KernelCmdline(linux.args, path, linux.line, "grub.cfg", entry.title,
                                       _is_recovery(entry.title, linux.args), linux.kernel,
                                       key == default_key))
    return found, script


# --- BLS --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BlsEntry:
    path: str
    entry_id: str
    title: str
    version: str
    kernel: str
    options: str
    line: int


def _bls_entries(target: Target) -> list[_BlsEntry]:
    entries = []
    for path in target.glob(f"{BLS_DIR}/*.conf"):
        text = _read(target, path)
        if text is None:
            continue
        fields: dict[str, str] = {}
        options: list[str] = []
        line = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            key, _, value = raw.strip().partition(" ")
            if not key or key.startswith("#"):
                continue
            if key == "options":
                options.append(value.strip())
                line = line or number
            else:
                fields.setdefault(key, value.strip())
        entry_id = path.rsplit("/", 1)[-1][: -len(".conf")]
        entries.append(_BlsEntry(path, entry_id, fields.get("title", entry_id),
                                 fields.get("version", ""), fields.get("linux", ""),
                                 " ".join(options), line))
    # grub's blscfg and systemd-boot list the newest kernel first, in rpm's version order
    entries.sort(key=cmp_to_key(lambda a, b: rpmvercmp(b.entry_id, a.entry_id)))
    return entries


def _bls(target: Target, env: dict[str, str], choose_default: bool) -> list[KernelCmdline]:
    """BLS snippets, ``$variables`` in ``options`` expanded from grubenv and grub.cfg."""
    entries = _bls_entries(target)
    saved = env.get("saved_entry", "")
    default = next((e for e in entries if saved in (e.entry_id, e.title)), None) if saved else None
    default = (default or (entries[0] if entries else None)) if choose_default else None
    found = []
    for entry in entries:
        words = _grub.Lexer(f"x {entry.options}\n", dict(env), entry.path)
        expanded = next(iter(words.commands()), _grub.Command(["x"], 1)).words[1:]
        args = tuple(expanded)
        found.append(KernelCmdline(args, entry.path, entry.line, "bls", entry.title,
                                   _is_recovery(entry.title, args) or "-rescue" in entry.entry_id,
                                   entry.kernel, entry is default))
    return found


# --- extlinux ---------------------------------------------------------------------------------


def _extlinux(target: Target) -> list[KernelCmdline]:
    for path in EXTLINUX:
        text = _read(target, path)
        if text is None:
            continue
        default = ""
        labels: list[dict[str, str]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            key, _, value = raw.strip().partition(" ")
            key, value = key.lower(), value.strip()
            if key == "default":
                default = value
            elif key == "label":
                labels.append({"label": value, "title": value})
            elif labels and key in ("kernel", "linux"):
                labels[-1]["kernel"] = value
            elif labels and key == "append":
                labels[-1]["append"], labels[-1]["line"] = value, str(number)
            elif labels and key == "menu" and value.lower().startswith("label "):
                labels[-1]["title"] = value[6:].strip()
        found = []
        for entry in labels:
            args = tuple(entry.get("append", "").split())
            found.append(KernelCmdline(args, path, int(entry.get("line", "0")), "extlinux",
                                       entry["title"], _is_recovery(entry["title"], args),
                                       entry.get("kernel", ""), entry["label"] == default))
        if found and not any(c.default for c in found):
            found[0] = replace(found[0], default=True)
        return found
    return []


# --- /etc/default/grub ------------------------------------------------------------------------


def _default_grub(target: Target) -> list[KernelCmdline]:
    """What update-grub would write: grub-mkconfig sources the file, then grub.d/*.cfg."""
    env: dict[str, str] = {}
    last: dict[str, tuple[str, int]] = {}
    files = [DEFAULT_GRUB, *target.glob(DEFAULT_GRUB_D)]
    read_any = False
    for path in files:
        text = _read(target, path)
        if text is None:
            continue
        read_any = True
        for assignment in _shell.assignments(text, env, source=path):
            last[assignment.name] = (path, assignment.line)
    if not read_any:
        return []
    linux = tuple(env.get("GRUB_CMDLINE_LINUX", "").split())
    normal = linux + tuple(env.get("GRUB_CMDLINE_LINUX_DEFAULT", "").split())
    where_normal = last.get("GRUB_CMDLINE_LINUX_DEFAULT") or last.get("GRUB_CMDLINE_LINUX")
    where_linux = last.get("GRUB_CMDLINE_LINUX")
    path, line = where_normal or (DEFAULT_GRUB, 0)
    found = [KernelCmdline(normal, path, line, "default-grub", "normal entries (/etc/default/grub)",
                           False, default=True)]
    if env.get("GRUB_DISABLE_RECOVERY", "") != "true":
        path, line = where_linux or (DEFAULT_GRUB, 0)
        found.append(KernelCmdline((*linux, "single"), path, line, "default-grub",
                                   "recovery entries (/etc/default/grub)", True))
    return found


# --- all --------------------------------------------------------------------------------------


def read_kernel_cmdlines(target: Target) -> list[KernelCmdline]:
    """Every kernel command line the boot configuration holds, the default entry first."""
    grubenv_path, grubenv = read_grubenv(target)
    found: list[KernelCmdline] = []
    env = dict(grubenv)
    seen: set[str] = set()
    for path in _expand(GRUB_CFGS, target):
        text = _read(target, path)
        if text is None or text in seen:
            continue  # a symlinked or copied grub.cfg is one menu
        seen.add(text)
        entries, script = _grub_cfg(path, text, grubenv)
        found += entries
        env.update(script.env)
    found += _bls(target, env, choose_default=not any(c.default for c in found))
    if not found:
        found = _extlinux(target)
    if not found and grubenv_path and "kernelopts" in grubenv:
        args = tuple(grubenv["kernelopts"].split())
        text = _read(target, grubenv_path) or ""
        line = next((n for n, raw in enumerate(text.split("\n"), start=1)
                     if raw.startswith("kernelopts=")), 0)
        found = [KernelCmdline(args, grubenv_path, line, "grubenv", "kernelopts", False,
                               default=True)]
    if not found:
        found = _default_grub(target)
    defaults = [c for c in found if c.default]
    return defaults + [c for c in found if not c.default]
