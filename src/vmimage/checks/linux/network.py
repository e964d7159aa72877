"""Networking: no NetworkManager, ifup/ifdown, DHCP at boot, no custom or leftover config."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import lines_of
from vmimage.facts.network import (
    ifup_available,
    ifupdown_interfaces,
    netplan_files,
    networkmanager_installed,
    udev_persistent_net_rules,
)
from vmimage.facts.services import service_state
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule


def _centos7_like(ctx: CheckContext) -> bool:
    osr = ctx.system.os_release
    if osr is None:
        return False
    family = {osr.id, *osr.id_like}
    return bool(family & {"centos", "rhel"}) and osr.version_id.split(".")[0] == "7"


@rule(id="LINUX-NETWORKMANAGER-DISABLED", title="NetworkManager is not enabled",
       severity=Severity.FAIL, covers=("LNX-NM", "LISA-verify_network_manager_not_installed"),
       remediation="Disable or remove NetworkManager (systemctl disable NetworkManager) and "
                   "configure the NIC with ifupdown or the distribution's default; CentOS 7 "
                   "and its derivatives keep it.",
       needs=("filesystem",))
def networkmanager_disabled(ctx: CheckContext) -> Outcome:
    """The 2015 agent restarted networking with ifup/ifdown, which NetworkManager fights."""
    assert ctx.target is not None
    if not networkmanager_installed(ctx.target):
        return passed("NetworkManager is not installed")
    state = service_state(ctx.target, "NetworkManager.service")
    ev = Evidence(path=state.evidence, seen=f"enabled={state.enabled}", required="disabled")
    if _centos7_like(ctx):
        return passed("NetworkManager stays enabled on CentOS 7 and derivatives", ev)
    if state.enabled and not state.masked:
        return violated("NetworkManager is installed and enabled", ev)
    return passed("NetworkManager is installed but not enabled", ev)


@rule(id="LINUX-IFUPDOWN", title="Networking can be controlled with ifup and ifdown",
       severity=Severity.FAIL, covers=("LNX-IFUPDOWN",),
       remediation="Install ifupdown (Debian) or network-scripts (RHEL) so /sbin/ifup exists.",
       needs=("filesystem",))
def ifupdown(ctx: CheckContext) -> Outcome:
    """The agent may restart networking with ifdown/ifup during provisioning."""
    assert ctx.target is not None
    if ifup_available(ctx.target):
        return passed("ifup and ifdown are installed", Evidence(path="/sbin/ifup"))
    return violated("ifup is not installed", Evidence(path="/sbin/ifup", seen="absent",
                                                      required="present"))


@rule(id="LINUX-DHCP", title="The network device comes up at boot with DHCP",
       severity=Severity.FAIL, covers=("LNX-DHCP",),
       remediation="Configure the first NIC for DHCP at boot: `auto eth0` and `iface eth0 inet "
                   "dhcp` in /etc/network/interfaces (or dhcp4: true in netplan).",
       needs=("filesystem",))
def dhcp(ctx: CheckContext) -> Outcome:
    """Azure hands out addresses only by DHCP; a static address never matches the VNet."""
    assert ctx.target is not None
    ifaces = [i for i in ifupdown_interfaces(ctx.target) if i.name != "lo"]
    for iface in ifaces:
        if iface.method == "dhcp" and iface.auto:
            return passed(f"{iface.name} uses DHCP at boot",
                          Evidence(path=iface.path, line=iface.line,
                                   seen=f"iface {iface.name} inet dhcp"))
    for path in netplan_files(ctx.target):
        text = ctx.target.read_text(path)
        if "dhcp4: true" in text or "dhcp4: yes" in text:
            return passed("netplan configures DHCP", Evidence(path=path, seen="dhcp4: true"))
    for path in ctx.target.glob("/etc/systemd/network/*.network"):
        text = ctx.target.read_text(path)
        if any(line.replace(" ", "").lower() in ("dhcp=yes", "dhcp=ipv4", "dhcp=true")
               for _, line in lines_of(text)):
            return passed("systemd-networkd configures DHCP", Evidence(path=path, seen="DHCP=yes"))
    for path in ctx.target.glob("/etc/sysconfig/network-scripts/ifcfg-*"):
        text = ctx.target.read_text(path).lower()
        if "bootproto=dhcp" in text.replace('"', "") and "onboot=no" not in text.replace('"', ""):
            return passed("ifcfg configures DHCP", Evidence(path=path, seen="BOOTPROTO=dhcp"))
    if ifaces:
        listed = ", ".join(f"{i.name} {i.method}{'' if i.auto else ' (not auto)'}" for i in ifaces)
        return violated(f"no interface uses DHCP at boot: {listed}",
                        Evidence(path=ifaces[0].path, line=ifaces[0].line, seen=listed,
                                 required="auto eth0 / iface eth0 inet dhcp"))
    return violated("no network interface is configured for DHCP",
                    Evidence(path="/etc/network/interfaces", seen="no NIC stanza",
                             required="auto eth0 / iface eth0 inet dhcp"))


@rule(id="LINUX-RESOLV-CONF-REMOVED", title="/etc/resolv.conf is not baked into the image",
       severity=Severity.FAIL, covers=("LNX-NET-CUSTOM", "LNX-GENERALIZED"),
       remediation="Delete /etc/resolv.conf as the last step (waagent -deprovision does); a "
                   "symlink into /run, written at boot, is fine.",
       needs=("filesystem",))
def resolv_conf_removed(ctx: CheckContext) -> Outcome:
    """A baked-in resolver points every customer's VM at the builder's DNS servers."""
    assert ctx.target is not None
    path = "/etc/resolv.conf"
    try:
        st = ctx.target.stat(path, follow=False)
    except OSError:
        return passed("/etc/resolv.conf is absent", Evidence(path=path, seen="absent"))
    if st.is_symlink:
        link = ctx.target.readlink(path)
        if link.startswith(("/run/", "../run/")):
            return passed(f"/etc/resolv.conf links to {link}, written at boot",
                          Evidence(path=path, seen=f"-> {link}"))
    try:
        text = ctx.target.read_text(path)
    except OSError:
        text = ""
    servers = [line for _, line in lines_of(text) if line.startswith("nameserver")]
    return violated(f"/etc/resolv.conf is present ({', '.join(servers) or 'no nameserver'})",
                    Evidence(path=path, seen="; ".join(servers) or "present", required="absent"))


@rule(id="LINUX-DHCP-LEASES-REMOVED", title="No cached DHCP leases",
       severity=Severity.FAIL, covers=("LNX-GENERALIZED",),
       remediation="Delete the DHCP client's lease files (waagent -deprovision does).",
       needs=("filesystem",))
def dhcp_leases_removed(ctx: CheckContext) -> Outcome:
    """A stale lease makes the first boot ask for the builder's address."""
    assert ctx.target is not None
    leases = []
    for pattern in ("/var/lib/dhcp/*.lease*", "/var/lib/dhclient/*", "/var/lib/dhcpcd/*",
                    "/var/lib/NetworkManager/*.lease", "/var/lib/systemd/netif/leases/*",
                    "/var/db/dhclient.leases.*"):
        leases += [p for p in ctx.target.glob(pattern) if ctx.target.stat(p).size > 0]
    if leases:
        return violated(f"{len(leases)} lease file(s) left", Evidence(path=leases[0],
                                                                      seen=", ".join(leases),
                                                                      required="none"))
    return passed("no DHCP lease files", Evidence(path="/var/lib/dhcp", seen="none"))


