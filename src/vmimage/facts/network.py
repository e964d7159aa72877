"""How the image brings its network up: the distribution's network stack and its configuration.

The guide wants the NIC up at boot with DHCP, networking that the agent can restart (it said
``ifup``/``ifdown``; today's agent bounces the link and lets the stack renew its lease), no
custom configuration, and LISA fails an image that still has udev's persistent-net rules (a MAC
address pinned to ``eth0`` breaks the first boot on another VM). These functions gather the
configuration; the checks judge it.

Each distribution has its own stack, and each stack its own files and defaults:

- ifupdown (Debian): ``/etc/network/interfaces``, read as ifupdown reads it: ``source`` takes
  shell globs, ``source-directory`` takes run-parts names only, a relative path is relative to
  the file holding the directive, and ``auto``, ``allow-auto`` and ``allow-hotplug`` all bring
  an interface up at boot; ``networking.service`` runs it.
- netplan (Ubuntu, Debian 12 cloud images): YAML in ``/etc/netplan`` and ``/lib/netplan`` (a
  name in ``/etc`` hides the same name in ``/lib``), merged in name order; its generator writes
  the configuration of the renderer, systemd-networkd (default) or NetworkManager.
- NetworkManager (RHEL 8+, Fedora): keyfiles in ``system-connections`` (``[ipv4] method`` is
  ``auto``, DHCP, unless set; a keyfile others can read is ignored), ``ifcfg-*`` files through
  the ifcfg-rh plugin on the RHEL family, and without any profile its automatic "Wired
  connection" (DHCP) unless ``no-auto-default`` says otherwise.
- network-scripts (RHEL/CentOS 7): ``ifcfg-*`` (``ONBOOT`` defaults to yes) and the SysV
  ``network`` service.
- wicked (SUSE): ``/etc/sysconfig/network/ifcfg-*`` (``BOOTPROTO`` defaults to static and
  ``STARTMODE`` to manual, as ifcfg(5) says).
- systemd-networkd: ``.network`` files; the first file, in name order, whose ``[Match]`` fits a
  link configures it.

An Azure VM's first NIC is ``eth0`` (``hv_netvsc`` on the VMBus has no predictable name), so a
configuration applies to it when it names ``eth0``, matches it by a glob, by the ``hv_netvsc``
driver or as any Ethernet device; one pinned to a MAC address never matches a new VM's NIC.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vmimage.errors import InputError
from vmimage.facts._includes import IncludeWalk
from vmimage.facts._shell import assignments
from vmimage.facts.programs import find_tools, first_existing
from vmimage.facts.services import ServiceState, service_state
from vmimage.targets.base import Target

if TYPE_CHECKING:  # PyYAML loads only when a YAML file is read
    from vmimage.yamlcompat import Document

INTERFACES = "/etc/network/interfaces"
UDEV_RULE_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d")
#: Where DHCP clients keep leases: LINUX-DHCP-LEASES-REMOVED judges them and ``vmimage
#: generalize`` deletes them.
DHCP_LEASE_GLOBS = ("/var/lib/dhcp/*.lease*", "/var/lib/dhclient/*", "/var/lib/dhcpcd/*",
                    "/var/lib/NetworkManager/*.lease", "/var/lib/systemd/netif/leases/*",
                    "/var/lib/wicked/lease-*", "/var/db/dhclient.leases.*")
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


def _walk(walk: IncludeWalk, path: str, depth: int, stanzas: list[Iface],
          autos: set[str]) -> None:
    """One interfaces file, ``source`` and ``source-directory`` followed in place (a cycle or
    a tree over the work bound raises :class:`~vmimage.facts._includes.IncludeError`)."""
    if depth > _MAX_DEPTH:
        return
    with walk.visit(path) as text:
        if text is None:
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
                for included in _sourced(walk.target, head, " ".join(words[1:]), here):
                    _walk(walk, included, depth + 1, stanzas, autos)


def _sourced(target: Target, head: str, arg: str, here: str) -> list[str]:
    """The files a ``source`` (shell globs) or ``source-directory`` (run-parts names) names,
    sorted; a relative path is relative to the including file's directory."""
    arg = arg if arg.startswith("/") else posixpath.join(here, arg)
    if head == "source":
        return sorted(target.glob(arg) if any(c in arg for c in "*?[") else [arg])
    try:
        return sorted(f"{arg.rstrip('/')}/{n}" for n in target.iterdir(arg)
                      if _RUN_PARTS_NAME.fullmatch(n))
    except (FileNotFoundError, NotADirectoryError):
        return []


