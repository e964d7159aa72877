"""Everything in the image that would turn swap on at boot, other than a swap partition itself.

No swap on the OS disk is a blocking rule (Microsoft 41, LISA, LNX-SWAP), and images fail it
with swap that appears only at first boot: a swap file in fstab, a systemd ``.swap`` unit,
cloud-init's ``swap``/``mounts`` modules, or the agent's ``ResourceDisk.EnableSwap``
(certification-research.md §5). Offline these are found from their configuration, never by
scanning every file for a swap signature (rulings). Swap partitions are found by the disk
layer from their signature; fstab swap entries naming a device are listed here too, so a check
can say where the partition is activated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vmimage.errors import InputError
from vmimage.facts.waagent import read_waagent_conf
from vmimage.targets.base import Target, UnreadableError
from vmimage.targets.fstab import parse_fstab

if TYPE_CHECKING:  # PyYAML loads only when a YAML file is read
    from vmimage.yamlcompat import Document

FSTAB = "/etc/fstab"
UNIT_DIR = "/etc/systemd/system"
CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d"
_DEVICE_SPECS = ("UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=", "ID=", "/dev/")


@dataclass(frozen=True, slots=True)
class SwapSource:
    """One thing that would create or enable swap, and the file and line that say so."""

    kind: str  # "fstab-file" | "fstab-partition" | "systemd-unit" | "cloud-init" | "waagent"
    description: str
    path: str
    line: int | None
    what: str = ""  # the swap file or device, where the configuration names one
    active: bool = True  # False: present but not started at boot (noauto, unit not enabled)


def _read(target: Target, path: str) -> str | None:
    try:
        return target.read_text(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _fstab(target: Target) -> list[SwapSource]:
    text = _read(target, FSTAB)
    found = []
    for entry in parse_fstab(text or ""):
        if not entry.is_swap:
            continue
        device = entry.spec.startswith(_DEVICE_SPECS)
        kind = "fstab-partition" if device else "fstab-file"
        noauto = "noauto" in entry.options
        what = "swap partition" if device else "swap file"
        found.append(SwapSource(kind, f"{what} {entry.spec}" + (" (noauto)" if noauto else ""),
                                FSTAB, entry.line, entry.spec, not noauto))
    return found


def _unit_what(text: str) -> tuple[str, int | None]:
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Swap]" and line.startswith("What="):
            return line[5:].strip(), number
    return "", None


def _systemd_units(target: Target) -> list[SwapSource]:
    """``.swap`` units in /etc/systemd/system and the ones enabled through a ``.wants`` link."""
    wanted = {p.rsplit("/", 1)[-1] for p in target.glob(f"{UNIT_DIR}/*.wants/*.swap")}
    wanted |= {p.rsplit("/", 1)[-1] for p in target.glob(f"{UNIT_DIR}/*.requires/*.swap")}
    paths = target.glob(f"{UNIT_DIR}/*.swap")
    names = {p.rsplit("/", 1)[-1] for p in paths}
    paths += [p for p in target.glob(f"{UNIT_DIR}/*.wants/*.swap")
              + target.glob(f"{UNIT_DIR}/*.requires/*.swap")
              if p.rsplit("/", 1)[-1] not in names]
    found = []
    for path in paths:
        text = _read(target, path)
        if text is None:
            continue  # masked (-> /dev/null, which the image may not have) or dangling
        what, line = _unit_what(text)
        name = path.rsplit("/", 1)[-1]
        enabled = name in wanted
        state = "enabled" if enabled else "not enabled"
        found.append(SwapSource("systemd-unit", f"swap unit {name} What={what} ({state})", path,
                                line, what, enabled))
    return found


# --- cloud-init -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudConfig:
    """cloud-init's configuration files in the image, as cloud-init loads and merges them.

    ``files`` are in precedence order, highest first: ``cloud.cfg.d/*.cfg`` from the last name
    to the first, then ``cloud.cfg`` (``util.read_conf_with_confd``). ``notes`` name the files
    that could not be used and why; cloud-init ignores such a file too (``load_yaml`` gives an
    empty configuration for it).
    """

    files: list[tuple[str, Document]]
    notes: list[str]

    @property
    def merged(self) -> dict[str, Any]:
        """The merged configuration: per key the higher file wins, and two mappings merge key
        by key (cloud-init's default mergers, ``dict()+list()+str()``; ``merge_how`` is not
        read)."""
        merged: dict[str, Any] = {}
        for _, document in self.files:
            merged = _merge(merged, document.data)
        return merged

    def where(self, *path: str) -> tuple[str, int | None]:
        """The file, and the line in it, whose value at the nested ``path`` of keys wins."""
        for name, document in self.files:
            value: Any = document.data
            for key in path:
                value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            if value is not _MISSING:
                return name, document.line_of(*path)
        return "", None


_MISSING = object()


def _merge(high: Any, low: Any) -> Any:  # noqa: ANN401 - YAML data has any shape
    """``low`` merged under ``high``: two mappings merge key by key, else ``high`` stands."""
    if not isinstance(high, dict) or not isinstance(low, dict):
        return high
    out = dict(high)
    for key, value in low.items():
        out[key] = _merge(out[key], value) if key in out else value
    return out


def read_cloud_config(target: Target) -> CloudConfig:
    """Load ``cloud.cfg`` and every regular ``cloud.cfg.d/*.cfg`` file (dot files too: cloud-init
    lists the directory itself), each with PyYAML's safe loader as cloud-init does."""
    from vmimage.yamlcompat import MAX_BYTES, safe_load

    try:
        names = [n for n in target.iterdir(CLOUD_CFG_D) if n.endswith(".cfg")]
    except OSError:
        names = []
    files: list[tuple[str, Document]] = []
    notes: list[str] = []
    for path in [f"{CLOUD_CFG_D}/{n}" for n in reversed(names)] + [CLOUD_CFG]:
        try:
            if not target.stat(path).is_file:
                continue
            content = target.read_bytes(path, limit=MAX_BYTES + 1)
        except UnreadableError as exc:  # a loop, a FIFO, too large: cloud-init cannot use it
            notes.append(f"{exc}; cloud-init cannot read this file")
            continue
        except OSError:
            continue  # absent or a dangling link: cloud-init skips it as well
        try:
            document = safe_load(content, path)
        except InputError as exc:
            notes.append(f"{exc}; cloud-init ignores this file")
            continue
        if document.data is not None and not isinstance(document.data, dict):
            notes.append(f"{path}: not a mapping; cloud-init ignores this file")
            continue
        files.append((path, document))
    return CloudConfig(files, notes)


def _human2bytes(size: str) -> int | None:
    """cloud-init's ``util.human2bytes``: ``2G``, ``512MB``, ``1.5T``; None where it raises."""
    text = size.removesuffix("B")
    number, multiplier = text, 1
    for suffix, value in _MULTIPLIERS.items():
        if text.endswith(suffix):
            number, multiplier = text[:-1], value
    try:
        parsed = float(number)
        return int(parsed * multiplier) if parsed >= 0 else None
    except (ValueError, OverflowError):
        return None


_MULTIPLIERS = {"B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _makes_swap_file(size: Any) -> bool:  # noqa: ANN401 - YAML data has any shape
    """Whether ``cc_mounts`` makes a swap file of ``size``: ``auto``, or a number of bytes that
    is at least 1 MiB (``setup_swapfile`` allocates whole MiB; ``0``, ``no``, ``null`` and
    anything it cannot convert make none)."""
    if size == "auto":
        return True
    if isinstance(size, str):
        size = _human2bytes(size)
    if isinstance(size, bool) or not isinstance(size, int | float):
        return False
    try:
        return int(size / 2**20) >= 1
    except (ValueError, OverflowError):  # nan, inf
        return False


def _cloud_swap(config: CloudConfig, merged: dict[str, Any], notes: list[str]) -> list[SwapSource]:
    """The swap file of the ``swap`` mapping (``cc_mounts.handle_swapcfg``)."""
    swap = merged.get("swap")
    if swap is None:
        return []
    if not isinstance(swap, dict):
        notes.append(f"{config.where('swap')[0]}: swap is not a mapping; cloud-init ignores it")
        return []
    size, filename = swap.get("size", 0), swap.get("filename", "/swap.img")
    if not filename or not _makes_swap_file(size):
        return []
    path, line = config.where("swap", "size")
    return [SwapSource("cloud-init", f"cloud-init swap: filename={filename} size={size}",
                       path, line, str(filename))]


def _cloud_mounts(config: CloudConfig, merged: dict[str, Any]) -> list[SwapSource]:
    """Swap devices in ``mounts`` as ``cc_mounts`` reads it: entries are lists whose fields
    become strings (a null stays null, and the type defaults to ``auto``); an entry whose mount
    point is null drops every entry of its device; ``swap`` is the datasource's own swap
    device, which Azure's datasource does not name."""
    mounts = merged.get("mounts")
    if not isinstance(mounts, list):
        return []
    path, _ = config.where("mounts")
    document = dict(config.files)[path]
    entries: list[tuple[int, str, str | None, str | None]] = []  # index, device, point, type
    for index, entry in enumerate(mounts):
        if not isinstance(entry, list) or not entry:
            continue
        point, kind = [None if f is None else str(f) for f in [*entry[1:3], None, None][:2]]
        if point is None:
            entries = [e for e in entries if e[1] != str(entry[0])]
        entries.append((index, str(entry[0]), point, kind))
    found = []
    for index, spec, point, kind in entries:
        if kind == "swap" and spec != "swap" and point is not None:
            found.append(SwapSource("cloud-init", f"cloud-init mounts: {spec} as swap", path,
                                    document.line_of("mounts", index), spec))
    return found


def _cloud_init(target: Target, notes: list[str]) -> list[SwapSource]:
    """The swap cloud-init's ``mounts`` module would make from the image's configuration
    (what a datasource adds at deployment is unknown offline)."""
    config = read_cloud_config(target)
    notes += config.notes
    merged = config.merged
    return _cloud_swap(config, merged, notes) + _cloud_mounts(config, merged)


def _waagent(target: Target) -> list[SwapSource]:
    conf = read_waagent_conf(target)
    setting = conf.get("ResourceDisk.EnableSwap")
    if conf.path is None or setting is None or not conf.flag("ResourceDisk.EnableSwap", False):
        return []
    size = conf.get("ResourceDisk.SwapSizeMB")
    detail = f" SwapSizeMB={size.value}" if size else ""
    return [SwapSource("waagent", f"ResourceDisk.EnableSwap={setting.value}{detail}",
                       conf.path, setting.line, "resource disk")]


@dataclass(frozen=True)
class SwapFacts:
    """The swap sources, and what could not be read while looking for them (a configuration
    file that does not parse): a check can show these as the limits of what it judged."""

    sources: list[SwapSource]
    notes: list[str]


def read_swap(target: Target) -> SwapFacts:
    """Every configured swap source, and the notes on files that could not be used."""
    notes: list[str] = []
    sources = (_fstab(target) + _systemd_units(target) + _cloud_init(target, notes)
               + _waagent(target))
    return SwapFacts(sources, notes)


def swap_sources(target: Target) -> list[SwapSource]:
    """Every configured swap source: fstab, systemd units, cloud-init, the Azure agent."""
    return read_swap(target).sources
