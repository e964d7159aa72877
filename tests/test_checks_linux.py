"""Every Linux check on real images: the compliant Debian disk passes everything, and for
each check a copy that violates exactly that rule makes exactly that check fail (or warn),
with the right evidence.

The compliant disk is built once (tests/imagebuild.py: mmdebstrap, mkfs.ext4 -d, sfdisk);
each violation is a sparse copy edited in place with debugfs, so a case costs about a second.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests import imagebuild as ib
from vmimage.app.check import check_target
from vmimage.disk.convert import convert_in_place
from vmimage.findings import Finding, Status

pytestmark = pytest.mark.slow

Inject = Callable[[ib.Disk], None]


def edit(disk: ib.Disk, path: str, change: Callable[[str], str]) -> None:
    ib.edit_file(disk.path, disk.root_offset, path, change)


def put(disk: ib.Disk, path: str, data: str, mode: int = 0o644) -> None:
    ib.put_file(disk.path, disk.root_offset, path, data, mode=mode)


def rm(disk: ib.Disk, path: str) -> None:
    ib.remove_file(disk.path, disk.root_offset, path)


def run_debugfs(disk: ib.Disk, *commands: str) -> None:
    disk.inject(list(commands))


def set_pkg_version(package: str, version: str) -> Callable[[str], str]:
    """Change one package's Version in a dpkg status file."""
    def change(text: str) -> str:
        stanzas = text.split("\n\n")
        for i, stanza in enumerate(stanzas):
            if re.search(rf"^Package: {re.escape(package)}$", stanza, re.MULTILINE):
                stanzas[i] = re.sub(r"^Version: .*$", f"Version: {version}", stanza,
                                    flags=re.MULTILINE)
        return "\n\n".join(stanzas)
    return change