def ifupdown_interfaces(target: Target) -> list[Iface]:
    """Every ``iface`` stanza reachable from ``/etc/network/interfaces``, in reading order."""
    stanzas: list[Iface] = []
    autos: set[str] = set()
    _walk(IncludeWalk(target, INTERFACES, "source"), INTERFACES, 0, stanzas, autos)
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
    """Netplan YAML files in the order netplan merges them: by file name, a name in
    ``/etc/netplan`` hiding the same name in ``/lib/netplan`` (``/usr/lib/netplan``)."""
    by_name: dict[str, str] = {}
    for directory in ("/lib/netplan", "/usr/lib/netplan", "/etc/netplan"):
        for path in target.glob(f"{directory}/*.yaml"):
            by_name[posixpath.basename(path)] = path
    return [by_name[name] for name in sorted(by_name)]


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


# --- network stacks -----------------------------------------------------------------------------

#: The first NIC of an Azure VM, and its driver.
PRIMARY_NIC = "eth0"
PRIMARY_DRIVER = "hv_netvsc"
#: The stacks each distribution family may use, its own first. When two of them start at
#: boot, the first that configures eth0 is the one that brings it up.
STACK_ORDER = {
    "debian": ("netplan", "ifupdown", "systemd-networkd", "NetworkManager"),
    "ubuntu": ("netplan", "ifupdown", "NetworkManager", "systemd-networkd"),
    "rhel": ("NetworkManager", "network-scripts", "systemd-networkd"),
    "fedora": ("NetworkManager", "network-scripts", "systemd-networkd"),
    "suse": ("wicked", "NetworkManager", "systemd-networkd"),
    "other": ("netplan", "ifupdown", "NetworkManager", "network-scripts", "wicked",
              "systemd-networkd"),
}
_YES = frozenset({"1", "yes", "y", "true", "on"})
_BACKUP = re.compile(r"(~|\.(bak|old|orig|rpmnew|rpmsave|rpmorig|swp|tmp))$")
_NM_CONN_DIRS = ("/etc/NetworkManager/system-connections",
                 "/usr/lib/NetworkManager/system-connections")
_NM_CONF = ("/etc/NetworkManager/NetworkManager.conf", "/etc/NetworkManager/conf.d/*.conf",
            "/usr/lib/NetworkManager/conf.d/*.conf")
_NETWORKD_DIRS = ("/usr/lib/systemd/network", "/lib/systemd/network", "/etc/systemd/network")


@dataclass(frozen=True, slots=True)
class NicConfig:
    """How one stack configures one interface, and the file and line that say so."""

    stack: str
    name: str       # the interface, or the match as written (``eth0``, ``en*``, ``any Ethernet``)
    method: str     # ``dhcp`` (IPv4 from DHCP), ``static``, ``dhcp6``, ``none``, ``disabled``...
    at_boot: bool   # brought up at boot (auto, ONBOOT=yes, STARTMODE=auto, autoconnect)
    primary: bool   # applies to eth0, the first NIC of an Azure VM
    path: str
    line: int | None
    seen: str       # what the file says, as written
    required: str   # how this stack's files say "DHCP at boot"

    @property
    def dhcp(self) -> bool:
        """IPv4 comes from DHCP."""
        return self.method == "dhcp"


@dataclass(frozen=True, slots=True)
class NetworkStack:
    """One network stack installed in the image: whether it starts at boot, what can restart
    it, and what it configures."""

    name: str
    installed: str               # the file that shows it is installed
    service: ServiceState        # the unit (or SysV script) that starts it
    active: bool                 # it starts at boot
    tools: tuple[str, ...]       # what restarts networking, found
    missing: tuple[str, ...]     # what restarts networking, absent
    config_path: str             # where its configuration belongs
    configs: tuple[NicConfig, ...] = ()
    notes: tuple[str, ...] = ()  # files it cannot use, and why

    def primary(self) -> NicConfig | None:
        """The configuration that applies to eth0: the first brought up at boot, else the
        first at all."""
        ours = [c for c in self.configs if c.primary]
        return next((c for c in ours if c.at_boot), ours[0] if ours else None)


