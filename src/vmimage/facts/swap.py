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

import re
from dataclasses import dataclass

from vmimage.facts.fstab import parse_fstab
from vmimage.facts.waagent import read_waagent_conf
from vmimage.targets.base import Target

FSTAB = "/etc/fstab"
UNIT_DIR = "/etc/systemd/system"
CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d/*.cfg"
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


def _scalar(raw: str) -> str:
    """A YAML plain or quoted scalar, with a trailing `` #`` comment removed."""
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        close = raw.find(raw[0], 1)
        return raw[1:close] if close > 0 else raw[1:]
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def _uncomment(raw: str) -> str:
    """The line without a YAML comment (``#`` after a space, outside quotes)."""
    quote = ""
    for k, c in enumerate(raw):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (k == 0 or raw[k - 1] in " \t"):
            return raw[:k].rstrip()
    return raw.rstrip()


def _flow_items(raw: str) -> list[str]:
    """The items of a one-line YAML flow sequence or mapping (``[a, "b"]``, ``{k: v}``)."""
    inner = raw.strip()[1:-1]
    items, current, quote = [], "", ""
    for c in inner:
        if quote:
            current += c
            quote = "" if c == quote else quote
        elif c in "'\"":
            current += c
            quote = c
        elif c == ",":
            items.append(current)
            current = ""
        else:
            current += c
    if current.strip():
        items.append(current)
    return [_scalar(i) for i in items]


def _top_level(text: str, key: str) -> tuple[int, str, list[tuple[int, str]]] | None:
    """A top-level key's line, inline value and indented block (a YAML subset, enough here)."""
    lines = text.splitlines()
    for k, raw in enumerate(lines):
        match = re.match(rf"{re.escape(key)}\s*:(.*)$", raw)
        if not match:
            continue
        block = []
        for j in range(k + 1, len(lines)):
            nxt = lines[j]
            if nxt.strip() and not nxt[0].isspace() and not nxt.startswith(("#", "-")):
                break
            if _uncomment(nxt).strip():
                block.append((j + 1, _uncomment(nxt)))
        return k + 1, _uncomment(match.group(1)).strip(), block
    return None


def _swap_mapping(text: str) -> tuple[int, dict[str, str]] | None:
    found = _top_level(text, "swap")
    if found is None:
        return None
    line, inline, block = found
    values: dict[str, str] = {}
    inline = _scalar(inline) if not inline.startswith("{") else inline
    if inline.startswith("{") and inline.endswith("}"):
        for item in _flow_items(inline):
            name, _, value = item.partition(":")
            values[name.strip()] = _scalar(value)
    for _, raw in block:
        name, sep, value = raw.strip().partition(":")
        if sep:
            values[name.strip()] = _scalar(value)
    return line, values


def _mounts(text: str) -> tuple[int, list[tuple[int, list[str]]]] | None:
    found = _top_level(text, "mounts")
    if found is None:
        return None
    line, inline, block = found
    entries: list[tuple[int, list[str]]] = []
    if inline.startswith("[") and inline.endswith("]"):
        for part in re.findall(r"\[[^\[\]]*\]", inline[1:-1]):
            entries.append((line, _flow_items(part)))
    for number, raw in block:
        item = raw.strip()
        if item.startswith("-"):
            rest = item[1:].strip()
            if rest.startswith("[") and rest.endswith("]"):
                entries.append((number, _flow_items(rest)))
    return line, entries


def _cloud_init(target: Target) -> list[SwapSource]:
    """cloud-init's merged config: later files in cloud.cfg.d win, ``swap`` merges per key."""
    swap: dict[str, tuple[str, str, int]] = {}
    mounts: tuple[str, list[tuple[int, list[str]]]] | None = None
    for path in [CLOUD_CFG, *target.glob(CLOUD_CFG_D)]:
        text = _read(target, path)
        if text is None:
            continue
        mapping = _swap_mapping(text)
        if mapping is not None:
            line, values = mapping
            swap.update({k: (v, path, line) for k, v in values.items()})
        found = _mounts(text)
        if found is not None:
            mounts = (path, found[1])
    out = []
    size = swap.get("size", ("0", "", 0))
    if size[0] not in ("", "0", "null", "~", "None"):
        filename = swap.get("filename", ("/swap.img", "", 0))[0]
        out.append(SwapSource("cloud-init", f"cloud-init swap: filename={filename} "
                                            f"size={size[0]}", size[1], size[2], filename))
    if mounts is not None:
        path, entries = mounts
        for line, fields in entries:
            if len(fields) >= 3 and fields[2] == "swap" and fields[0] != "swap" \
                    and fields[1] not in ("null", "~", ""):
                out.append(SwapSource("cloud-init", f"cloud-init mounts: {fields[0]} as swap",
                                      path, line, fields[0]))
    return out


def _waagent(target: Target) -> list[SwapSource]:
    conf = read_waagent_conf(target)
    setting = conf.get("ResourceDisk.EnableSwap")
    if conf.path is None or setting is None or not conf.flag("ResourceDisk.EnableSwap", False):
        return []
    size = conf.get("ResourceDisk.SwapSizeMB")
    detail = f" SwapSizeMB={size.value}" if size else ""
    return [SwapSource("waagent", f"ResourceDisk.EnableSwap={setting.value}{detail}",
                       conf.path, setting.line, "resource disk")]


def swap_sources(target: Target) -> list[SwapSource]:
    """Every configured swap source: fstab, systemd units, cloud-init, the Azure agent."""
    return _fstab(target) + _systemd_units(target) + _cloud_init(target) + _waagent(target)