def drop_package(package: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        return "\n\n".join(s for s in text.split("\n\n")
                           if not re.search(rf"^Package: {re.escape(package)}$", s, re.M))
    return change


def waagent(key: str, value: str) -> Inject:
    def inject(d: ib.Disk) -> None:
        edit(d, "/etc/waagent.conf",
             lambda t: re.sub(rf"^#?\s*{re.escape(key)}=.*$", f"{key}={value}", t, flags=re.M)
             if re.search(rf"^#?\s*{re.escape(key)}=", t, re.M) else t + f"\n{key}={value}\n")
    return inject


def grub_linux_lines(change: Callable[[str], str]) -> Inject:
    """Apply ``change`` to every ``linux`` line of grub.cfg."""
    def inject(d: ib.Disk) -> None:
        edit(d, "/boot/grub/grub.cfg", lambda t: re.sub(
            r"^(\s*linux\s.*)$", lambda m: change(m.group(1)), t, flags=re.M))
    return inject


def add_user_with_password(d: ib.Disk) -> None:
    edit(d, "/etc/passwd", lambda t: t + "builder:x:1000:1000:Builder:/home/builder:/bin/bash\n")
    edit(d, "/etc/shadow", lambda t: t + "builder:$6$salt$4Jk0cXfS0Ql0Vh5a4Yb8cN2bXp1xQ9zMe0h"
                                         "Xr3vF2gYqW8jK1sL5tU7oP9iA3dC6eB4nM0zR2wT5yV8uI1oE7:"
                                         "19700:0:99999:7:::\n")


def mkdir_p(d: ib.Disk, path: str) -> None:
    if not ib.exists(d.path, d.root_offset, path):
        run_debugfs(d, f"mkdir {path}")


def root_authorized_keys(d: ib.Disk) -> None:
    mkdir_p(d, "/root/.ssh")
    put(d, "/root/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8k builder@host\n",
        0o600)


def elf32_sh(d: ib.Disk) -> None:
    # An ELF32 i386 header where /bin/sh's target is: what a 32-bit system ships.
    header = b"\x7fELF\x01\x01\x01" + bytes(9) + b"\x02\x00\x03\x00" + bytes(32)
    target = ib.resolve(d.path, d.root_offset, "/usr/bin/dash")
    ib.put_file(d.path, d.root_offset, target, header, mode=0o755)


def old_kernel(d: ib.Disk) -> None:
    release = d.layout.kernel
    run_debugfs(d, f"ln /usr/lib/modules/{release} /usr/lib/modules/4.9.0-9-amd64",
                f"unlink /usr/lib/modules/{release}")
    edit(d, "/usr/lib/os-release", lambda t: re.sub(r'^VERSION_ID=.*$', 'VERSION_ID="9"', t,
                                                    flags=re.M))


def nm_enabled(d: ib.Disk) -> None:
    put(d, "/usr/sbin/NetworkManager", "#!/bin/sh\n", 0o755)
    put(d, "/lib/systemd/system/NetworkManager.service",
        "[Unit]\nDescription=Network Manager\n[Service]\nExecStart=/usr/sbin/NetworkManager\n"
        "[Install]\nWantedBy=multi-user.target\n")
    run_debugfs(d, "symlink /etc/systemd/system/multi-user.target.wants/NetworkManager.service "
                   "/lib/systemd/system/NetworkManager.service")


def firewall_rules(d: ib.Disk) -> None:
    put(d, "/etc/nftables.conf", "#!/usr/sbin/nft -f\nflush ruleset\ntable inet filter {\n"
        "  chain input {\n    type filter hook input priority 0;\n    tcp dport 22 drop\n  }\n}\n")
    put(d, "/lib/systemd/system/nftables.service",
        "[Unit]\nDescription=nftables\n[Service]\nType=oneshot\nExecStart=/usr/sbin/nft -f "
        "/etc/nftables.conf\n[Install]\nWantedBy=sysinit.target\n")
    mkdir_p(d, "/etc/systemd/system/sysinit.target.wants")
    run_debugfs(d, "symlink /etc/systemd/system/sysinit.target.wants/nftables.service "
                "/lib/systemd/system/nftables.service")


def remove_iptables(d: ib.Disk) -> None:
    for path in ("/usr/sbin/iptables", "/usr/sbin/nft"):
        if ib.exists(d.path, d.root_offset, path):
            rm(d, path)


def drop_security_suite(d: ib.Disk) -> None:
    """Remove every -security source, wherever this root keeps its apt sources."""
    for path in ("/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources"):
        if ib.exists(d.path, d.root_offset, path):
            edit(d, path, lambda t: re.sub(r"\S*-security\S*", "", t) if "Suites:" in t else
                 "\n".join(ln for ln in t.splitlines() if "security" not in ln) + "\n")


def extra_data_partition(d: ib.Disk) -> None:
    """A second filesystem on the OS disk, mounted at /srv (sfdisk + mkfs.ext4 at its offset).

    The root partition fills the compliant disk, so the disk grows by 1 GiB first (sparse).
    """
    with open(d.path, "r+b") as f:
        f.truncate(f.seek(0, 2) + 1024**3)
    ib.run(["sfdisk", "--append", "--no-reread", "--no-tell-kernel", str(d.path)],
           input=b",512MiB,L\n")
    dump = ib.run(["sfdisk", "--json", str(d.path)]).stdout.decode()
    starts = [int(s) for s in re.findall(r'"start":\s*(\d+)', dump)]
    offset = max(starts) * 512
    ib.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={offset},lazy_journal_init=1",
            "-U", "11111111-2222-3333-4444-555555555555", str(d.path), "524288k"])
    edit(d, "/etc/fstab", lambda t: t + "UUID=11111111-2222-3333-4444-555555555555 /srv ext4 "
                                        "defaults 0 2\n")


@dataclass(frozen=True)
class Case:
    check_id: str
    inject: Inject
    expect: Status
    message: str  # a fragment of the finding's message
    profile: str = "azure-current"
    evidence_path: str | None = None
    #: Findings that must come with this violation (an old agent is one that does not update).
    also: frozenset[str] = frozenset()