def _enabled(state: ServiceState) -> bool:
    return state.enabled and not state.masked


def _glob_match(patterns: str | list[str], value: str) -> bool:
    items = patterns if isinstance(patterns, list) else [patterns]
    return any(fnmatch.fnmatchcase(value, str(p)) for p in items)


def _boolish(value: object) -> bool:
    """A YAML or INI truth value as netplan and NetworkManager read it."""
    return value is True or (isinstance(value, str) and value.strip().lower() in _YES)


# --- ifupdown -----------------------------------------------------------------------------------


def _ifupdown(target: Target) -> NetworkStack | None:
    ifaces = [i for i in ifupdown_interfaces(target) if i.family == "inet" and i.name != "lo"]
    installed = first_existing(target, "/sbin/ifup", "/usr/sbin/ifup",
                       "/lib/systemd/system/networking.service", "/etc/init.d/networking")
    if installed is None and not ifaces:
        return None
    state = service_state(target, "networking.service")
    found, missing = find_tools(target, ("/sbin/ifup", "/usr/sbin/ifup"),
                            ("/sbin/ifdown", "/usr/sbin/ifdown"))
    configs = tuple(
        NicConfig("ifupdown", i.name, i.method, i.auto, i.name == PRIMARY_NIC, i.path, i.line,
                  f"iface {i.name} inet {i.method}" + ("" if i.auto else " (no auto line)"),
                  f"auto {PRIMARY_NIC} + iface {PRIMARY_NIC} inet dhcp")
        for i in ifaces)
    return NetworkStack("ifupdown", installed or INTERFACES, state, _enabled(state), found,
                        missing, INTERFACES, configs)


# --- netplan ------------------------------------------------------------------------------------


def _load_yaml(target: Target, path: str) -> Document:
    """The YAML document, or InputError when it cannot be read as YAML."""
    from vmimage.yamlcompat import MAX_BYTES, safe_load

    return safe_load(target.read_bytes(path, limit=MAX_BYTES + 1), path)


def _netplan_device(dev_id: str, dev: dict[str, Any], path: str, doc: Document,
                    renderer: str) -> NicConfig:
    match = dev.get("match")
    if isinstance(match, dict):
        pinned = match.get("macaddress")
        primary = (pinned is None
                   and ("name" not in match or _glob_match(match["name"], PRIMARY_NIC))
                   and ("driver" not in match or _glob_match(match["driver"], PRIMARY_DRIVER)))
        name = f"{dev_id} (match {', '.join(f'{k}: {v}' for k, v in match.items())})"
    else:
        primary, name = dev_id == PRIMARY_NIC, dev_id
    where = ("network", "ethernets", dev_id)
    if _boolish(dev.get("dhcp4")):
        method, seen, key = "dhcp", f"{dev_id}: dhcp4: true", "dhcp4"
    elif dev.get("addresses"):
        method, seen, key = "static", f"{dev_id}: addresses: {dev['addresses']}", "addresses"
    elif _boolish(dev.get("dhcp6")):
        method, seen, key = "dhcp6", f"{dev_id}: dhcp6 only", "dhcp6"
    else:
        method, seen, key = "none", f"{dev_id}: no dhcp4 and no addresses", ""
    mode = str(dev.get("activation-mode", "")).lower()
    at_boot = mode not in ("off", "manual")
    if not at_boot:
        seen += f", activation-mode: {mode}"
    line = (doc.line_of(*where, key) if key else None) or doc.line_of(*where)
    return NicConfig(f"netplan ({renderer})", name, method, at_boot, primary, path, line, seen,
                     f"network: ethernets: {PRIMARY_NIC}: dhcp4: true")


