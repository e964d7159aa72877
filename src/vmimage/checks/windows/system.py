"""What the hives say of the system itself: 64-bit, an approved Windows Server base, Remote
Desktop on and open, and no role or feature Azure does not support (research §2.1)."""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

from vmimage.checks.context import CheckContext
from vmimage.checks.windows.common import SOFTWARE_PATH, SYSTEM_PATH, software_hive, system_hive
from vmimage.facts.windows.registry import current_control_set
from vmimage.facts.windows.system import (
    Product,
    architecture,
    product,
    remote_desktop,
    server_features,
)
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule

_ARCH_KEY = "Control\\Session Manager\\Environment\\PROCESSOR_ARCHITECTURE"
_64BIT = {"AMD64", "ARM64", "IA64"}

#: Windows Server releases by build number (``CurrentBuild``): how the approved-base list of a
#: profile names them. 7600 is 2008 R2 before its Service Pack 1, which the guide requires.
RELEASES = {
    7600: "2008 R2", 7601: "2008 R2 SP1", 9200: "2012", 9600: "2012 R2", 14393: "2016",
    17763: "2019", 20348: "2022", 26100: "2025",
}
#: ``EditionID`` -> the edition's name as Microsoft's image list says it (Core and Azure
#: editions included).
EDITIONS = {
    "serverdatacenter": "Datacenter", "serverdatacentercor": "Datacenter",
    "serverstandard": "Standard", "serverstandardcor": "Standard",
    "serverenterprise": "Enterprise", "serverenterprisecor": "Enterprise",
    "serverweb": "Web", "serverwebcore": "Web",
    "serverturbine": "Datacenter: Azure Edition", "serverturbinecor": "Datacenter: Azure Edition",
    "serverazurestackhcicor": "Azure Stack HCI",
}


@rule(id="WINDOWS-ARCH-64BIT", title="Windows is a 64-bit operating system",
       severity=Severity.FAIL, os="windows", covers=("MS-1.1.4",),
       remediation="Build the image from a 64-bit (x64) Windows Server: Azure runs 64-bit "
                   "operating systems only.",
       needs=("filesystem",))
def arch_64bit(ctx: CheckContext) -> Outcome:
    """``PROCESSOR_ARCHITECTURE`` of the system environment (AMD64 on x64 Windows); when it is
    missing, ``Windows\\SysWOW64`` (only 64-bit Windows has it)."""
    system = system_hive(ctx)
    arch = architecture(system)
    ev = Evidence(path=f"{SYSTEM_PATH}: {_ARCH_KEY}", seen=arch or "(absent)",
                  required="OS Should be 64 bit (AMD64)")
    if arch is None:
        assert ctx.target is not None
        if ctx.target.exists("/Windows/SysWOW64"):
            return passed("64-bit: Windows\\SysWOW64 exists (PROCESSOR_ARCHITECTURE absent)",
                          ev, Evidence(path="/Windows/SysWOW64", seen="present"))
        return skipped("PROCESSOR_ARCHITECTURE is absent and there is no Windows\\SysWOW64: "
                       "the architecture cannot be told", ev)
    if arch.upper() in _64BIT:
        return passed(f"64-bit Windows ({arch})", ev)
    return violated(f"{arch} is a 32-bit Windows", ev)


def describe(prod: Product) -> str:
    """``Windows Server 2019 Datacenter (build 17763.6414, Server)`` for messages."""
    build = "?" if prod.build is None else str(prod.build)
    if prod.ubr is not None:
        build += f".{prod.ubr}"
    kind = f", {prod.installation_type}" if prod.installation_type else ""
    return f"{prod.name or 'an unnamed Windows'} (build {build}{kind})"


def base_name(prod: Product) -> str | None:
    """``2019 Datacenter``: the release (from the build) and edition (from EditionID), or None
    when either is unknown or the system is not a Windows Server."""
    if prod.build is None or prod.edition is None:
        return None
    release = RELEASES.get(prod.build)
    edition = EDITIONS.get(prod.edition.casefold())
    if release is None or edition is None:
        return None
    return f"{release} {edition}"


@rule(id="WINDOWS-APPROVED-BASE", title="The image is an approved Windows Server base",
       severity=Severity.FAIL, os="windows", covers=("WIN-BASE", "OFR-WIN-BASE"),
       remediation="Build the image from a Windows Server release and edition the profile "
                   "approves (azure-current: 2016, 2019, 2022 or 2025, Datacenter or Standard); "
                   "start from Azure's own base image and keep its OS disk.",
       needs=("filesystem",))
