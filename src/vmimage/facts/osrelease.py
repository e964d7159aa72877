"""Which distribution and release the image holds: ``os-release(5)``.

Version minimums (SACK kernels, the agent, GHOST) depend on the distribution, and the package
names differ between families (``waagent`` on Debian, ``WALinuxAgent`` on RHEL). systemd's rule
is followed: ``/etc/os-release`` first, ``/usr/lib/os-release`` when it is missing. The file is
shell-compatible, so values are unquoted as a shell would, never expanded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vmimage.facts import _shell
from vmimage.targets.base import Target

PATHS = ("/etc/os-release", "/usr/lib/os-release")
#: Pre-systemd release files (RHEL/CentOS 6, Oracle Linux 6, SLES 11): ID they imply.
LEGACY = (("/etc/centos-release", "centos"), ("/etc/oracle-release", "ol"),
          ("/etc/redhat-release", "rhel"), ("/etc/SuSE-release", "sles"))
#: Red Hat Enterprise Linux and its rebuilds: LISA's ``Redhat`` class (CentOS, Rocky, Alma and
#: Oracle Linux are subclasses of it there). Fedora itself is not one of them.
RHEL_IDS = frozenset({"rhel", "centos", "rocky", "almalinux", "ol", "scientific", "cloudlinux",
                      "eurolinux", "virtuozzo", "navy"})
SUSE_IDS = frozenset({"sles", "sled", "sles_sap", "opensuse", "opensuse-leap",
                      "opensuse-tumbleweed", "sle-micro"})


@dataclass(frozen=True)
class OsRelease:
    """The identifying fields of os-release, with every field kept for evidence."""

    id: str
    id_like: tuple[str, ...]
    version_id: str
    pretty_name: str
    path: str
    version_codename: str = ""
    #: Every field as read, and the line each was set on.
    fields: dict[str, str] = field(default_factory=dict, compare=False)
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def family(self) -> tuple[str, ...]:
        """ID followed by ID_LIKE: what the system is and what it resembles, nearest first."""
        return (self.id, *self.id_like)

    def line(self, key: str) -> int | None:
        """The line a field was set on."""
        return self.lines.get(key)

    @property
    def distro(self) -> str:
        """The family whose tools and files the system uses: ``ubuntu``, ``debian``, ``rhel``
        (RHEL and its rebuilds), ``fedora`` (Fedora and other RPM systems like it), ``suse``,
        or ``other``.

        The network stack, the package names and LISA's per-distribution exemptions follow
        this, not ``ID`` alone: Rocky Linux says ``ID=rocky`` and ``ID_LIKE="rhel centos
        fedora"``, Oracle Linux only ``ID_LIKE="fedora"``, Linux Mint ``ID_LIKE="ubuntu"``.
        """
        like = set(self.id_like)
        if self.id == "ubuntu" or "ubuntu" in like:
            return "ubuntu"
        if self.id == "debian" or "debian" in like:
            return "debian"
        if self.id in RHEL_IDS or like & {"rhel", "centos"}:
            return "rhel"
        if self.id in SUSE_IDS or self.id.startswith("sle") or like & {"suse", "opensuse"}:
            return "suse"
        if self.id == "fedora" or "fedora" in like:
            return "fedora"
        return "other"

    @property
    def major(self) -> int | None:
        """The major release from ``VERSION_ID`` (``9`` for ``9.4``), None when it has none."""
        match = re.match(r"\d+", self.version_id)
        return int(match.group()) if match else None


def parse_os_release(text: str, path: str) -> OsRelease:
    """Parse os-release text; ``ID`` defaults to ``linux`` and the names as the spec says."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for assignment in _shell.assignments(text, expand=False):
        values[assignment.name] = assignment.value
        lines[assignment.name] = assignment.line
    return OsRelease(
        id=values.get("ID", "linux").lower(),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "Linux")),
        path=path,
        version_codename=values.get("VERSION_CODENAME", ""),
        fields=values,
        lines=lines,
    )


def parse_legacy_release(text: str, path: str, distro: str) -> OsRelease:
    """``CentOS release 6.10 (Final)`` or SUSE's ``VERSION = 11`` / ``PATCHLEVEL = 4``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    version = re.search(r"release\s+(\d+(?:\.\d+)*)", first)
    version_id = version.group(1) if version else ""
    if distro == "sles":
        fields = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", text, re.M))
        version_id = fields.get("VERSION", "") + (
            f".{fields['PATCHLEVEL']}" if fields.get("PATCHLEVEL", "0") != "0" else "")
    like = ("fedora",) if distro in ("centos", "ol", "rhel") else ("suse",)
    return OsRelease(distro, like, version_id, first, path,
                     fields={"PRETTY_NAME": first}, lines={"PRETTY_NAME": 1})


def read_os_release(target: Target) -> OsRelease | None:
    """The first os-release file that exists, then the older release files, else None."""
    for path in PATHS:
        try:
            text = target.read_text(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        return parse_os_release(text, path)
    for path, distro in LEGACY:
        try:
            text = target.read_text(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        return parse_legacy_release(text, path, distro)
    return None
