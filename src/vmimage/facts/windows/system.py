"""What the Windows checks need from the SYSTEM and SOFTWARE hives (certification-research.md
§2): the product and build, whether the image is generalized, Remote Desktop and its firewall
rules, the pagefile, the architecture, installed server roles, and Windows Update's state.

Each fact is a small function taking the hive(s) it reads. A value that is missing, or of the
wrong type, is None: an image without it is a finding for a check to judge, not an error here.
Paths under the control set go through ``Select\\Current`` (:func:`current_control_set`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmimage.facts.windows.registry import RegValue, current_control_set, read_hive

if TYPE_CHECKING:
    from vmimage.facts.windows.registry import Hive
    from vmimage.targets.base import Target

SYSTEM_HIVE = "/Windows/System32/config/SYSTEM"
SOFTWARE_HIVE = "/Windows/System32/config/SOFTWARE"
CURRENT_VERSION = "Microsoft\\Windows NT\\CurrentVersion"
SETUP_STATE = "Microsoft\\Windows\\CurrentVersion\\Setup\\State"
SERVER_COMPONENTS = "Microsoft\\ServerManager\\ServicingStorage\\ServerComponentCache"
AUTO_UPDATE = "Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update"
CBS = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
TS_POLICY = "Policies\\Microsoft\\Windows NT\\Terminal Services"
FIREWALL_RULES = "Services\\SharedAccess\\Parameters\\FirewallPolicy\\FirewallRules"
#: The Remote Desktop firewall group, as the built-in rules name it (``EmbedCtxt``).
RDP_GROUP = "@FirewallAPI.dll,-28752"
#: The most values listed from one key here (the firewall has a few hundred rules).
RULES_MAX = 10_000


def read_system_hives(target: Target) -> tuple[Hive, Hive]:
    """The SYSTEM and SOFTWARE hives of the Windows volume the target reads."""
    return read_hive(target, SYSTEM_HIVE), read_hive(target, SOFTWARE_HIVE)


def _str(value: RegValue | None) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: RegValue | None) -> int | None:
    return value if isinstance(value, int) else None


def _control(system: Hive, path: str) -> str:
    return f"{current_control_set(system)}\\{path}"


@dataclass(frozen=True, slots=True)
class Product:
    """``Windows NT\\CurrentVersion``: which Windows, edition and build the image is."""

    name: str | None  # ProductName: "Windows Server 2022 Datacenter"
    edition: str | None  # EditionID: "ServerDatacenter"
    installation_type: str | None  # "Server", "Server Core", "Client"
    build: int | None  # CurrentBuild (or CurrentBuildNumber): 20348
    ubr: int | None  # update build revision: the patch level within the build
    major: int | None  # CurrentMajorVersionNumber, else from CurrentVersion ("6.3")
    minor: int | None

    @property
    def version(self) -> tuple[int, int, int, int] | None:
        """``major.minor.build.ubr`` as file versions of the kernel say it, when all known."""
        if self.major is None or self.minor is None or self.build is None or self.ubr is None:
            return None
        return self.major, self.minor, self.build, self.ubr


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def product(software: Hive) -> Product:
    """The product, edition and version from ``Windows NT\\CurrentVersion``."""
    key = software.key(CURRENT_VERSION)

    def get(name: str) -> RegValue | None:
        return key.value(name) if key is not None else None

    build = _number(_str(get("CurrentBuild"))) or _number(_str(get("CurrentBuildNumber")))
    major, minor = _int(get("CurrentMajorVersionNumber")), _int(get("CurrentMinorVersionNumber"))
    if major is None:
        old = (_str(get("CurrentVersion")) or "").split(".")
        major = _number(old[0])
        minor = _number(old[1]) if len(old) > 1 else None
    return Product(_str(get("ProductName")), _str(get("EditionID")),
                   _str(get("InstallationType")), build, _int(get("UBR")), major, minor)


def image_state(software: Hive) -> str | None:
    """``Setup\\State ImageState``: ``IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE`` after
    ``sysprep /generalize /oobe``, ``IMAGE_STATE_COMPLETE`` on a used, specialized system."""
    return _str(software.value(SETUP_STATE, "ImageState"))


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One Windows Firewall rule from its registry string (``v2.30|Action=Allow|...``)."""

    id: str  # the value name: "RemoteDesktop-UserMode-In-TCP"
    fields: dict[str, str]  # the first of each field: Action, Active, Dir, Protocol, LPort...

    @property
    def active(self) -> bool:
        """``Active=TRUE``."""
        return self.fields.get("Active", "").upper() == "TRUE"

    @property
    def inbound_allow(self) -> bool:
        """An inbound rule that allows."""
        return self.fields.get("Dir") == "In" and self.fields.get("Action") == "Allow"