def _netplan_configs(target: Target, files: list[str]) -> tuple[list[NicConfig], list[str], str]:
    """(configurations, notes, the renderer eth0 uses): the files merged in order, a later
    file's keys of a device overriding an earlier one's."""
    renderer = "networkd"
    devices: dict[str, tuple[dict[str, Any], str, Document]] = {}
    notes: list[str] = []
    for path in files:
        try:
            doc = _load_yaml(target, path)
        except (InputError, OSError) as exc:
            notes.append(f"{exc}: netplan generates no configuration at all")
            continue
        network = doc.data.get("network") if isinstance(doc.data, dict) else None
        if not isinstance(network, dict):
            continue
        renderer = str(network.get("renderer", renderer))
        ethernets = network.get("ethernets")
        for key, dev in (ethernets.items() if isinstance(ethernets, dict) else []):
            if isinstance(dev, dict):
                dev_id = str(key)
                earlier = devices[dev_id][0] if dev_id in devices else {}
                devices[dev_id] = ({**earlier, **dev}, path, doc)
    configs = [_netplan_device(dev_id, dev, path, doc, str(dev.get("renderer", renderer)))
               for dev_id, (dev, path, doc) in devices.items()]
    primary = next((c for c in configs if c.primary), None)
    used = primary.stack[len("netplan ("):-1] if primary else renderer
    return configs, notes, used


def _netplan(target: Target) -> NetworkStack | None:
    files = netplan_files(target)
    installed = first_existing(target, "/usr/lib/systemd/system-generators/netplan",
                       "/lib/systemd/system-generators/netplan", "/usr/sbin/netplan",
                       "/lib/netplan/generate", "/usr/lib/netplan/generate")
    if installed is None and not files:
        return None
    configs, notes, renderer = _netplan_configs(target, files)
    if renderer == "NetworkManager":
        state = service_state(target, "NetworkManager.service")
        daemon = ("/usr/sbin/NetworkManager", "/sbin/NetworkManager")
        starts = _enabled(state)
    else:
        state = service_state(target, "systemd-networkd.service")
        daemon = ("/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd")
        # netplan's generator enables systemd-networkd itself for what it renders
        starts = state.installed and not state.masked
    found, missing = find_tools(target, ("/usr/sbin/netplan", "/sbin/netplan"), daemon)
    return NetworkStack(f"netplan ({renderer})", installed or files[0], state,
                        starts and installed is not None, found, missing, "/etc/netplan",
                        tuple(configs), tuple(notes))


# --- NetworkManager, network-scripts: ifcfg-rh and keyfiles ---------------------------------------


def _ini(text: str) -> dict[str, dict[str, tuple[str, int]]]:
    """``[section]`` -> key -> (value, line); a later key wins (GKeyFile, systemd for the keys
    read here)."""
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    current: dict[str, tuple[str, int]] = sections.setdefault("", {})
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = (value.strip(), number)
    return sections


def _ifcfg(target: Target, path: str, stack: str, *, suse: bool) -> NicConfig | None:
    """One ``ifcfg-*`` file, RHEL's (initscripts, NetworkManager's ifcfg-rh) or SUSE's (wicked).

    RHEL: ``BOOTPROTO`` dhcp or bootp is DHCP, ``ONBOOT`` defaults to yes. SUSE: ``BOOTPROTO``
    defaults to static, ``dhcp``/``dhcp4``/``dhcp+autoip`` are DHCP, ``STARTMODE`` defaults to
    manual and auto, onboot, on, boot, hotplug, nfsroot and ifplugd start at boot.
    """
    try:
        values = {a.name: (a.value, a.line) for a in assignments(target.read_text(path),
                                                                expand=False)}
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if values.get("TYPE", ("Ethernet", 0))[0].lower() not in ("ethernet", ""):
        return None
    if any(k in values for k in ("MASTER", "BRIDGE", "TEAM_MASTER")):
        return None  # a port of a bond or bridge carries no address of its own
    name = values.get("DEVICE", (path.rsplit("ifcfg-", 1)[-1], 0))[0]
    proto, proto_line = values.get("BOOTPROTO", ("static" if suse else "none", 0))
    proto = proto.lower()
    if proto in ("dhcp", "bootp") or (suse and proto in ("dhcp4", "dhcp+autoip")):
        method = "dhcp"
    elif proto == "dhcp6":
        method = "dhcp6"
    else:
        method = "static" if "IPADDR" in values or proto == "static" else "none"
    if suse:
        start, start_line = values.get("STARTMODE", ("manual", 0))
        at_boot = start.lower() in ("auto", "onboot", "on", "boot", "hotplug", "nfsroot",
                                    "ifplugd")
        boot_text = f"STARTMODE={start}" if start_line else "STARTMODE unset (manual)"
        required = "BOOTPROTO='dhcp' and STARTMODE='auto'"
    else:
        start, start_line = values.get("ONBOOT", ("yes", 0))
        at_boot = start.lower() not in ("no", "n", "false", "0")
        boot_text = f"ONBOOT={start}" if start_line else "ONBOOT unset (yes)"
        required = f"DEVICE={PRIMARY_NIC}, BOOTPROTO=dhcp, ONBOOT=yes"
    pinned = values.get("HWADDR") or values.get("LLADDR")
    primary = name == PRIMARY_NIC and pinned is None
    proto_text = (f"BOOTPROTO={values['BOOTPROTO'][0]}" if "BOOTPROTO" in values
                  else f"BOOTPROTO unset ({'static' if suse else 'none'})")
    seen = f"{proto_text}, {boot_text}" + (f", HWADDR={pinned[0]}" if pinned else "")
    line = proto_line or values.get("IPADDR", ("", 0))[1] or start_line or None
    return NicConfig(stack, name, method, at_boot, primary, path, line, seen, required)


