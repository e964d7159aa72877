"""Live sources of the facts: what the running system itself says, where it can say it.

The point of a live check is what changed at first boot (swap made by cloud-init or the agent,
a kernel command line rewritten), so for a live target these sources win over the files:
``/proc/swaps`` (swap in use), ``/proc/cmdline`` (the command line the kernel booted with),
``uname -m``, ``sshd -T``, ``ip -j addr`` (sshd's own reading of its configuration), ``systemctl is-enabled``,
``dpkg-query -W`` / ``rpm -qa``. Each function returns None when the target is not live or the
source is unavailable (no sshd, no systemctl, not root): the caller then keeps the file-based
fact, so a live check never knows less than an offline one.

Commands go through :meth:`~vmimage.targets.base.LiveTarget.run`; nothing here knows SSH.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmimage.targets.base import live

if TYPE_CHECKING:
    from vmimage.facts.bootcfg import KernelCmdline
    from vmimage.facts.packages import PackageDb
    from vmimage.facts.swap import SwapSource
    from vmimage.targets.base import Target

PROC_SWAPS = "/proc/swaps"
PROC_CMDLINE = "/proc/cmdline"
#: Where sshd is on every distribution (a plain user's PATH may lack ``/usr/sbin``).
SSHD = "/usr/sbin/sshd"
_DPKG_FORMAT = "${Package}\\t${Version}\\t${Architecture}\\t${Status}\\n"
_RPM_FORMAT = "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"


def _known_units(target: Target) -> list[str]:
    """The units the checks ask about that have a unit file here (systemd knows no other)."""
    from vmimage.facts.services import ASKED_UNITS, unit_file_exists

    return [u for u in ASKED_UNITS if unit_file_exists(target, u)]


#: The commands that do not depend on the files (asked while the snapshot streams).
FIXED_COMMANDS = (("uname", "-m"), (SSHD, "-T"), ("dpkg-query", "-W", "-f", _DPKG_FORMAT),
                  ("rpm", "-qa", "--qf", _RPM_FORMAT), ("ip", "-j", "addr"))


def commands(target: Target) -> list[list[str]]:
    """Every command the live facts run, as they run it: asked in one go by :func:`warm`.
    The units' states come from one ``systemctl is-enabled`` of them all (one line each)."""
    units = _known_units(target)
    return [*(list(c) for c in FIXED_COMMANDS),
            *([["systemctl", "is-enabled", *units]] if units else [])]


def warm(target: Target) -> None:
    """Ask a live target every command of :func:`commands` (one round trip, one sudo, side by
    side on the VM) while the file snapshot streams: under TCG each command alone costs a
    quarter to half a second, mostly ``sudo`` and ``systemctl`` starting. The units to ask
    ``systemctl`` about are known only from the snapshot, so theirs comes last."""
    runner = live(target)
    if runner is not None:
        runner.prefetch([list(c) for c in FIXED_COMMANDS], wait=False)
        runner.snapshot(list(SNAPSHOT_ROOTS))
        runner.prefetch(commands(target))


#: What the checks read most, fetched in one stream first (:func:`warm`): configuration, the
#: unit directories (``/usr/lib``: ``/lib`` is a link on merged-/usr systems), the boot loader's
#: configuration, the agent's and the DHCP client's state.
SNAPSHOT_ROOTS = ("/etc", "/usr/lib/systemd/system", "/lib/systemd/system", "/boot/grub",
                  "/boot/grub2", "/var/lib/dhcp", "/var/lib/waagent", "/var/lib/cloud", "/root")


def _text(target: Target, path: str) -> str | None:
    try:
        return target.read_text(path)
    except OSError:
        return None


def swaps(target: Target) -> list[SwapSource] | None:
    """Swap in use, from ``/proc/swaps``: each active area is a source (``kind="active"``)."""
    from vmimage.facts.swap import SwapSource

    if live(target) is None:
        return None
    text = _text(target, PROC_SWAPS)
    if text is None:
        return None
    found = []
    for number, line in enumerate(text.splitlines()[1:], start=2):
        fields = line.split()
        if len(fields) >= 3:
            what = fields[0].replace("\\040", " ")
            found.append(SwapSource("active", f"{fields[1]} {what} in use ({fields[2]} KiB)",
                                    PROC_SWAPS, number, what))
    return found


def cmdline(target: Target) -> KernelCmdline | None:
    """The command line the running kernel was booted with."""
    from vmimage.facts.bootcfg import KernelCmdline

    if live(target) is None:
        return None
    text = _text(target, PROC_CMDLINE)
    if text is None or not text.strip():
        return None
    args = tuple(text.split())
    recovery = any(a in ("single", "recovery", "emergency") for a in args)
    return KernelCmdline(args, PROC_CMDLINE, 1, "proc", "running kernel", recovery,
                         default=True)