CASES = [
    Case("LINUX-FIRST-MIB-EMPTY", lambda d: ib.write_mbr_gap(d.path, 100), Status.FAIL,
         "sectors 100-100"),
    Case("LINUX-SINGLE-ROOT-PARTITION", extra_data_partition, Status.WARNING, "/srv"),
    Case("LINUX-NO-SWAP", lambda d: edit(d, "/etc/fstab", lambda t: t + "/swapfile none swap sw "
                                         "0 0\n"), Status.FAIL, "fstab-file",
         evidence_path="/etc/fstab"),
    Case("LINUX-NO-SWAP", waagent("ResourceDisk.EnableSwap", "y"), Status.FAIL, "waagent",
         evidence_path="/etc/waagent.conf"),
    Case("LINUX-KERNEL-CMDLINE", grub_linux_lines(lambda ln: ln.replace("console=ttyS0", "")),
         Status.FAIL, "missing console=ttyS0", evidence_path="/boot/grub/grub.cfg"),
    Case("LINUX-KERNEL-CMDLINE", grub_linux_lines(lambda ln: ln.replace("rootdelay=300", "")),
         Status.WARNING, "rootdelay=300 missing"),
    Case("LINUX-KERNEL-CMDLINE", grub_linux_lines(lambda ln: ln.replace("rootdelay=300", "")),
         Status.FAIL, "rootdelay=300 missing", profile="azure-2015"),
    Case("LINUX-KERNEL-CMDLINE-FORBIDDEN",
         grub_linux_lines(lambda ln: ln + " libata.atapi_enabled=0"), Status.FAIL,
         "libata.atapi_enabled=0"),
    Case("LINUX-KERNEL-HYPERV", lambda d: rm(d, f"/usr/lib/modules/{d.layout.kernel}/kernel/"
                                                "drivers/hv/hv_vmbus.ko"), Status.FAIL, "hv_vmbus"),
    Case("LINUX-KERNEL-SACK", old_kernel, Status.FAIL, "4.9.168"),
    Case("LINUX-KERNEL-MODULES",
         lambda d: edit(d, f"/boot/config-{d.layout.kernel}",
                        lambda t: t.replace("CONFIG_CIFS=m", "# CONFIG_CIFS is not set")),
         Status.WARNING, "CONFIG_CIFS"),
    Case("LINUX-AGENT-VERSION", lambda d: (edit(d, "/var/lib/dpkg/status",
                                                set_pkg_version("waagent", "2.2.40-1")),
                                           waagent("AutoUpdate.Enabled", "n")(d)),
         Status.FAIL, "older than 2.2.53.1", also=frozenset({"LINUX-AGENT-AUTOUPDATE"})),
    Case("LINUX-AGENT-ENABLED", lambda d: rm(d, "/etc/systemd/system/multi-user.target.wants/"
                                                "walinuxagent.service"), Status.FAIL, "not enabled"),
    Case("LINUX-AGENT-PROVISIONING-TOOLS", lambda d: rm(d, "/usr/bin/eject"), Status.FAIL,
         "eject not found"),
    Case("LINUX-SSH-HOSTKEYS-AT-BOOT", lambda d: rm(d, "/etc/systemd/system/multi-user.target."
                                                    "wants/ssh-hostkeys.service"),
         Status.FAIL, "nothing makes them before sshd starts"),
    Case("LINUX-AGENT-AUTOUPDATE", waagent("AutoUpdate.Enabled", "n"), Status.WARNING,
         "AutoUpdate.Enabled=n", evidence_path="/etc/waagent.conf"),
    Case("LINUX-AGENT-REGENERATE-HOSTKEYS", waagent("Provisioning.RegenerateSshHostKeyPair", "n"),
         Status.FAIL, "not y", evidence_path="/etc/waagent.conf"),
    Case("LINUX-AGENT-DELETE-ROOT-PASSWORD", waagent("Provisioning.DeleteRootPassword", "n"),
         Status.FAIL, "not y", evidence_path="/etc/waagent.conf"),
    Case("LINUX-ARCH-64BIT", elf32_sh, Status.FAIL, "not a 64-bit"),
    Case("LINUX-PYTHON-VERSION",
         lambda d: edit(d, "/var/lib/dpkg/status", lambda t: re.sub(
             r"(Package: python3[.\d]*(?:-minimal)?\n(?:.+\n)*?Version: )3\.\d+[^\n]*",
             r"\g<1>3.7.3-1", t)), Status.WARNING, "older than 3.9"),
    Case("LINUX-PYASN1", lambda d: (edit(d, "/var/lib/dpkg/status",
                                         drop_package("python3-pyasn1")),
                                    run_debugfs(d, "unlink /usr/lib/python3/dist-packages/pyasn1")),
         Status.FAIL, "pyasn1 is not installed"),
    Case("LINUX-OPENSSL-VERSION", lambda d: edit(d, "/var/lib/dpkg/status",
                                                 set_pkg_version("openssl", "1.1.0l-1")),
         Status.FAIL, "older than 3.0.0", evidence_path="/var/lib/dpkg/status"),
    Case("LINUX-GLIBC-GHOST", lambda d: edit(d, "/var/lib/dpkg/status",
                                             set_pkg_version("libc6", "2.17-1")),
         Status.WARNING, "GHOST"),
    Case("LINUX-OMI-VERSION", lambda d: edit(d, "/var/lib/dpkg/status", lambda t: t.rstrip("\n")
                                             + "\n\nPackage: omi\nStatus: install ok installed\n"
                                               "Architecture: amd64\nVersion: 1.6.8-0\n"
                                               "Description: OMI\n"),
         Status.FAIL, "OMIGOD"),
    Case("LINUX-REPOSITORIES", lambda d: drop_security_suite(d), Status.WARNING, "-security"),
    # What `systemctl disable ssh` removes: the wants link and the sshd.service alias.
    Case("LINUX-SSH-ENABLED", lambda d: (rm(d, "/etc/systemd/system/multi-user.target.wants/"
                                               "ssh.service"),
                                         rm(d, "/etc/systemd/system/sshd.service")),
         Status.WARNING, "not enabled"),
    Case("LINUX-SSH-CLIENT-ALIVE", lambda d: edit(d, "/etc/ssh/sshd_config", lambda t: re.sub(
        r"^ClientAliveInterval .*$", "ClientAliveInterval 300", t, flags=re.M)),
         Status.FAIL, "outside 1 to 235", evidence_path="/etc/ssh/sshd_config"),
    Case("LINUX-SSH-CLIENT-ALIVE", lambda d: (
        edit(d, "/etc/ssh/sshd_config", lambda t: re.sub(r"^ClientAliveInterval .*\n", "", t,
                                                         flags=re.M)),
        put(d, "/etc/ssh/sshd_config.d/azure.conf", "ClientAliveInterval 180\n")),
         Status.WARNING, "set only in /etc/ssh/sshd_config.d/azure.conf"),
    Case("LINUX-SSH-HOSTKEYS-ABSENT", lambda d: put(d, "/etc/ssh/ssh_host_ed25519_key",
                                                    "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600),
         Status.FAIL, "host key", evidence_path="/etc/ssh/ssh_host_ed25519_key"),
    Case("LINUX-NETWORKMANAGER-DISABLED", nm_enabled, Status.WARNING, "installed and enabled"),
    Case("LINUX-IFUPDOWN", lambda d: rm(d, "/usr/sbin/ifup"), Status.FAIL, "ifup"),
    Case("LINUX-DHCP", lambda d: edit(d, "/etc/network/interfaces", lambda t: t.replace(
        "inet dhcp", "inet static\n    address 10.0.0.4/24")), Status.FAIL, "eth0 static"),
    Case("LINUX-RESOLV-CONF-REMOVED", lambda d: put(d, "/etc/resolv.conf", "nameserver 10.1.2.3\n"),
         Status.WARNING, "nameserver 10.1.2.3", evidence_path="/etc/resolv.conf"),
    Case("LINUX-DHCP-LEASES-REMOVED",
         lambda d: put(d, "/var/lib/dhcp/dhclient.eth0.leases", "lease {\n  fixed-address 10.0.0.4;"
                                                                "\n}\n"),
         Status.FAIL, "lease file", evidence_path="/var/lib/dhcp/dhclient.eth0.leases"),
    Case("LINUX-HOSTNAME-RESET", lambda d: put(d, "/etc/hostname", "build-vm-07\n"),
         Status.WARNING, "build-vm-07", evidence_path="/etc/hostname"),
    Case("LINUX-IPV6-NOT-CONFIGURED", lambda d: edit(d, "/etc/network/interfaces", lambda t: t +
                                                     "iface eth0 inet6 static\n    address "
                                                     "2001:db8::4/64\n"),
         Status.WARNING, "static IPv6"),
    Case("LINUX-UDEV-PERSISTENT-NET",
         lambda d: put(d, "/etc/udev/rules.d/70-persistent-net.rules",
                       'SUBSYSTEM=="net", ATTR{address}=="00:15:5d:01:02:03", NAME="eth0"\n'),
         Status.WARNING, "70-persistent-net.rules"),
    Case("LINUX-ROOT-PASSWORD-LOCKED", lambda d: edit(d, "/etc/shadow", lambda t: re.sub(
        r"^root:[^:]*:", "root:$6$x$0123456789abcdefghijABCDEFGHIJ0123456789abcdefghijABCDEF./:",
        t, flags=re.M)), Status.FAIL, "usable password hash", evidence_path="/etc/shadow"),
    Case("LINUX-NO-DEFAULT-ACCOUNTS", add_user_with_password, Status.FAIL,
         "user builder has a usable password", evidence_path="/etc/shadow"),
    Case("LINUX-NO-DEFAULT-ACCOUNTS", root_authorized_keys, Status.FAIL,
         "user root has SSH keys", evidence_path="/root/.ssh/authorized_keys"),
    Case("LINUX-SHELL-HISTORY-EMPTY", lambda d: put(d, "/root/.bash_history", "ls\n", 0o600),
         Status.FAIL, "/root/.bash_history holds 3 bytes", evidence_path="/root/.bash_history"),
    Case("LINUX-SUDO-NO-TARGETPW", lambda d: put(d, "/etc/sudoers.d/suse", "Defaults targetpw\n",
                                                 0o440),
         Status.WARNING, "targetpw", evidence_path="/etc/sudoers.d/suse"),
    Case("LINUX-IPTABLES-INSTALLED", remove_iptables, Status.WARNING, "no iptables"),
    Case("LINUX-FIREWALL-NO-RULES", firewall_rules, Status.FAIL, "nftables.service",
         evidence_path="/etc/nftables.conf"),
    Case("LINUX-MACHINE-ID-EMPTY", lambda d: put(d, "/etc/machine-id",
                                                 "3d1219c7c4c5404aaa1f6d2a48adfda4\n", 0o444),
         Status.WARNING, "every VM will share", evidence_path="/etc/machine-id"),
    Case("LINUX-CLOUD-INIT-CLEAN",
         lambda d: run_debugfs(d, "mkdir /var/lib/cloud", "mkdir /var/lib/cloud/instances",
                               "mkdir /var/lib/cloud/instances/iid-datasource-azure"),
         Status.WARNING, "cloud-init instance"),
]


def not_passing(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status in (Status.FAIL, Status.WARNING)]


@pytest.mark.parametrize("profile", ["azure-2015", "azure-current"])
def test_compliant_image_passes_every_check(compliant_vhd, profile):
    report = check_target(str(compliant_vhd), profile)
    bad = not_passing(report.findings)
    assert bad == [], [f"{f.check_id}: {f.message}" for f in bad]
    skips = [f for f in report.findings if f.status is Status.SKIP]
    assert all(f.message for f in skips)  # a skip always says why
    assert {f.check_id for f in skips} <= {"LINUX-SECURITY-PATCHES"}
    assert report.exit_code == 0
    assert report.system["id"] == "debian"


def test_every_linux_check_has_a_violation_case():
    from vmimage.app.catalog import all_rules

    linux = {m.id for m in all_rules() if m.os == "linux"}
    covered = {c.check_id for c in CASES}
    # LINUX-NO-LVM is covered by test_checks_layouts.py (an LVM disk);
    # LINUX-SECURITY-PATCHES needs a distribution's security data: tests/test_secdata_*.py.
    assert linux - covered == {"LINUX-NO-LVM", "LINUX-SECURITY-PATCHES"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.check_id}-{c.message[:24]}")
def test_violation_fails_exactly_its_check(case: Case, violation_copy):
    disk = violation_copy
    case.inject(disk)
    convert_in_place(disk.path)  # the copy becomes a fixed VHD: footer appended, no copy
    report = check_target(str(disk.path), case.profile)
    bad = not_passing(report.findings)
    assert {f.check_id for f in bad} == {case.check_id} | case.also, \
        [f"{f.check_id}: {f.message}" for f in bad]
    hits = [f for f in bad if case.message in f.message and f.check_id == case.check_id]
    assert hits, [f.message for f in bad]
    assert {f.status for f in hits} == {case.expect}
    if case.evidence_path:
        assert any(e.path == case.evidence_path for f in hits for e in f.evidence), \
            [e for f in hits for e in f.evidence]
    assert all(f.remediation for f in hits)
    assert report.exit_code == (1 if case.expect is Status.FAIL else 0)