def ifcfg_configs(target: Target, stack: str, *, suse: bool = False,
                  nm_only: bool = False) -> list[NicConfig]:
    """Interfaces configured by ``ifcfg-*`` files: RHEL's in
    ``/etc/sysconfig/network-scripts`` (``nm_only``: those NetworkManager manages, not
    ``NM_CONTROLLED=no``), or SUSE's in ``/etc/sysconfig/network``."""
    if suse:
        paths = [p for p in target.glob("/etc/sysconfig/network/ifcfg-*")
                 if not p.endswith(("/ifcfg-lo", "/ifcfg.template")) and not _BACKUP.search(p)]
    else:
        paths = [p for p in ifcfg_files(target) if not _BACKUP.search(p)]
    out = []
    for path in paths:
        if nm_only and re.search(r"(?m)^\s*NM_CONTROLLED=[\"']?(no|n|false)", _text(target, path),
                                 re.IGNORECASE):
            continue
        config = _ifcfg(target, path, stack, suse=suse)
        if config is not None:
            out.append(config)
    return out


def _text(target: Target, path: str) -> str:
    try:
        return target.read_text(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ""


def _keyfile(target: Target, path: str) -> NicConfig | None:
    """A NetworkManager keyfile: ``[connection] type`` ethernet, ``interface-name`` (any device
    when unset), ``autoconnect`` (default true), ``[ipv4] method`` (default auto: DHCP)."""
    ini = _ini(_text(target, path))
    conn = ini.get("connection", {})
    kind = conn.get("type", ("", 0))[0]
    if kind not in ("ethernet", "802-3-ethernet") or "master" in conn or "controller" in conn:
        return None
    iface = conn.get("interface-name")
    matches = ini.get("match", {}).get("interface-name")
    pinned = ini.get("ethernet", {}).get("mac-address") or ini.get(
        "802-3-ethernet", {}).get("mac-address")
    if iface:
        primary, name = iface[0] == PRIMARY_NIC, iface[0]
    elif matches:
        globs = [g for g in re.split(r"[;,]\s*", matches[0]) if g]
        primary, name = _glob_match(globs, PRIMARY_NIC), f"match {matches[0]}"
    else:
        primary, name = True, "any Ethernet device"
    primary = primary and pinned is None
    method, method_line = ini.get("ipv4", {}).get("method", ("auto", 0))
    auto = conn.get("autoconnect", ("true", 0))
    at_boot = _boolish(auto[0])
    seen = (f"[ipv4] method={method}" if method_line else "[ipv4] method unset (auto)")
    seen += "" if at_boot else f", autoconnect={auto[0]}"
    seen += f", mac-address={pinned[0]}" if pinned else ""
    return NicConfig("NetworkManager", name, "dhcp" if method == "auto" else method, at_boot,
                     primary, path, method_line or auto[1] or conn.get("type", ("", 1))[1],
                     seen, "[connection] type=ethernet, autoconnect=true; [ipv4] method=auto")


def _auto_default(target: Target) -> NicConfig:
    """NetworkManager's automatic "Wired connection" (DHCP) for a device without a profile,
    unless ``[main] no-auto-default`` names it (``*`` names every device)."""
    for pattern in _NM_CONF:
        for path in target.glob(pattern):
            value = _ini(_text(target, path)).get("main", {}).get("no-auto-default")
            if value and any(v.strip() in ("*", PRIMARY_NIC, f"interface-name:{PRIMARY_NIC}")
                             for v in re.split(r"[;,]", value[0])):
                return NicConfig("NetworkManager", PRIMARY_NIC, "none", False, True, path,
                                 value[1], f"no-auto-default={value[0]} and no connection "
                                 f"profile for {PRIMARY_NIC}",
                                 "a keyfile for eth0 with [ipv4] method=auto")
    return NicConfig("NetworkManager", PRIMARY_NIC, "dhcp", True, True, _NM_CONF[0], None,
                     "no connection profile: NetworkManager's automatic wired connection "
                     "uses DHCP (no-auto-default unset)", "no-auto-default unset")


def _networkmanager(target: Target, distro: str) -> NetworkStack | None:
    installed = first_existing(target, "/usr/sbin/NetworkManager", "/sbin/NetworkManager",
                       "/lib/systemd/system/NetworkManager.service",
                       "/usr/lib/systemd/system/NetworkManager.service")
    if installed is None:
        return None
    state = service_state(target, "NetworkManager.service")
    found, missing = find_tools(target, ("/usr/bin/nmcli", "/bin/nmcli"))
    configs: list[NicConfig] = []
    notes: list[str] = []
    for path in nm_connection_files(target):
        if _BACKUP.search(path):
            continue
        try:
            mode = target.stat(path).mode
        except OSError:
            continue
        if mode & 0o077:
            notes.append(f"{path}: mode {mode & 0o777:o}: NetworkManager ignores a keyfile that "
                         "others can read")
            continue
        config = _keyfile(target, path)
        if config is not None:
            configs.append(config)
    if distro in ("rhel", "fedora", "other"):
        configs += ifcfg_configs(target, "NetworkManager (ifcfg-rh)", nm_only=True)
    if not any(c.primary for c in configs):
        configs.append(_auto_default(target))
    return NetworkStack("NetworkManager", installed, state, _enabled(state), found, missing,
                        _NM_CONN_DIRS[0], tuple(configs), tuple(notes))


def _network_scripts(target: Target) -> NetworkStack | None:
    installed = first_existing(target, "/etc/rc.d/init.d/network", "/etc/init.d/network",
                       "/etc/sysconfig/network-scripts/ifup-eth")
    if installed is None:
        return None
    state = service_state(target, "network.service")
    found, missing = find_tools(target, ("/usr/sbin/ifup", "/sbin/ifup"),
                            ("/usr/sbin/ifdown", "/sbin/ifdown"))
    configs = ifcfg_configs(target, "network-scripts")
    return NetworkStack("network-scripts", installed, state, _enabled(state), found, missing,
                        "/etc/sysconfig/network-scripts", tuple(configs))


def _wicked(target: Target) -> NetworkStack | None:
    installed = first_existing(target, "/usr/sbin/wicked", "/usr/lib/systemd/system/wicked.service")
    if installed is None:
        return None
    state = service_state(target, "wicked.service")
    found, missing = find_tools(target, ("/usr/sbin/wicked", "/sbin/wicked"))
    configs = ifcfg_configs(target, "wicked", suse=True)
    return NetworkStack("wicked", installed, state, _enabled(state), found, missing,
                        "/etc/sysconfig/network", tuple(configs))


# --- systemd-networkd ---------------------------------------------------------------------------


def _networkd_match(match: dict[str, tuple[str, int]]) -> bool:
    """Whether a ``[Match]`` section fits eth0 of an Azure VM (``hv_netvsc``, Ethernet, a VM);
    keys that cannot be judged offline (Host, KernelCommandLine...) are taken to fit."""
    if "MACAddress" in match or "PermanentMACAddress" in match:
        return False
    facts = {"Name": [PRIMARY_NIC], "OriginalName": [PRIMARY_NIC], "Type": ["ether"],
             "Driver": [PRIMARY_DRIVER], "Kind": [""],
             "Virtualization": ["yes", "vm", "microsoft", "1", "true"]}
    for key, (value, _) in match.items():
        if key not in facts:
            continue
        negate = value.startswith("!")
        patterns = value.lstrip("!").split()
        hit = any(fnmatch.fnmatchcase(f, p) for f in facts[key] for p in patterns)
        if hit == negate:
            return False
    return True


def _networkd_file(target: Target, path: str) -> NicConfig | None:
    ini = _ini(_text(target, path))
    match = ini.get("Match", {})
    if not _networkd_match(match):
        return None
    network, link = ini.get("Network", {}), ini.get("Link", {})
    dhcp = network.get("DHCP", ("no", 0))
    if dhcp[0].lower() in ("yes", "true", "1", "on", "ipv4"):
        method, seen, line = "dhcp", f"DHCP={dhcp[0]}", dhcp[1]
    elif "Address" in network:
        method, seen = "static", f"Address={network['Address'][0]}"
        line = network["Address"][1]
    else:
        method = "dhcp6" if dhcp[0].lower() == "ipv6" else "none"
        seen, line = f"DHCP={dhcp[0]}" if dhcp[1] else "no DHCP= and no Address=", dhcp[1]
    policy = link.get("ActivationPolicy", ("up", 0))[0].lower()
    unmanaged = _boolish(link.get("Unmanaged", ("no", 0))[0])
    at_boot = policy not in ("manual", "down", "always-down") and not unmanaged
    if not at_boot:
        seen += ", Unmanaged=yes" if unmanaged else f", ActivationPolicy={policy}"
    name = match.get("Name", ("any link", 0))[0]
    return NicConfig("systemd-networkd", name, method, at_boot, True, path,
                     line or None, seen, "[Match] Name=eth0 + [Network] DHCP=yes (or ipv4)")


def _networkd(target: Target) -> NetworkStack | None:
    installed = first_existing(target, "/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd")
    if installed is None:
        return None
    state = service_state(target, "systemd-networkd.service")
    found, missing = find_tools(target, ("/usr/bin/networkctl", "/bin/networkctl"))
    by_name: dict[str, str] = {}
    for directory in _NETWORKD_DIRS:  # a name in /etc hides the same name in /usr/lib
        for path in target.glob(f"{directory}/*.network"):
            by_name[posixpath.basename(path)] = path
    configs: list[NicConfig] = []
    for name in sorted(by_name):  # the first file that matches the link configures it
        config = _networkd_file(target, by_name[name])
        if config is not None:
            configs.append(config)
            break
    return NetworkStack("systemd-networkd", installed, state, _enabled(state), found, missing,
                        "/etc/systemd/network", tuple(configs))


def network_stacks(target: Target, distro: str = "other") -> list[NetworkStack]:
    """The network stacks installed in the image, in the order of ``distro``'s family
    (:attr:`~vmimage.facts.osrelease.OsRelease.distro`), its own stack first."""
    builders = {
        "ifupdown": lambda: _ifupdown(target),
        "netplan": lambda: _netplan(target),
        "NetworkManager": lambda: _networkmanager(target, distro),
        "network-scripts": lambda: _network_scripts(target),
        "wicked": lambda: _wicked(target),
        "systemd-networkd": lambda: _networkd(target),
    }
    stacks = [builders[name]() for name in STACK_ORDER.get(distro, STACK_ORDER["other"])]
    return [s for s in stacks if s is not None]


def managing_stack(stacks: list[NetworkStack]) -> NetworkStack | None:
    """The stack that brings eth0 up: of those that start at boot, the first whose
    configuration brings eth0 up at boot, else the first that configures it at all, else the
    first; None when no stack starts at boot."""
    active = [s for s in stacks if s.active]
    for wanted in (lambda c: c.at_boot, lambda c: True):
        for stack in active:
            config = stack.primary()
            if config is not None and wanted(config):
                return stack
    return active[0] if active else None
