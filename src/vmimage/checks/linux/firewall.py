"""Firewall: iptables included, no rules enabled."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import is_file, lines_of
from vmimage.facts.services import service_state
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError

#: Saved rule sets and the unit that loads each at boot.
_RULE_FILES = (("/etc/iptables/rules.v4", ("netfilter-persistent.service",
                                            "iptables-persistent.service")),
               ("/etc/iptables/rules.v6", ("netfilter-persistent.service",)),
               ("/etc/sysconfig/iptables", ("iptables.service",)),
               ("/etc/sysconfig/ip6tables", ("ip6tables.service",)),
               ("/etc/nftables.conf", ("nftables.service",)))


@rule(id="LINUX-IPTABLES-INSTALLED", title="iptables is installed", severity=Severity.WARNING,
       covers=("LNX-IPTABLES",),
       remediation="Install iptables so customers can add their own rules.",
       needs=("filesystem",))
def iptables_installed(ctx: CheckContext) -> Outcome:
    """The guide asks for the firewall software to be present, unconfigured."""
    for path in ("/usr/sbin/iptables", "/sbin/iptables", "/usr/sbin/nft"):
        if is_file(ctx, path):
            return passed(f"{path} is installed", Evidence(path=path))
    return violated("no iptables or nft binary", Evidence(path="/usr/sbin/iptables",
                                                          seen="absent", required="installed"))


@rule(id="LINUX-FIREWALL-NO-RULES", title="No firewall rules are enabled at boot",
       severity=Severity.FAIL, covers=("LNX-IPTABLES",),
       remediation="Delete the saved rules or disable the unit that loads them: Azure filters "
                   "traffic with network security groups, and image rules lock customers out.",
       needs=("filesystem",))
def firewall_no_rules(ctx: CheckContext) -> Iterator[Outcome]:
    """A saved rule set loaded at boot is an enabled rule, whatever the customer's NSG says."""
    assert ctx.target is not None
    found = False
    for path, units in _RULE_FILES:
        try:
            text = ctx.target.read_text(path)
        except UnreadableError:
            raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
        except OSError:
            continue
        rules = [(n, line) for n, line in lines_of(text)
                 if line.startswith(("-A ", "add rule")) or " drop" in line or " reject" in line]
        if not rules:
            continue
        state = service_state(ctx.target, *units)
        if state.enabled and not state.masked:
            found = True
            line, text_line = rules[0]
            yield violated(f"{len(rules)} rule(s) in {path}, loaded at boot by {state.unit}",
                           Evidence(path=path, line=line, seen=text_line, required="no rules"))
    firewalld = service_state(ctx.target, "firewalld.service")
    if firewalld.installed and firewalld.enabled and not firewalld.masked:
        found = True
        yield violated("firewalld is enabled", Evidence(path=firewalld.evidence,
                                                        seen="enabled", required="disabled"))
    if not found:
        yield passed("no firewall rules are loaded at boot")
