"""Networking: the distribution's own stack brings eth0 up with DHCP and the agent can restart
it, NetworkManager where it does not belong, no custom or leftover configuration."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import lines_of
from vmimage.facts.network import (
    DHCP_LEASE_GLOBS,
    PRIMARY_NIC,
    STACK_ORDER,
    NetworkStack,
    ifupdown_interfaces,
    managing_stack,
    network_stacks,
    networkmanager_installed,
    udev_persistent_net_rules,
)
from vmimage.facts.services import service_state
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError


def _distro(ctx: CheckContext) -> tuple[str, int | None, str]:
    """(family, major release, name) of the system: which stack and exemptions apply."""
    osr = ctx.system.os_release
    if osr is None:
        return "other", None, "this system"
    return osr.distro, osr.major, osr.pretty_name or osr.id


def _stacks(ctx: CheckContext) -> list[NetworkStack]:
    assert ctx.target is not None
    return network_stacks(ctx.target, _distro(ctx)[0])


def _nothing_starts(ctx: CheckContext, stacks: list[NetworkStack]) -> Outcome:
    """No stack starts at boot: every installed one, and why it does not start."""
    distro = _distro(ctx)[0]
    expected = " or ".join(STACK_ORDER.get(distro, STACK_ORDER["other"]))
    if not stacks:
        return violated(f"no network stack is installed ({expected} for {_distro(ctx)[2]}): "
                        "nothing brings the NIC up",
                        Evidence(path="/etc", seen="no network stack", required=expected))
    evidence = [Evidence(path=s.service.path or s.installed, seen=s.service.evidence,
                         required=f"{s.service.unit} enabled") for s in stacks]
    names = ", ".join(f"{s.name} ({_why_not(s)})" for s in stacks)
    return violated(f"no network stack starts at boot: {names}", *evidence)


def _why_not(stack: NetworkStack) -> str:
    """Why a stack does not start at boot."""
    if stack.service.masked:
        return "masked"
    if stack.missing:
        return f"{', '.join(stack.missing)} missing"
    return "not enabled"


@rule(id="LINUX-NETWORKMANAGER-DISABLED", title="NetworkManager is not enabled",
       severity=Severity.FAIL, covers=("LNX-NM", "LISA-verify_network_manager_not_installed"),
       remediation="Disable or remove NetworkManager (systemctl disable NetworkManager) and "
                   "configure the NIC with the distribution's default stack; the RHEL family "
                   "keeps it (CentOS 7 and derivatives in the 2015 guide, RHEL 7 and later in "
                   "LISA), and LISA wants it uninstalled below RHEL 7.",
       needs=("filesystem",))
def networkmanager_disabled(ctx: CheckContext) -> Outcome:
    """The 2015 agent restarted networking with ifup/ifdown, which NetworkManager fights; the
    guide exempts CentOS 7.x and derivatives. LISA (the ``networkmanager_rule = "lisa"``
    threshold) skips the RHEL family from 7 on, where NetworkManager is the stack, and wants it
    not even installed below 7."""
    assert ctx.target is not None
    pkgs = ctx.system.packages
    pkg = pkgs.first("NetworkManager", "network-manager")
    if pkg is None and not networkmanager_installed(ctx.target):
        return passed("NetworkManager is not installed",
                      Evidence(path=pkgs.path, seen="no NetworkManager package or daemon"))
    distro, major, name = _distro(ctx)
    rhel = major if distro == "rhel" else None
    state = service_state(ctx.target, "NetworkManager.service")
    ev = Evidence(path=state.path or state.evidence, seen=state.evidence,
                  required="NetworkManager.service not enabled")
    if ctx.profile.thresholds.get("networkmanager_rule", "guide") == "lisa" and rhel:
        if rhel >= 7:
            return passed(f"not applicable: NetworkManager is the network stack of {name} (RHEL "
                          "family 7 or later; LISA skips the check there)", ev)
        seen = f"{pkg.name} {pkg.version}" if pkg else "the NetworkManager daemon"
        return violated(f"{seen} is installed on {name}: LISA wants NetworkManager not "
                        "installed below RHEL 7",
                        Evidence(path=pkgs.path if pkg else state.path or "/usr/sbin/NetworkManager",
                                 seen=seen, required="not installed"))
    if rhel == 7:
        return passed(f"NetworkManager stays enabled on {name} (CentOS 7 and derivatives)", ev)
    if state.enabled and not state.masked:
        return violated("NetworkManager is installed and enabled", ev)
    return passed("NetworkManager is installed but not enabled", ev)


@rule(id="LINUX-IFUPDOWN", title="The agent can restart networking through the system's "
       "network stack", severity=Severity.FAIL, covers=("LNX-IFUPDOWN",),
       remediation="Let the distribution's own stack bring the NIC up at boot, with its tools "
                   "installed: ifupdown (ifup/ifdown, networking.service) on Debian, netplan with "
                   "systemd-networkd or NetworkManager on Ubuntu, NetworkManager (nmcli) on RHEL "
                   "8+, network-scripts (ifup/ifdown) on RHEL 7, wicked on SUSE, or "
                   "systemd-networkd (networkctl).",
       needs=("filesystem",))
def ifupdown(ctx: CheckContext) -> Outcome:
    """The agent restarts networking during provisioning: ifdown/ifup where ifupdown or
    network-scripts run it, a link bounce that NetworkManager, systemd-networkd or wicked
    answer with a new lease elsewhere. So the stack that brings eth0 up must start at boot and
    its tools be there; ``ifup`` alone proves neither."""
    stacks = _stacks(ctx)
    stack = managing_stack(stacks)
    if stack is None:
        return _nothing_starts(ctx, stacks)
    if stack.missing:
        return violated(f"{stack.name} starts at boot ({stack.service.unit}) but "
                        f"{' and '.join(stack.missing)} is missing: networking cannot be "
                        "restarted", Evidence(path=stack.missing[0], seen="absent",
                                              required="present"))
    return passed(f"{stack.name} starts at boot and {', '.join(stack.tools)} can restart it",
                  Evidence(path=stack.service.path or stack.installed, seen=stack.service.evidence,
                           required=f"{stack.service.unit} enabled"))


@rule(id="LINUX-DHCP", title="The network device comes up at boot with DHCP",
       severity=Severity.FAIL, covers=("LNX-DHCP",),
       remediation="Configure eth0 for DHCP at boot in the stack that starts: `auto eth0` and "
                   "`iface eth0 inet dhcp` (ifupdown), `dhcp4: true` (netplan), `[ipv4] "
                   "method=auto` (NetworkManager), `BOOTPROTO=dhcp`/`ONBOOT=yes` (ifcfg), "
                   "`BOOTPROTO='dhcp'`/`STARTMODE='auto'` (wicked), `DHCP=yes` (networkd).",
       needs=("filesystem",))
def dhcp(ctx: CheckContext) -> Outcome:
    """Azure hands out addresses only by DHCP; a static address never matches the VNet. What
    counts is the configuration of eth0 in the stack that starts at boot, with that stack's
    defaults, not a DHCP line in some file nothing reads."""
    stacks = _stacks(ctx)
    stack = managing_stack(stacks)
    if stack is None:
        return _nothing_starts(ctx, stacks)
    notes = [Evidence(path=n.split(":", 1)[0], seen=n) for n in stack.notes]
    nic = stack.primary()
    if nic is None:
        others = ", ".join(f"{c.name} ({c.path})" for c in stack.configs) or "nothing"
        return violated(f"{stack.name} starts at boot but nothing configures {PRIMARY_NIC}: "
                        f"it configures {others}",
                        Evidence(path=stack.config_path, seen=others,
                                 required=f"{PRIMARY_NIC} with DHCP at boot"), *notes)
    ev = Evidence(path=nic.path, line=nic.line, seen=nic.seen, required=nic.required)
    if nic.dhcp and nic.at_boot:
        return _leased(ctx, nic.name, nic.stack, ev)
    return violated(f"{nic.name} {nic.method}{'' if nic.at_boot else ' (not brought up at boot)'}"
                    f" ({nic.stack}, {nic.path}{f' line {nic.line}' if nic.line else ''})",
                    ev, *notes)


def _leased(ctx: CheckContext, name: str, stack: str, config: Evidence) -> Outcome:
    """Configured for DHCP at boot; on a running VM, also holding a DHCP address now (the
    configuration is what Azure needs, the lease is the proof it worked)."""
    held = ctx.system.addresses
    if held is None:
        return passed(f"{name} uses DHCP at boot ({stack})", config)
    mine = [a for a in held if a.interface == name]
    leased = [a for a in mine if a.dynamic]
    if leased:
        life = leased[0].valid_seconds
        return passed(f"{name} uses DHCP at boot ({stack}) and holds {leased[0].cidr} from it",
                      config, Evidence(path="ip -j addr", seen=f"{name} {leased[0].cidr} dynamic"
                                       + (f", valid {life} s" if life is not None else "")))
    seen = ", ".join(a.cidr for a in mine) or "no IPv4 address"
    return violated(f"{name} is configured for DHCP ({stack}) but holds "
                    f"{'only a static ' + seen if mine else seen} on the running system: DHCP "
                    "did not configure it", config,
                    Evidence(path="ip -j addr", seen=f"{name}: {seen}",
                             required=f"{name} with a DHCP (dynamic) IPv4 address"))


@rule(id="LINUX-RESOLV-CONF-REMOVED", title="/etc/resolv.conf is not baked into the image",
       severity=Severity.FAIL, covers=("LNX-NET-CUSTOM", "LNX-GENERALIZED"),
       remediation="Delete /etc/resolv.conf as the last step (waagent -deprovision does); a "
                   "symlink into /run, written at boot, is fine.",
       needs=("filesystem", "at-rest"))
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
    except UnreadableError:
        raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
    except OSError:
        text = ""
    servers = [line for _, line in lines_of(text) if line.startswith("nameserver")]
    return violated(f"/etc/resolv.conf is present ({', '.join(servers) or 'no nameserver'})",
                    Evidence(path=path, seen="; ".join(servers) or "present", required="absent"))


@rule(id="LINUX-DHCP-LEASES-REMOVED", title="No cached DHCP leases",
       severity=Severity.FAIL, covers=("LNX-GENERALIZED",),
       remediation="Delete the DHCP client's lease files (waagent -deprovision does).",
       needs=("filesystem", "at-rest"))
def dhcp_leases_removed(ctx: CheckContext) -> Outcome:
    """A stale lease makes the first boot ask for the builder's address."""
    assert ctx.target is not None
    leases = []
    for pattern in DHCP_LEASE_GLOBS:
        leases += [p for p in ctx.target.glob(pattern) if ctx.target.stat(p).size > 0]
    if leases:
        return violated(f"{len(leases)} lease file(s) left", Evidence(path=leases[0],
                                                                      seen=", ".join(leases),
                                                                      required="none"))
    return passed("no DHCP lease files", Evidence(path="/var/lib/dhcp", seen="none"))


@rule(id="LINUX-HOSTNAME-RESET", title="The hostname is reset to localhost",
       severity=Severity.WARNING, covers=("LNX-GENERALIZED",),
       remediation="Write localhost.localdomain to /etc/hostname (waagent -deprovision does).",
       needs=("filesystem", "at-rest"))
def hostname_reset(ctx: CheckContext) -> Outcome:
    """Azure sets the customer's hostname at provisioning; a builder's name leaks otherwise."""
    assert ctx.target is not None
    try:
        name = ctx.target.read_text("/etc/hostname").strip()
    except UnreadableError:
        raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
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
