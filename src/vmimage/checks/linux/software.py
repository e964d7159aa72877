"""Required software: architecture, Python, pyasn1, OpenSSL, glibc, OMI, repositories, patches."""

from __future__ import annotations

import re
import struct

from vmimage.checks.context import CheckContext
from vmimage.facts.versions import upstream_version, version_at_least
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError

#: How many packages with a security update a message names (the evidence lists all).
MAX_NAMED = 20
_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm"}


@rule(id="LINUX-ARCH-64BIT", title="The operating system is 64-bit",
       severity=Severity.FAIL, covers=("MS-49", "LISA-verify_azure_64bit_os"),
       remediation="Build the image from a 64-bit (x86_64 or arm64) distribution.",
       needs=("filesystem",))
def arch_64bit(ctx: CheckContext) -> Outcome:
    """`uname -m` live; offline, read from the ELF header of /bin/sh (what it would say)."""
    assert ctx.target is not None
    running = ctx.system.machine
    if running is not None:
        ev = Evidence(path="uname -m", seen=running, required="x86_64,amd64 or aarch64,arm64")
        if running in ("x86_64", "aarch64", "arm64", "amd64"):
            return passed(f"{running} (64-bit)", ev)
        return violated(f"uname -m says {running}: not a 64-bit x86_64 or arm64 system", ev)
    for path in ("/bin/sh", "/usr/bin/env", "/sbin/init"):
        try:
            head = ctx.target.read_bytes(path, 64)
        except UnreadableError:
            raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
        except OSError:
            continue
        if head[:4] != b"\x7fELF" or len(head) < 20:
            continue
        elf_class = head[4]
        endian = "<" if head[5] == 1 else ">"
        machine = struct.unpack(f"{endian}H", head[18:20])[0]
        name = _ELF_MACHINES.get(machine, f"machine {machine}")
        ev = Evidence(path=path, seen=f"ELF{32 if elf_class == 1 else 64} {name}",
                      required="x86_64,amd64 or aarch64,arm64")
        if elf_class == 2 and machine in (62, 183):
            return passed(f"{name} (64-bit)", ev)
        return violated(f"{path} is {ev.seen}: not a 64-bit x86_64 or arm64 system", ev)
    return skipped("no ELF executable found at /bin/sh, /usr/bin/env or /sbin/init")


def _python_version(ctx: CheckContext) -> tuple[str, str] | None:
    """The newest Python, from the package database or the interpreter's file name."""
    pkgs = ctx.system.packages
    best: tuple[str, str] | None = None
    for name, pkg in pkgs.packages.items():
        if re.fullmatch(r"python\d?(\.\d+)?(-minimal)?|python3\d*", name):
            ver = upstream_version(pkg.version)
            if best is None or version_at_least("plain", ver, best[0]):
                best = (ver, f"{pkgs.path}: {name} {pkg.version}")
    if best:
        return best
    assert ctx.target is not None
    for path in ctx.target.glob("/usr/bin/python[23].*"):
        match = re.search(r"python(\d+\.\d+)$", path)
        if match:
            return match.group(1), path
    return None


@rule(id="LINUX-PYTHON-VERSION", title="Python is installed at the required version",
       severity=Severity.FAIL, covers=("LNX-PYTHON", "MS-45", "LISA-verify_python_version"),
       remediation="Install the distribution's python3 package (the agent and the VM "
                   "extensions need it).",
       needs=("filesystem",))
def python_version(ctx: CheckContext) -> Outcome:
    """The guide: 2.6+; LISA today: 3.9+."""
    minimum = ctx.profile.text("python_min_version")
    found = _python_version(ctx)
    if found is None:
        return violated("no Python installed", Evidence(seen="none", required=f">= {minimum}"))
    version, where = found
    ev = Evidence(path=where.split(":")[0], seen=version, required=f">= {minimum}")
    if version_at_least("plain", version, minimum):
        return passed(f"Python {version} >= {minimum}", ev)
    return violated(f"Python {version} is older than {minimum}", ev)


@rule(id="LINUX-PYASN1", title="The Python pyasn1 package is installed",
       severity=Severity.FAIL, covers=("LNX-PYASN1",),
       remediation="Install python3-pyasn1 (python-pyasn1 on older distributions).",
       needs=("filesystem",))