def parse_rule(rule_id: str, text: str) -> FirewallRule:
    """A firewall rule string: ``|``-separated ``Name=value`` fields after a version."""
    fields: dict[str, str] = {}
    for part in text.split("|")[1:]:
        name, sep, value = part.partition("=")
        if sep:
            fields.setdefault(name, value)
    return FirewallRule(rule_id, fields)


@dataclass(frozen=True, slots=True)
class RemoteDesktop:
    """Whether Remote Desktop accepts connections, and the firewall rules of its group."""

    deny_connections: int | None  # Terminal Server fDenyTSConnections: 0 allows
    policy_deny_connections: int | None  # the group policy's, which overrides it
    rules: tuple[FirewallRule, ...]  # the Remote Desktop group's rules

    @property
    def enabled(self) -> bool | None:
        """Connections allowed: the policy's setting when present, else the service's."""
        deny = self.policy_deny_connections
        deny = self.deny_connections if deny is None else deny
        return None if deny is None else deny == 0

    @property
    def firewall_open(self) -> bool:
        """An active inbound allow rule of the Remote Desktop group."""
        return any(r.active and r.inbound_allow for r in self.rules)


def remote_desktop(system: Hive, software: Hive | None = None) -> RemoteDesktop:
    """Remote Desktop's switch and the firewall rules of its group (``EmbedCtxt``)."""
    deny = _int(system.value(_control(system, "Control\\Terminal Server"),
                             "fDenyTSConnections"))
    policy = _int(software.value(TS_POLICY, "fDenyTSConnections")) if software else None
    key = system.key(_control(system, FIREWALL_RULES))
    rules = []
    for raw in (key.raw_values()[:RULES_MAX] if key is not None else []):
        text = raw.value
        if isinstance(text, str):
            rule = parse_rule(raw.name, text)
            if rule.fields.get("EmbedCtxt", "").casefold() == RDP_GROUP.casefold():
                rules.append(rule)
    return RemoteDesktop(deny, policy, tuple(rules))


def paging_files(system: Hive) -> list[str] | None:
    """``Memory Management PagingFiles``: ``["C:\\pagefile.sys 0 0"]``, or
    ``["?:\\pagefile.sys"]`` for a system-managed one; ``[]`` or ``[""]`` for none."""
    value = system.value(_control(system, "Control\\Session Manager\\Memory Management"),
                         "PagingFiles")
    if isinstance(value, str):
        return [value]
    return value if isinstance(value, list) else None


def architecture(system: Hive) -> str | None:
    """``PROCESSOR_ARCHITECTURE`` of the system environment: ``AMD64``, ``ARM64``, ``x86``."""
    return _str(system.value(_control(system, "Control\\Session Manager\\Environment"),
                             "PROCESSOR_ARCHITECTURE"))


def server_features(software: Hive) -> list[str]:
    """Server roles and features installed (``ServerComponentCache\\<Name>`` with
    ``InstallState`` 1), by name, sorted; empty on a client or a Server without the cache."""
    key = software.key(SERVER_COMPONENTS)
    if key is None:
        return []
    return sorted(k.name for k in key.subkeys() if k.value("InstallState") == 1)


@dataclass(frozen=True, slots=True)
class UpdateState:
    """Windows Update's last successful install, and whether a restart is outstanding."""

    last_success: str | None  # "2024-05-14 10:02:11" (UTC), as Windows Update writes it
    reboot_required: bool  # Auto Update\RebootRequired exists
    reboot_pending: bool  # Component Based Servicing\RebootPending exists


def update_state(software: Hive) -> UpdateState:
    """Windows Update's ``Results\\Install LastSuccessTime`` and the restart markers."""
    return UpdateState(_str(software.value(f"{AUTO_UPDATE}\\Results\\Install", "LastSuccessTime")),
                       software.key(f"{AUTO_UPDATE}\\RebootRequired") is not None,
                       software.key(f"{CBS}\\RebootPending") is not None)
