"""Boot rules: the kernel command line, the kernel's Hyper-V drivers and patches."""

from __future__ import annotations

import re
from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.errors import VmimageError
from vmimage.facts.bootcfg import FORBIDDEN_ARGS, REQUIRED_CONSOLES, KernelCmdline
from vmimage.facts.versions import dpkg_compare, rpm_compare, upstream_version
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError


def _normal_entries(ctx: CheckContext) -> list[KernelCmdline]:
    entries = [c for c in ctx.system.kernel_cmdlines if not c.recovery]
    if not entries:
        raise VmimageError("no kernel command line found in /boot/grub/grub.cfg, BLS entries, "
                           "grubenv or /etc/default/grub")
    return entries


def _has_console(entry: KernelCmdline, name: str, device: str) -> bool:
    prefix = f"{name}="
    return any(a.startswith(prefix) and a[len(prefix):].split(",")[0] == device
               for a in entry.args)


@rule(id="LINUX-KERNEL-CMDLINE", title="The kernel boots with console=ttyS0 earlyprintk=ttyS0 "
       "rootdelay=300", severity=Severity.FAIL,
       covers=("LNX-CMDLINE", "MS-40", "LISA-verify_serial_console_is_enabled"),
       remediation="Add `console=ttyS0 earlyprintk=ttyS0 rootdelay=300` to GRUB_CMDLINE_LINUX in "
                   "/etc/default/grub and regenerate grub.cfg (update-grub or grub2-mkconfig); "
                   "serial console output is required even where SSH is blocked.",
       needs=("filesystem",))
def kernel_cmdline(ctx: CheckContext) -> Iterator[Outcome]:
    """The grub.cfg that boots is what counts (rulings); with no boot entry at all, it fails."""
    if not ctx.system.kernel_cmdlines:
        yield violated("no kernel command line found: no grub.cfg, BLS entry, grubenv or "
                       "/etc/default/grub", Evidence(path="/boot/grub/grub.cfg",
                                                     seen="missing",
                                                     required="console=ttyS0#earlyprintk=ttyS0#"
                                                              "rootdelay=300"))
        return
    entries = _normal_entries(ctx)
    for entry in entries:
        where = Evidence(path=entry.path, line=entry.line, seen=" ".join(entry.args),
                         required="console=ttyS0 earlyprintk=ttyS0 rootdelay=300")
        name = entry.title or entry.source
        found = []
        missing = [f"{n}={d}" for n, d in REQUIRED_CONSOLES if not _has_console(entry, n, d)]
        if missing:
            found.append(violated(f"{name}: missing {' '.join(missing)}", where))
        if entry.value("rootdelay") != "300":
            sev = None if ctx.profile.flag("require_rootdelay") else Severity.WARNING
            found.append(violated(f"{name}: rootdelay=300 missing (seen "
                                  f"{entry.value('rootdelay') or 'none'})", where, severity=sev))
        if found:
            yield from found
            return  # the first entry that fails decides; later ones would repeat the finding
    yield passed("console=ttyS0 earlyprintk=ttyS0 rootdelay=300 on every boot entry",
                 Evidence(path=entries[0].path, line=entries[0].line,
                          seen=" ".join(entries[0].args)))


@rule(id="LINUX-KERNEL-CMDLINE-FORBIDDEN", title="The kernel command line has no parameters "
       "that break Azure's storage", severity=Severity.FAIL,
       covers=("LNX-CMDLINE", "LISA-verify_grub"),
       remediation="Remove libata.atapi_enabled=0 and reserve=0x1f0,0x8 from the kernel "
                   "command line.",
       needs=("filesystem",))
def kernel_cmdline_forbidden(ctx: CheckContext) -> Iterator[Outcome]:
    """LISA's verify_grub refuses these two parameters."""
    entries = _normal_entries(ctx)
    found = False
    for entry in entries:
        for arg in entry.args:
            if arg in FORBIDDEN_ARGS:
                found = True
                yield violated(f"{arg} on {entry.title or entry.source}",
                               Evidence(path=entry.path, line=entry.line, seen=arg,
                                        required="absent"))
    if not found:
        yield passed("no forbidden kernel parameter", Evidence(path=entries[0].path))


def installed_kernels(ctx: CheckContext) -> list[str]:
    """Kernel releases with modules in /lib/modules, newest first."""
    assert ctx.target is not None
    try:
        names = ctx.target.iterdir("/lib/modules")
    except OSError:
        return []
    return sorted(names, key=_release_key, reverse=True)