@rule(id="LINUX-HOSTNAME-RESET", title="The hostname is reset to localhost",
       severity=Severity.WARNING, covers=("LNX-GENERALIZED",),
       remediation="Write localhost.localdomain to /etc/hostname (waagent -deprovision does).",
       needs=("filesystem",))
def hostname_reset(ctx: CheckContext) -> Outcome:
    """Azure sets the customer's hostname at provisioning; a builder's name leaks otherwise."""
    assert ctx.target is not None
    try:
        name = ctx.target.read_text("/etc/hostname").strip()
    except OSError:
        return passed("/etc/hostname is absent", Evidence(path="/etc/hostname", seen="absent"))
    ev = Evidence(path="/etc/hostname", line=1, seen=name or "(empty)",
                  required="localhost.localdomain")
    if name in ("", "localhost", "localhost.localdomain"):
        return passed(f"hostname is {name or 'empty'}", ev)
    return violated(f"hostname is {name!r}, the builder's", ev)


@rule(id="LINUX-IPV6-NOT-CONFIGURED", title="No static IPv6 configuration",
       severity=Severity.WARNING, covers=("LNX-IPV6",),
       remediation="Remove `iface ... inet6 static` stanzas; Azure assigns addresses itself.",
       needs=("filesystem",))
def ipv6_not_configured(ctx: CheckContext) -> Iterator[Outcome]:
    """IPv6 did not work on Azure in 2015; a static IPv6 address never works there."""
    assert ctx.target is not None
    found = False
    for iface in ifupdown_interfaces(ctx.target):
        if iface.method == "static" and iface.family == "inet6":
            found = True
            yield violated(f"{iface.name} has a static IPv6 address",
                           Evidence(path=iface.path, line=iface.line,
                                    seen=f"iface {iface.name} inet6 static", required="none"))
    if not found:
        yield passed("no static IPv6 configuration")


@rule(id="LINUX-UDEV-PERSISTENT-NET", title="No udev persistent network rules",
       severity=Severity.FAIL, covers=("LNX-NET-CUSTOM", "LISA-verify_udev_rules_moved"),
       remediation="Delete 70-persistent-net.rules and 75-persistent-net-generator.rules: they "
                   "pin eth0 to the builder's MAC address, so a new VM's NIC becomes eth1.",
       needs=("filesystem",))
def udev_persistent_net(ctx: CheckContext) -> Outcome:
    """LISA fails images that keep these rules."""
    assert ctx.target is not None
    rules = udev_persistent_net_rules(ctx.target)
    if rules:
        return violated(f"{', '.join(rules)} present", Evidence(path=rules[0], seen="present",
                                                                required="absent"))
    return passed("no persistent-net rules", Evidence(path="/etc/udev/rules.d", seen="none"))
