"""How the image brings its network up: ifupdown, netplan, NetworkManager, udev naming rules.

The guide wants the NIC up at boot with DHCP, networking controllable with ``ifup``/``ifdown``,
NetworkManager off (outside CentOS 7), no custom configuration, and LISA fails an image that
still has udev's persistent-net rules (a MAC address pinned to ``eth0`` breaks the first boot
on another VM). These functions gather the configuration files; the checks judge them.

``/etc/network/interfaces`` is read as ifupdown reads it: ``source`` takes shell globs,
``source-directory`` takes run-parts names only, and a relative path is relative to the file
that holds the directive; ``auto``, ``allow-auto`` and ``allow-hotplug`` all bring an
interface up at boot.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from vmimage.targets.base import Target

INTERFACES = "/etc/network/interfaces"
UDEV_RULE_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d")
UDEV_PERSISTENT_NET = ("70-persistent-net.rules", "75-persistent-net-generator.rules")
_MAX_DEPTH = 16
_RUN_PARTS_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Iface:
    """An ``iface`` stanza: the interface, its method (dhcp, static, loopback...), boot-up."""

    name: str
    method: str
    auto: bool
    path: str
    line: int
    family: str = "inet"  # inet, inet6, ipx, can


def _read(target: Target, path: str) -> str | None:
    try:
        return target.read_text(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    return out


def _walk(target: Target, path: str, depth: int, stanzas: list[Iface],
          autos: set[str]) -> None:
    text = _read(target, path)
    if text is None or depth > _MAX_DEPTH:
        return
    here = posixpath.dirname(path)
    for number, raw in _logical_lines(text):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        head = words[0]
        if head in ("auto", "allow-auto", "allow-hotplug"):
            autos.update(words[1:])
        elif head == "iface" and len(words) >= 4:
            stanzas.append(Iface(words[1], words[3], False, path, number, words[2]))
        elif head in ("source", "source-directory") and len(words) >= 2:
            arg = " ".join(words[1:])
            arg = arg if arg.startswith("/") else posixpath.join(here, arg)
            if head == "source":
                found = target.glob(arg) if any(c in arg for c in "*?[") else [arg]
            else:
                try:
                    found = [f"{arg.rstrip('/')}/{n}" for n in target.iterdir(arg)
                             if _RUN_PARTS_NAME.fullmatch(n)]
                except (FileNotFoundError, NotADirectoryError):
                    found = []
            for included in sorted(found):
                _walk(target, included, depth + 1, stanzas, autos)


def ifupdown_interfaces(target: Target) -> list[Iface]:
    """Every ``iface`` stanza reachable from ``/etc/network/interfaces``, in reading order."""
    stanzas: list[Iface] = []
    autos: set[str] = set()
    _walk(target, INTERFACES, 0, stanzas, autos)
    return [Iface(s.name, s.method, s.name in autos, s.path, s.line, s.family) for s in stanzas]


def udev_persistent_net_rules(target: Target) -> list[str]:
    """Paths of udev's persistent-net rule files that are present (LISA requires none).

    A ``/dev/null`` symlink in ``/etc/udev/rules.d`` is how images disable the generator; it
    is still listed, with the path, so the check can tell it apart (``readlink``).
    """
    found = []
    for directory in UDEV_RULE_DIRS:
        for name in UDEV_PERSISTENT_NET:
            path = f"{directory}/{name}"
            if target.exists(path) or _is_link(target, path):
                found.append(path)
    return found


def _is_link(target: Target, path: str) -> bool:
    try:
        return target.stat(path, follow=False).is_symlink
    except OSError:
        return False


def networkmanager_installed(target: Target) -> bool:
    """NetworkManager's daemon or unit is present."""
    return any(target.exists(p) for p in (
        "/usr/sbin/NetworkManager", "/sbin/NetworkManager",
        "/lib/systemd/system/NetworkManager.service",
        "/usr/lib/systemd/system/NetworkManager.service"))


def netplan_files(target: Target) -> list[str]:
    """Netplan YAML files (``/etc/netplan`` and ``/lib/netplan``), as netplan collects them."""
    found: list[str] = []
    for directory in ("/lib/netplan", "/etc/netplan", "/usr/lib/netplan"):
        found += [p for p in target.glob(f"{directory}/*.yaml") if p not in found]
    return found


def nm_connection_files(target: Target) -> list[str]:
    """NetworkManager keyfile connection profiles the image carries."""
    found: list[str] = []
    for directory in ("/etc/NetworkManager/system-connections",
                      "/usr/lib/NetworkManager/system-connections"):
        try:
            names = target.iterdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        found += [f"{directory}/{n}" for n in names if not n.startswith(".")]
    return found


def ifcfg_files(target: Target) -> list[str]:
    """RHEL-style ``/etc/sysconfig/network-scripts/ifcfg-*`` files (loopback excluded)."""
    return [p for p in target.glob("/etc/sysconfig/network-scripts/ifcfg-*")
            if not p.endswith("/ifcfg-lo")]


def ifup_available(target: Target) -> bool:
    """An ``ifup`` command exists (ifupdown, or RHEL's network-scripts)."""
    return any(target.exists(p) for p in ("/sbin/ifup", "/usr/sbin/ifup"))
