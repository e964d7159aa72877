"""Whether a service would start at boot, read from systemd's symlinks or SysV rc links.

"SSH server enabled", "agent installed and enabled" and "NetworkManager disabled" are rules,
and offline there is no ``systemctl is-enabled``. What it looks at is on disk: the unit file in
``/etc``, ``/lib`` or ``/usr/lib/systemd/system``; ``enable`` makes symlinks in a
``*.wants/`` or ``*.requires/`` directory and for each ``Alias=`` (Debian's ``sshd.service ->
ssh.service``); ``mask`` points the unit at ``/dev/null``. Units wanted from
``/usr/lib/systemd/system/*.wants`` start too (distribution-enabled, ``static``). Without any
unit, a SysV script in ``/etc/init.d`` started from an ``S??`` link in ``/etc/rc[2-5].d``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from vmimage.targets.base import Target

ETC = "/etc/systemd/system"
UNIT_DIRS = (ETC, "/lib/systemd/system", "/usr/lib/systemd/system")
VENDOR_DIRS = UNIT_DIRS[1:]


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What systemd (or SysV init) would do with the service at boot, and the file that says so."""

    unit: str
    installed: bool
    enabled: bool
    masked: bool
    evidence: str
    path: str | None = None  # the unit file or init script found


def _is_link(target: Target, path: str) -> bool:
    try:
        return target.stat(path, follow=False).is_symlink
    except OSError:
        return False


def _masked(target: Target, unit: str) -> str | None:
    path = f"{ETC}/{unit}"
    if _is_link(target, path) and target.readlink(path) == "/dev/null":
        return path
    return None


def _unit_file(target: Target, unit: str) -> str | None:
    """The unit's file (a template ``name@.service`` serves ``name@x.service``)."""
    names = [unit]
    template = re.sub(r"@[^.]+\.", "@.", unit)
    if template != unit:
        names.append(template)
    for name in names:
        for directory in UNIT_DIRS:
            path = f"{directory}/{name}"
            if _is_link(target, path) and target.readlink(path) == "/dev/null":
                continue
            if target.exists(path):
                return path
    return None


def unit_file_exists(target: Target, unit: str) -> bool:
    """Whether a unit file (or its mask) of ``unit`` is in one of systemd's directories: a
    unit without one is unknown to ``systemctl`` too, and need not be asked about."""
    return any(_is_link(target, f"{d}/{unit}") or target.exists(f"{d}/{unit}")
               for d in UNIT_DIRS)


def _real_name(target: Target, path: str) -> str:
    """An alias symlink's target name (``sshd.service`` -> ``ssh.service``)."""
    seen = 0
    while _is_link(target, path) and seen < 8:
        link = target.readlink(path)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        seen += 1
    return posixpath.basename(path)


def _dirs(target: Target, base: str) -> list[str]:
    return target.glob(f"{base}/*.wants") + target.glob(f"{base}/*.requires")


def _enablement(target: Target, names: set[str]) -> str | None:
    """A symlink that makes one of ``names`` start: wants/requires links, then aliases."""
    for directory in _dirs(target, ETC):
        for name in target.iterdir(directory):
            path = f"{directory}/{name}"
            if name in names or (_is_link(target, path) and _real_name(target, path) in names):
                return f"{path} -> {target.readlink(path)}" if _is_link(target, path) else path
    try:
        etc_names = target.iterdir(ETC)
    except (FileNotFoundError, NotADirectoryError):
        etc_names = []
    for name in etc_names:
        path = f"{ETC}/{name}"
        if name in names or not _is_link(target, path):
            continue
        if target.readlink(path) != "/dev/null" and _real_name(target, path) in names:
            return f"alias {path} -> {target.readlink(path)}"
    for base in VENDOR_DIRS:
        for directory in _dirs(target, base):
            for name in target.iterdir(directory):
                if name in names:
                    return f"{directory}/{name} (enabled by the distribution)"
    return None


def _systemd(target: Target, unit: str) -> ServiceState | None:
    path = _unit_file(target, unit)
    masked = _masked(target, unit)
    if path is None:
        if masked:
            return ServiceState(unit, False, False, True, f"{masked} -> /dev/null")
        return None
    # an instance (getty@tty1) is enabled by its own link only, not by its template's
    instance = re.search(r"@[^.]+\.", unit) is not None
    names = {unit} if instance else {unit, _real_name(target, path)}
    if masked:
        return ServiceState(unit, True, False, True, f"{masked} -> /dev/null (masked)", path)
    enabled = _enablement(target, names)
    if enabled:
        return ServiceState(unit, True, True, False, enabled, path)
    return ServiceState(unit, True, False, False,
                        f"{path}: no symlink in {ETC}/*.wants or *.requires", path)


#: The units of the SSH server and of the Azure Linux agent, by distribution.
SSH_UNITS = ("ssh.service", "sshd.service")
AGENT_UNITS = ("walinuxagent.service", "waagent.service")
#: Every unit a check asks ``systemctl is-enabled`` about: a live target asks them all in one
#: go (:func:`vmimage.facts.live.warm`).
ASKED_UNITS = (*SSH_UNITS, *AGENT_UNITS, "networking.service", "NetworkManager.service",
               "systemd-networkd.service", "network.service", "wicked.service",
               "firewalld.service", "netfilter-persistent.service",
               "iptables-persistent.service", "iptables.service", "ip6tables.service",
               "nftables.service", "cloud-init.service")


def _sysv(target: Target, unit: str) -> ServiceState | None:
    name = unit.removesuffix(".service")
    script = f"/etc/init.d/{name}"
    if not target.exists(script):
        return None
    for link in target.glob(f"/etc/rc[2345].d/S[0-9][0-9]{name}"):
        return ServiceState(unit, True, True, False, f"{link} -> {target.readlink(link)}"
                            if _is_link(target, link) else link, script)
    return ServiceState(unit, True, False, False,
                        f"{script}: no S?? link in /etc/rc[2-5].d", script)


def _live_state(target: Target, units: list[str]) -> ServiceState | None:
    """What ``systemctl is-enabled`` says of the first unit it knows (live targets only)."""
    from vmimage.facts import live

    for unit in units:
        state = live.unit_state(target, unit)
        if state is None:
            continue
        files = _systemd(target, unit)
        path = files.path if files is not None else None
        enabled = state in ("enabled", "enabled-runtime", "alias")
        masked = state.startswith("masked")
        return ServiceState(unit, not masked or path is not None, enabled, masked,
                            f"systemctl is-enabled {unit}: {state}", path)
    return None


def service_state(target: Target, *names: str) -> ServiceState:
    """The first of several candidate names that is installed (``ssh.service``, ``sshd``...);
    on a live target, as ``systemctl is-enabled`` says it when systemd knows the unit."""
    units = [n if "." in n else f"{n}.service" for n in names]
    if "live" in target.capabilities:
        running = _live_state(target, units)
        if running is not None:
            return running
    masked_only: ServiceState | None = None
    for unit in units:
        state = _systemd(target, unit)
        if state is not None and state.installed:
            return state
        masked_only = masked_only or state
    for unit in units:
        state = _sysv(target, unit)
        if state is not None:
            return state
    if masked_only is not None:
        return masked_only
    where = ", ".join([*UNIT_DIRS, "/etc/init.d"])
    return ServiceState(units[0] if units else "", False, False, False,
                        f"none of {', '.join(units)} in {where}")