def _release_key(release: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", release)[:4]]


def _module_present(ctx: CheckContext, release: str, module: str, subdir: str) -> bool:
    assert ctx.target is not None
    base = f"/lib/modules/{release}"
    if ctx.target.glob(f"{base}/kernel/{subdir}/{module}.ko*"):
        return True
    try:
        return f"/{module}.ko" in ctx.target.read_text(f"{base}/modules.builtin")
    except UnreadableError:
        raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
    except OSError:
        return False


@rule(id="LINUX-KERNEL-HYPERV", title="The kernel is 3.0 or newer with the Hyper-V drivers "
       "(Linux Integration Services)", severity=Severity.FAIL, covers=("LNX-KERNEL",),
       remediation="Install a distribution kernel built with CONFIG_HYPERV, hv_vmbus, hv_storvsc "
                   "and hv_netvsc (every current distribution kernel has them).",
       needs=("filesystem",))
def kernel_hyperv(ctx: CheckContext) -> Outcome:
    """Without LIS the VM cannot see its disk or network on Hyper-V."""
    kernels = installed_kernels(ctx)
    if not kernels:
        return violated("no kernel modules found in /lib/modules",
                        Evidence(path="/lib/modules", seen="empty", required="a kernel >= 3.0"))
    release = kernels[0]
    ev = Evidence(path=f"/lib/modules/{release}", seen=release,
                  required=">= 3.0 with hv_vmbus, hv_storvsc, hv_netvsc")
    if _release_key(release)[:1] < [3]:
        return violated(f"kernel {release} is older than 3.0", ev)
    missing = [m for m, d in (("hv_vmbus", "drivers/hv"), ("hv_storvsc", "drivers/scsi"),
                              ("hv_netvsc", "drivers/net/hyperv"))
               if not _module_present(ctx, release, m, d)]
    if missing:
        return violated(f"kernel {release} lacks {', '.join(missing)}", ev)
    return passed(f"kernel {release} has hv_vmbus, hv_storvsc and hv_netvsc (the storvsc "
                  "stability patch is in every kernel since 3.x)", ev)


#: Minimum kernel package versions with the SACK fixes (CVE-2019-11477/8/9), §1.3.
_SACK_MIN = {("debian", "9"): ("dpkg", "4.9.168-1+deb9u3"),
             ("debian", "10"): ("dpkg", "4.19.37-5"),
             ("ubuntu", "16.04"): ("dpkg", "4.15.0-1049"),
             ("ubuntu", "18.04"): ("dpkg", "4.18.0-1023"),
             ("rhel", "7.6"): ("rpm", "3.10.0-957.21.3"), ("centos", "7.6"): ("rpm", "3.10.0-957.21.3"),
             ("rhel", "7.7"): ("rpm", "3.10.0-1062.1.1"), ("centos", "7.7"): ("rpm", "3.10.0-1062.1.1"),
             ("rhel", "8.0"): ("rpm", "4.18.0-80.4.2"), ("rhel", "8.1"): ("rpm", "4.18.0-147")}


@rule(id="LINUX-KERNEL-SACK", title="The kernel has the TCP SACK vulnerability fixes",
       severity=Severity.FAIL, covers=("LNX-PATCHES", "MS-52"),
       remediation="Update the kernel to the distribution's release with the fixes for "
                   "CVE-2019-11477, -11478 and -11479.",
       needs=("filesystem",))
def kernel_sack(ctx: CheckContext) -> Outcome:
    """Microsoft rejects kernels older than its SACK table; kernels from 5.2 on are fixed."""
    kernels = installed_kernels(ctx)
    if not kernels:
        return skipped("no kernel in /lib/modules to judge")
    release = kernels[0]
    ev = Evidence(path=f"/lib/modules/{release}", seen=release)
    if _release_key(release)[:2] >= [5, 2]:
        return passed(f"kernel {release} is newer than every SACK-affected release", ev)
    osr = ctx.system.os_release
    key = (osr.id, osr.version_id) if osr else ("", "")
    rule = _SACK_MIN.get(key)
    if rule is None:
        return skipped(f"no SACK minimum known for {key[0] or 'this OS'} {key[1]} and kernel "
                       f"{release}", ev)
    kind, minimum = rule
    pkg_version = release
    if kind == "dpkg":
        pkg = ctx.system.packages.get(f"linux-image-{release}")
        pkg_version = upstream_version(pkg.version) if pkg else release
        newer = dpkg_compare(pkg.version if pkg else release, minimum) >= 0
    else:
        newer = rpm_compare(release.rsplit(".el", 1)[0], minimum) >= 0
    ev = Evidence(path=ev.path, seen=pkg_version, required=f">= {minimum}")
    if newer:
        return passed(f"kernel {release} is at or above {minimum}", ev)
    return violated(f"kernel {release} is older than {minimum}, the first with the SACK fixes",
                    ev)


@rule(id="LINUX-KERNEL-MODULES", title="The kernel has watchdog and CIFS support",
       severity=Severity.WARNING, covers=("LISA-verify_essential_kernel_modules",),
       remediation="Use a kernel built with CONFIG_WATCHDOG and CONFIG_CIFS (built in or as "
                   "modules).",
       needs=("filesystem",))
def kernel_modules(ctx: CheckContext) -> Outcome:
    """LISA needs CONFIG_WATCHDOG and CONFIG_CIFS; /boot/config-RELEASE says how it was built."""
    kernels = installed_kernels(ctx)
    if not kernels:
        return skipped("no kernel in /lib/modules to judge")
    path = f"/boot/config-{kernels[0]}"
    assert ctx.target is not None
    try:
        config = ctx.target.read_text(path)
    except UnreadableError:
        raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
    except OSError:
        return skipped(f"{path} is absent: the kernel's build options are unknown")
    values = dict(re.findall(r"^(CONFIG_\w+)=(\S+)", config, re.MULTILINE))
    missing = [k for k in ("CONFIG_WATCHDOG", "CONFIG_CIFS") if values.get(k) not in ("y", "m")]
    ev = Evidence(path=path, seen=", ".join(f"{k}={values.get(k, 'unset')}"
                                            for k in ("CONFIG_WATCHDOG", "CONFIG_CIFS")),
                  required="y or m")
    if missing:
        return violated(f"{', '.join(missing)} not set", ev)
    return passed("CONFIG_WATCHDOG and CONFIG_CIFS are set", ev)