def pyasn1(ctx: CheckContext) -> Outcome:
    """The 2015 agent needed pyasn1 to read the provisioning certificates."""
    pkg = ctx.system.packages.first("python3-pyasn1", "python-pyasn1", "python3-asn1")
    if pkg:
        return passed(f"{pkg.name} {pkg.version}",
                      Evidence(path=ctx.system.packages.path, seen=f"{pkg.name} {pkg.version}"))
    assert ctx.target is not None
    found = ctx.target.glob("/usr/lib/python3*/*-packages/pyasn1") + \
        ctx.target.glob("/usr/lib/python2*/*-packages/pyasn1")
    if found:
        return passed("pyasn1 is installed", Evidence(path=found[0]))
    return violated("pyasn1 is not installed",
                    Evidence(path=ctx.system.packages.path, seen="absent",
                             required="python3-pyasn1"))


@rule(id="LINUX-OPENSSL-VERSION", title="OpenSSL is installed at a supported version",
       severity=Severity.FAIL,
       covers=("LNX-OPENSSL", "MS-44", "LISA-verify_openssl_version"),
       remediation="Install or update the distribution's openssl package (3.0 or newer; 1.1.1 "
                   "and 1.0.2 have extended support).",
       needs=("filesystem",))
def openssl_version(ctx: CheckContext) -> Outcome:
    """The guide recommends 1.0+; LISA wants 3.0+ or exactly 1.1.1 / 1.0.2."""
    minimum = ctx.profile.text("openssl_min_version")
    pkg = ctx.system.packages.first("openssl")
    if pkg is None:
        return violated("openssl is not installed",
                        Evidence(path=ctx.system.packages.path, seen="absent",
                                 required=f">= {minimum}"))
    version = upstream_version(pkg.version)
    ev = Evidence(path=ctx.system.packages.path, seen=f"openssl {pkg.version}",
                  required=f">= {minimum}")
    extended = re.match(r"^1\.(1\.1|0\.2)", version) and minimum.startswith("3")
    if version_at_least("plain", version, minimum) or extended:
        return passed(f"OpenSSL {version}", ev)
    return violated(f"OpenSSL {version} is older than {minimum}", ev)


@rule(id="LINUX-GLIBC-GHOST", title="glibc is not affected by GHOST (CVE-2015-0235)",
       severity=Severity.WARNING, covers=("LNX-PATCHES", "MS-50"),
       remediation="Update glibc (libc6 on Debian and Ubuntu) to the distribution's patched "
                   "release.",
       needs=("filesystem",))
def glibc_ghost(ctx: CheckContext) -> Outcome:
    """GHOST was fixed upstream in glibc 2.18; older versions need a distribution patch."""
    pkg = ctx.system.packages.first("libc6", "glibc")
    if pkg is None:
        return skipped("no libc6 or glibc package found")
    version = upstream_version(pkg.version)
    ev = Evidence(path=ctx.system.packages.path, seen=f"{pkg.name} {pkg.version}",
                  required=">= 2.18 or a patched release")
    if version_at_least("plain", version, "2.18"):
        return passed(f"glibc {version} is newer than GHOST", ev)
    return violated(f"glibc {version} predates the GHOST fix: make sure it carries the "
                    "distribution's patch", ev)


@rule(id="LINUX-OMI-VERSION", title="OMI, if installed, has the OMIGOD fixes",
       severity=Severity.FAIL, covers=("LISA-verify_omi_version",),
       remediation="Update omi to 1.6.8-1 or later (CVE-2021-38647/38648/38645/38649).",
       needs=("filesystem",))
def omi_version(ctx: CheckContext) -> Outcome:
    """Old OMI gives root to anyone who reaches its port."""
    pkg = ctx.system.packages.first("omi")
    if pkg is None:
        return passed("omi is not installed")
    ev = Evidence(path=ctx.system.packages.path, seen=f"omi {pkg.version}", required=">= 1.6.8.1")
    if version_at_least("plain", upstream_version(pkg.version).replace("-", "."), "1.6.8.1"):
        return passed(f"omi {pkg.version}", ev)
    return violated(f"omi {pkg.version} is vulnerable to OMIGOD", ev)