def approved_base(ctx: CheckContext) -> Outcome:
    """The release is told by the build number (``CurrentBuild``: 9600 is 2012 R2, 7601 is
    2008 R2 SP1), the edition by ``EditionID``; both must match an entry of the profile's
    ``windows_approved_bases`` (``fnmatch`` patterns such as ``2008 R2 SP1 *``). SQL Server
    images of the 2015 guide are judged by their Windows alone: which SQL Server edition is
    installed is not judged offline."""
    prod = product(software_hive(ctx))
    allowed = [str(p) for p in _list(ctx.profile.thresholds.get("windows_approved_bases"))]
    name = base_name(prod)
    ev = Evidence(path=f"{SOFTWARE_PATH}: Microsoft\\Windows NT\\CurrentVersion",
                  seen=f"{describe(prod)}, EditionID {prod.edition or '(absent)'}"
                       + (f" = {name}" if name else ""),
                  required="Windows Server " + ", ".join(allowed))
    if (prod.installation_type or "").casefold() == "client":
        return violated(f"{describe(prod)} is a client Windows, not a Windows Server", ev)
    if name is None:
        return violated(f"{describe(prod)}: not a Windows Server release and edition vmimage "
                        "knows", ev)
    if any(fnmatchcase(name.casefold(), p.casefold()) for p in allowed):
        return passed(f"Windows Server {name} is an approved base in {ctx.profile.name}", ev)
    return violated(f"Windows Server {name} is not an approved base in {ctx.profile.name}", ev)


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


@rule(id="WINDOWS-RDP-ENABLED", title="Remote Desktop is enabled and open in the firewall",
       severity=Severity.FAIL, os="windows", covers=("CUR-WIN-RDP",),
       remediation="Enable Remote Desktop before sysprep (System Properties > Remote, or set "
                   "fDenyTSConnections to 0) and enable the firewall's Remote Desktop rules "
                   "(Enable-NetFirewallRule -DisplayGroup 'Remote Desktop').",
       needs=("filesystem",))
def rdp_enabled(ctx: CheckContext) -> Iterator[Outcome]:
    """``Terminal Server fDenyTSConnections`` in the control set ``Select\\Current`` names
    (the group policy's value wins when present), and an active inbound allow rule of the
    Remote Desktop firewall group."""
    system = system_hive(ctx)
    rdp = remote_desktop(system, software_hive(ctx))
    deny = rdp.policy_deny_connections
    where = ("Policies\\Microsoft\\Windows NT\\Terminal Services" if deny is not None
             else f"{current_control_set(system)}\\Control\\Terminal Server")
    deny = rdp.deny_connections if deny is None else deny
    hive = SOFTWARE_PATH if rdp.policy_deny_connections is not None else SYSTEM_PATH
    switch = Evidence(path=f"{hive}: "
                           f"{where} fDenyTSConnections",
                      seen="(absent)" if deny is None else str(deny), required="0")
    rules = ", ".join(f"{r.id} Active={r.fields.get('Active', '?')}" for r in rdp.rules)
    wall = Evidence(path=f"{SYSTEM_PATH}: FirewallRules (Remote Desktop group)",
                    seen=rules or "(no rule of the group)", required="an active inbound allow")
    if rdp.enabled is None:
        yield violated("fDenyTSConnections is absent: Remote Desktop is off by default", switch)
    elif not rdp.enabled:
        yield violated(f"Remote Desktop is disabled (fDenyTSConnections={deny})", switch)
    if not rdp.firewall_open:
        yield violated("no active inbound firewall rule allows Remote Desktop", wall)
    if rdp.enabled and rdp.firewall_open:
        yield passed("Remote Desktop is enabled and its firewall rule is active", switch, wall)


@rule(id="WINDOWS-UNSUPPORTED-ROLES", title="No server role or feature Azure does not support",
       severity=Severity.FAIL, os="windows", covers=("MS-1.1.6",),
       remediation="Uninstall the roles and features named (Uninstall-WindowsFeature NAME) "
                   "before sysprep; Azure does not support them in a Marketplace image.",
       needs=("filesystem",))
def unsupported_roles(ctx: CheckContext) -> Outcome:
    """Installed roles and features (Server Manager's ``ServerComponentCache``, InstallState
    1) against the profile's ``windows_unsupported_features`` (Failover Clustering, DHCP
    Server, Remote Access, RMS, WDS, iSNS, MPIO, NLB, PNRP, SNMP, WINS, Wireless LAN; Hyper-V
    in azure-2015)."""
    installed = server_features(software_hive(ctx))
    banned = {str(n).casefold(): str(n)
              for n in _list(ctx.profile.thresholds.get("windows_unsupported_features"))}
    found = [n for n in installed if n.casefold() in banned]
    ev = Evidence(path=f"{SOFTWARE_PATH}: Microsoft\\ServerManager\\ServicingStorage\\"
                       "ServerComponentCache",
                  seen=", ".join(found or installed) or "(no role or feature recorded)",
                  required="none of " + ", ".join(banned.values()))
    if found:
        return violated(f"unsupported role(s) or feature(s) installed: {', '.join(found)}", ev)
    return passed(f"none of {len(banned)} unsupported roles and features is installed "
                  f"({len(installed)} installed)", ev)