def machine(target: Target) -> str | None:
    """``uname -m`` of the running kernel (``x86_64``, ``aarch64``)."""
    runner = live(target)
    if runner is None:
        return None
    result = runner.run(["uname", "-m"], timeout=10, max_output=4096)
    value = result.text().strip()
    return value if result.ok and value else None


def sshd_effective(target: Target) -> dict[str, str] | None:
    """``sshd -T``: every keyword (lower case) with the value sshd uses for a connection
    matching no ``Match`` block; None when sshd cannot say (not installed, not root)."""
    runner = live(target)
    if runner is None:
        return None
    result = runner.run([SSHD, "-T"], timeout=20, max_output=1024 * 1024)
    if not result.ok:
        return None
    values: dict[str, str] = {}
    for line in result.text().splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword:
            values.setdefault(keyword.lower(), value.strip())
    return values or None


@dataclass(frozen=True)
class Address:
    """One IPv4 address an interface holds, from ``ip -j addr``; ``dynamic`` when it has a
    lifetime (a DHCP client put it there: dhclient, networkd and NetworkManager all give the
    lease time), not when it was set by hand or by a static configuration."""

    interface: str
    cidr: str
    dynamic: bool
    valid_seconds: int | None


def addresses(target: Target) -> list[Address] | None:
    """Every IPv4 address of the running system; None when ``ip -j`` cannot say (iproute2
    too old for JSON, not installed). IPv6 is left out: router advertisements (QEMU's own
    included) give addresses with lifetimes that say nothing about DHCP."""
    runner = live(target)
    if runner is None:
        return None
    result = runner.run(["ip", "-j", "addr"], timeout=10, max_output=1024 * 1024)
    try:
        links = json.loads(result.text()) if result.ok else None
    except ValueError:
        return None
    if not isinstance(links, list):
        return None
    found = []
    for link in links:
        if not isinstance(link, dict):
            continue
        for info in link.get("addr_info") or []:
            if not isinstance(info, dict) or info.get("family") != "inet":
                continue
            valid = info.get("valid_life_time")
            lifetime = valid if isinstance(valid, int) and valid < 0xFFFFFFFF else None
            found.append(Address(str(link.get("ifname", "?")),
                                 f"{info.get('local', '?')}/{info.get('prefixlen', '?')}",
                                 bool(info.get("dynamic")) or lifetime is not None, lifetime))
    return found


def unit_state(target: Target, unit: str) -> str | None:
    """``systemctl is-enabled UNIT``: ``enabled``, ``disabled``, ``masked``, ``static``...;
    None when systemctl does not know the unit (no unit file, not asked) or is not there."""
    from vmimage.facts.services import unit_file_exists

    runner = live(target)
    if runner is None or not unit_file_exists(target, unit):
        return None
    units = _known_units(target)
    if unit in units:  # one line per unit when systemd knows them all, as it should
        batch = runner.run(["systemctl", "is-enabled", *units], timeout=15, max_output=65536)
        states = batch.text().split()
        if len(states) == len(units):
            return states[units.index(unit)]
    result = runner.run(["systemctl", "is-enabled", unit], timeout=15, max_output=4096)
    lines = result.text().strip().splitlines()
    state = lines[-1].strip() if lines else ""
    if not state or " " in state or state == "not-found" or result.exit_status not in (0, 1):
        return None  # "Failed to get unit file state ...: No such file" goes to stderr
    return state


def packages(target: Target) -> PackageDb | None:
    """The installed packages as the package manager lists them (dpkg, else rpm)."""
    from vmimage.facts.packages import InstalledPackage, PackageDb, is_installed

    runner = live(target)
    if runner is None:
        return None
    result = runner.run(["dpkg-query", "-W", "-f", _DPKG_FORMAT], timeout=60)
    if result.ok and result.stdout:
        found: dict[str, InstalledPackage] = {}
        for line in result.text().splitlines():
            name, _, rest = line.partition("\t")
            version, arch, status = ([*rest.split("\t"), "", ""])[:3]
            if name and is_installed(status) and name not in found:
                found[name] = InstalledPackage(name, version, arch, "dpkg", None,
                                               "dpkg-query -W")
        return PackageDb("dpkg", "dpkg-query -W", found)
    result = runner.run(["rpm", "-qa", "--qf", _RPM_FORMAT], timeout=60)
    if result.ok and result.stdout:
        rpms: dict[str, InstalledPackage] = {}
        for line in result.text().splitlines():
            name, version, arch = ([*line.split("\t"), "", ""])[:3]
            if name and name not in rpms:
                version = version.removeprefix("0:")
                rpms[name] = InstalledPackage(name, version, arch, "rpm", None, "rpm -qa")
        return PackageDb("rpm", "rpm -qa", rpms)
    return None