@rule(id="LINUX-SECURITY-PATCHES", title="Every security patch of the distribution is installed",
       severity=Severity.FAIL, covers=("LNX-PATCHES",),
       remediation="Run the distribution's update (apt-get upgrade, dnf update) as the last step "
                   "before generalizing, from the image's own security repositories.",
       needs=("filesystem",))
def security_patches(ctx: CheckContext) -> Outcome:
    """Compared with the distribution's own security data, found from the image's package
    sources (``--security-data``: fetched, or a directory prepared by ``vmimage
    security-data fetch``): each package with a security update is named with its installed
    and fixed versions and the advisories the data names. Without data it skips, saying
    why: never a pass on data not read."""
    from vmimage.facts.security import SecurityDataUnavailable

    if ctx.security is None:
        return skipped("not compared: --security-data off (fetch the data with --security-data "
                       "auto, or prepare it with vmimage security-data fetch)")
    try:
        found = ctx.security(ctx.system)
    except SecurityDataUnavailable as exc:
        return skipped(f"no security data: {exc}")
    date = f" of {found.date}" if found.date else ""
    source = ctx.system.packages.path
    lines = {p.name: p.line for p in ctx.system.packages.packages.values()}
    notes = f" ({'; '.join(found.notes)})" if found.notes else ""
    unsupported = [Evidence(path=source, line=lines.get(u.package),
                            seen=f"{u.package} {u.installed}", required=u.reason)
                   for u in found.unsupported]
    without = (f"; {len(found.unsupported)} package(s) without full security support: "
               + ", ".join(u.package for u in found.unsupported[:MAX_NAMED])
               if found.unsupported else "")
    if not found.updates:
        checked = Evidence(path=source, seen=f"{found.compared} packages",
                           required=f"no security update in {found.data}")
        said = (f"{found.compared} installed packages compared with the security data{date}: "
                f"none has a security update ({found.data})")
        if unsupported:
            return Outcome(None, said + without, (checked, *unsupported), Severity.WARNING)
        return passed(said, checked)
    shown = "; ".join(u.line for u in found.updates[:MAX_NAMED])
    more = f"; and {len(found.updates) - MAX_NAMED} more" if len(found.updates) > MAX_NAMED else ""
    evidence = tuple(Evidence(path=source, line=lines.get(u.package),
                              seen=f"{u.package} {u.installed}",
                              required=f">= {u.fixed}" + (f" ({', '.join(u.advisories)})"
                                                          if u.advisories else ""))
                     for u in found.updates)
    return Outcome(None, f"{len(found.updates)} installed package(s) have a security update in "
                         f"the data{date}: {shown}{more}{without}{notes}",
                   (*evidence, *unsupported))


@rule(id="LINUX-REPOSITORIES", title="Package repositories with updates are configured",
       severity=Severity.WARNING, covers=("LNX-PATCHES", "LISA-verify_repository_installed"),
       remediation="Configure the distribution's main, -updates and -security repositories so "
                   "customers receive patches.",
       needs=("filesystem",))
def repositories(ctx: CheckContext) -> Outcome:
    """LISA checks update repositories are configured (and reachable, which needs a live VM)."""
    assert ctx.target is not None
    osr = ctx.system.os_release
    if osr is None or osr.id not in ("debian", "ubuntu"):
        return skipped("repository layout is checked for Debian and Ubuntu only")
    texts = []
    for path in ["/etc/apt/sources.list", *ctx.target.glob("/etc/apt/sources.list.d/*")]:
        try:
            texts.append(ctx.target.read_text(path))
        except UnreadableError:
            raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
        except OSError:
            continue
    joined = "\n".join(line for t in texts for line in t.splitlines()
                       if line.strip() and not line.lstrip().startswith("#"))
    missing = [s for s in ("-updates", "-security") if s not in joined]
    ev = Evidence(path="/etc/apt/sources.list", seen="; ".join(joined.splitlines()[:3]) or "none",
                  required="main, -updates and -security suites")
    if not joined:
        return violated("no apt repository configured", ev)
    if missing:
        return violated(f"no {' or '.join(missing)} suite configured", ev)
    return passed("main, -updates and -security suites are configured", ev)
