"""The network rules on real roots of each distribution, and azure-current's severities.

Each distribution brings its NIC up through its own stack (``tests/distro_roots.py`` builds
them): ifupdown on Debian, netplan on Ubuntu, NetworkManager on RHEL 8+ (with RPMs built by
``rpmbuild`` and installed by ``rpm --root``), network-scripts on RHEL/CentOS 6 and 7, wicked
on SLES. "Networking can be restarted" and "the NIC comes up with DHCP" are judged in that
stack, with file and line, not by whether ``/sbin/ifup`` exists. NetworkManager is the RHEL
family's own stack from 7 on: LISA skips it there, and so does azure-current; azure-2015 keeps
the guide's exemption (CentOS 7.x and derivatives only).

Then the audit of azure-current against certification-research.md §6: every rule §6 lists
among the warnings is a warning there (and keeps the guide's level in azure-2015), shown on a
real root and a real LVM disk.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import distro_roots as dr
from tests import imagebuild as ib
from vmimage.app.check import check_target
from vmimage.disk.convert import convert_in_place
from vmimage.facts.osrelease import parse_os_release
from vmimage.findings import Finding, Severity, Status
from vmimage.profiles import load_profile
from vmimage.rules import REGISTRY, effective_severity

pytestmark = pytest.mark.slow

NM = "LINUX-NETWORKMANAGER-DISABLED"
RESTART = "LINUX-IFUPDOWN"
DHCP = "LINUX-DHCP"
NET = (NM, RESTART, DHCP)
PASS, FAIL, WARN = Status.PASS, Status.FAIL, Status.WARNING
BOTH = ("azure-current", "azure-2015")

def findings(target: Path, profile: str) -> dict[str, Finding]:
    return {f.check_id: f for f in check_target(str(target), profile).findings}


def net(target: Path, profile: str) -> dict[str, Status]:
    found = findings(target, profile)
    return {i: found[i].status for i in NET}


def evidence(finding: Finding) -> list[tuple[str | None, int | None]]:
    return [(e.path, e.line) for e in finding.evidence]


# --- which distribution is which -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "distro", "major"), [
    (dr.UBUNTU_2204, "ubuntu", 22),
    (dr.ROCKY_9, "rhel", 9),
    (dr.RHEL_9, "rhel", 9),
    (dr.CENTOS_7, "rhel", 7),
    ('ID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n', "rhel", 8),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', "rhel", 9),
    ('ID=fedora\nVERSION_ID=40\n', "fedora", 40),
    (dr.SLES_15, "suse", 15),
    ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n', "suse", 15),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n', "ubuntu", 21),
    ('ID=debian\nVERSION_ID="12"\n', "debian", 12),
    ('ID=debian\n', "debian", None),  # Debian testing has no VERSION_ID
])
def test_distribution_family(text: str, distro: str, major: int | None) -> None:
    osr = parse_os_release(text, "/etc/os-release")
    assert (osr.distro, osr.major) == (distro, major)


# --- Ubuntu: netplan -----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_ubuntu_netplan_networkd_without_ifup_passes(profile: str, made) -> None:
    root = made(dr.ubuntu_root())
    assert not (root / "usr/sbin/ifup").exists()  # no ifupdown at all, as on Ubuntu
    found = findings(root, profile)
    assert {i: found[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
    assert "netplan (networkd)" in found[RESTART].message
    # line 9 of the YAML: `dhcp4: true` under eth0
    assert evidence(found[DHCP]) == [("/etc/netplan/50-cloud-init.yaml", 9)]


def test_ubuntu_netplan_networkmanager_renderer(made) -> None:
    yaml = dr.NETPLAN_AZURE.replace("    version: 2\n", "    version: 2\n    renderer: "
                                                       "NetworkManager\n")
    root = made(dr.ubuntu_root(yaml, renderer_nm=True))
    current = findings(root, "azure-current")
    assert "netplan (NetworkManager)" in current[RESTART].message
    assert {i: current[i].status for i in NET} == {NM: WARN, RESTART: PASS, DHCP: PASS}
    # the guide disables NetworkManager outside CentOS 7: azure-2015 fails it
    assert net(root, "azure-2015") == {NM: FAIL, RESTART: PASS, DHCP: PASS}


def test_ubuntu_static_netplan_fails_with_file_and_line(made) -> None:
    root = made(dr.ubuntu_root(dr.NETPLAN_STATIC))
    found = findings(root, "azure-current")
    assert found[RESTART].status is PASS
    assert found[DHCP].status is FAIL
    assert "eth0 static" in found[DHCP].message
    assert evidence(found[DHCP]) == [("/etc/netplan/50-cloud-init.yaml", 6)]  # addresses:
    assert "10.0.0.4/24" in (found[DHCP].evidence[0].seen or "")


def test_ubuntu_with_networkd_masked_brings_nothing_up(made) -> None:
    root = made(dr.ubuntu_root())
    dr.systemctl(root, "disable", "systemd-networkd.service")
    dr.systemctl(root, "mask", "systemd-networkd.service")
    found = findings(root, "azure-current")
    assert found[RESTART].status is FAIL and found[DHCP].status is FAIL
    assert "no network stack starts at boot" in found[RESTART].message
    assert "masked" in found[RESTART].message


# --- Debian: ifupdown, or systemd-networkd -------------------------------------------------------


def test_debian_with_systemd_networkd_instead_of_ifupdown(made) -> None:
    root = made(dr.debian_copy())
    dr.systemctl(root, "disable", "networking.service")
    for path in ("/etc/network/interfaces", "/usr/sbin/ifup", "/usr/sbin/ifdown"):
        dr.remove(root, path)
    dr.put(root, "/etc/systemd/network/10-eth0.network",
           "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n")
    dr.systemctl(root, "enable", "systemd-networkd.service")
    found = findings(root, "azure-current")
    assert {i: found[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
    assert "systemd-networkd" in found[RESTART].message
    assert evidence(found[DHCP]) == [("/etc/systemd/network/10-eth0.network", 5)]


def test_debian_whose_ifupdown_never_starts_fails(made) -> None:
    """ifup is installed and eth0 says dhcp, but networking.service is not enabled."""
    root = made(dr.debian_copy())
    dr.systemctl(root, "disable", "networking.service")
    found = findings(root, "azure-current")
    assert found[RESTART].status is FAIL and found[DHCP].status is FAIL
    assert "ifupdown (not enabled)" in found[RESTART].message
    assert any(e.path and e.path.endswith("networking.service") for e in found[RESTART].evidence)


# --- the RHEL family: NetworkManager, network-scripts ------------------------------------------


@pytest.mark.parametrize("os_release", [dr.ROCKY_9, dr.RHEL_9], ids=["rocky9", "rhel9"])
def test_rhel9_networkmanager_keyfile(os_release: str, rpms, made) -> None:
    root = made(dr.rhel_root(rpms, os_release))
    assert dr.rpm_query(root) == ["NetworkManager-1.46.0-26.el9_4.x86_64",
                                  "WALinuxAgent-2.9.1.1-1.el9.x86_64"]
    current = findings(root, "azure-current")
    assert {i: current[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
    assert "not applicable" in current[NM].message and "LISA" in current[NM].message
    assert "/usr/bin/nmcli" in current[RESTART].message
    keyfile = "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection"
    assert evidence(current[DHCP]) == [(keyfile, 10)]
    assert current["LINUX-AGENT-VERSION"].status is PASS  # WALinuxAgent read from rpmdb.sqlite
    # the 2015 guide exempts only CentOS 7.x and its derivatives
    legacy = findings(root, "azure-2015")
    assert {i: legacy[i].status for i in NET} == {NM: FAIL, RESTART: PASS, DHCP: PASS}
    assert legacy[NM].message == "NetworkManager is installed and enabled"


def test_rhel9_static_keyfile_fails_with_file_and_line(rpms, made) -> None:
    keyfile = dr.NM_KEYFILE_DHCP.replace("method=auto", "method=manual\naddress1=10.0.0.4/24,"
                                                        "10.0.0.1")
    root = made(dr.rhel_root(rpms, keyfile=keyfile))
    found = findings(root, "azure-current")
    assert found[DHCP].status is FAIL and found[RESTART].status is PASS
    assert "eth0 manual" in found[DHCP].message
    assert evidence(found[DHCP]) == [
        ("/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection", 10)]


def test_rhel8_ifcfg_through_networkmanager(rpms, made) -> None:
    root = made(dr.rhel_root(rpms, dr.RHEL_8, keyfile=None, ifcfg=dr.IFCFG_RHEL_DHCP))
    found = findings(root, "azure-current")
    assert {i: found[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
    assert "NetworkManager (ifcfg-rh)" in found[DHCP].message
    assert evidence(found[DHCP]) == [("/etc/sysconfig/network-scripts/ifcfg-eth0", 3)]


def test_rhel8_ifcfg_not_on_boot_fails(rpms, made) -> None:
    ifcfg = dr.IFCFG_RHEL_DHCP.replace("ONBOOT=yes", "ONBOOT=no")
    root = made(dr.rhel_root(rpms, dr.RHEL_8, keyfile=None, ifcfg=ifcfg))
    found = findings(root, "azure-current")
    assert found[DHCP].status is FAIL
    assert "not brought up at boot" in found[DHCP].message
    assert found[DHCP].evidence[0].seen == "BOOTPROTO=dhcp, ONBOOT=no"


def test_networkmanager_without_nmcli_cannot_be_restarted(rpms, made) -> None:
    root = made(dr.rhel_root(rpms, nm=dr.networkmanager(nmcli=False)))
    found = findings(root, "azure-current")
    assert found[RESTART].status is FAIL
    assert "/usr/bin/nmcli is missing" in found[RESTART].message
    assert evidence(found[RESTART]) == [("/usr/bin/nmcli", None)]


def test_rhel9_with_networkmanager_disabled_brings_nothing_up(rpms, made) -> None:
    root = made(dr.rhel_root(rpms, nm_enabled=False))
    found = findings(root, "azure-current")
    assert {i: found[i].status for i in NET} == {NM: PASS, RESTART: FAIL, DHCP: FAIL}
    assert "NetworkManager (not enabled)" in found[RESTART].message


@pytest.mark.parametrize("profile", BOTH)
def test_centos7_keeps_networkmanager_in_both_profiles(profile: str, rpms, made) -> None:
    root = made(dr.rhel_root(rpms, dr.CENTOS_7, keyfile=None, ifcfg=dr.IFCFG_RHEL_DHCP,
                             legacy_network=True))
    assert net(root, profile) == {NM: PASS, RESTART: PASS, DHCP: PASS}


def test_rhel6_networkmanager_must_not_be_installed_today(rpms, made) -> None:
    """LISA: below RHEL 7, `rpm -q NetworkManager` must say it is not installed; the guide
    only wants it disabled, as chkconfig left it."""
    root = made(dr.rhel6_root(rpms))
    current = findings(root, "azure-current")
    assert {i: current[i].status for i in NET} == {NM: WARN, RESTART: PASS, DHCP: PASS}
    assert "0.8.1-113.el6" in current[NM].message
    assert evidence(current[NM]) == [("/var/lib/rpm/rpmdb.sqlite", None)]
    assert "network-scripts" in current[RESTART].message
    assert net(root, "azure-2015") == {NM: PASS, RESTART: PASS, DHCP: PASS}


# --- SUSE: wicked --------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_sles_wicked_dhcp(profile: str, rpms, made) -> None:
    root = made(dr.suse_root(rpms))
    found = findings(root, profile)
    assert {i: found[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
    assert "wicked" in found[RESTART].message
    assert evidence(found[DHCP]) == [("/etc/sysconfig/network/ifcfg-eth0", 1)]


@pytest.mark.parametrize(("ifcfg", "fragment", "line"), [
    ("BOOTPROTO='static'\nIPADDR='10.0.0.4/24'\nSTARTMODE='auto'\n", "eth0 static", 1),
    ("BOOTPROTO='dhcp'\n", "not brought up at boot", 1),  # STARTMODE defaults to manual
], ids=["static", "startmode-manual"])
def test_sles_wicked_without_dhcp_at_boot_fails(ifcfg: str, fragment: str, line: int, rpms,
                                                 made) -> None:
    root = made(dr.suse_root(rpms, ifcfg))
    found = findings(root, "azure-current")
    assert found[DHCP].status is FAIL and found[RESTART].status is PASS
    assert fragment in found[DHCP].message
    assert evidence(found[DHCP]) == [("/etc/sysconfig/network/ifcfg-eth0", line)]


def test_sles_wicked_lease_left_behind_fails(rpms, made) -> None:
    """wicked keeps its leases in /var/lib/wicked, not where dhclient does."""
    root = made(dr.suse_root(rpms))
    lease = "/var/lib/wicked/lease-eth0-dhcp-ipv4.xml"
    dr.put(root, lease, "<lease><family>ipv4</family><address>10.0.0.4</address></lease>\n")
    found = findings(root, "azure-current")["LINUX-DHCP-LEASES-REMOVED"]
    assert found.status is FAIL
    assert evidence(found) == [(lease, None)]


# --- a disk image --------------------------------------------------------------------------------


def test_ubuntu_disk_image(made, tmp_path: Path) -> None:
    """The Ubuntu root on a real disk (sfdisk, mkfs.ext4 -d, a fixed VHD footer): read through
    the image, the network rules see what they saw in the directory."""
    root = made(dr.ubuntu_root())
    disk = ib.build_disk(tmp_path / "ubuntu.raw", tree=root)  # 30 GiB, sparse
    convert_in_place(disk.path)
    for profile in BOTH:
        report = check_target(str(disk.path), profile)
        by_id = {f.check_id: f for f in report.findings}
        assert {i: by_id[i].status for i in NET} == {NM: PASS, RESTART: PASS, DHCP: PASS}
        assert report.system["id"] == "ubuntu"
        bad = [f"{f.check_id}: {f.message}" for f in report.findings
               if f.status in (FAIL, WARN)]
        assert bad == []


# --- azure-current against certification-research.md §6 -----------------------------------------

#: §6 "Linux, warnings": the rules that implement an item of that list.
SECTION_6_WARNINGS = {
    "LINUX-NO-LVM", "LINUX-SINGLE-ROOT-PARTITION",    # "single root partition / no LVM"
    "LINUX-PYTHON-VERSION",                            # "Python ≥ 3.9 (tool minimum 2.6)"
    "LINUX-AGENT-AUTOUPDATE",                          # "AutoUpdate enabled"
    "LINUX-GLIBC-GHOST",                               # "GHOST-era glibc"
    "LINUX-NETWORKMANAGER-DISABLED",                   # "NetworkManager (old RHEL)"
    "LINUX-REPOSITORIES",                              # "repository config"
    "LINUX-KERNEL-MODULES",                            # "CONFIG_WATCHDOG and CONFIG_CIFS"
    "LINUX-SUDO-NO-TARGETPW",                          # "`Defaults targetpw`"
    "LINUX-MACHINE-ID-EMPTY", "LINUX-CLOUD-INIT-CLEAN",
    "LINUX-UDEV-PERSISTENT-NET", "LINUX-RESOLV-CONF-REMOVED",  # "leftover ... udev rules, resolv.conf"
}
#: §6 "Linux, blocking".
SECTION_6_BLOCKING = {
    "LINUX-ARCH-64BIT", "LINUX-AGENT-ENABLED", "LINUX-AGENT-VERSION", "LINUX-KERNEL-CMDLINE",
    "LINUX-NO-SWAP", "LINUX-SSH-CLIENT-ALIVE", "LINUX-SHELL-HISTORY-EMPTY",
    "LINUX-NO-DEFAULT-ACCOUNTS", "LINUX-SSH-HOSTKEYS-ABSENT", "LINUX-ROOT-PASSWORD-LOCKED",
    "LINUX-KERNEL-SACK", "LINUX-OPENSSL-VERSION", "LINUX-OMI-VERSION", "LINUX-FIRST-MIB-EMPTY",
    "VHD-FOOTER-VALID", "VHD-FIXED-FORMAT", "VHD-WHOLE-MIB", "VHD-FILE-LENGTH", "VHD-ROLE-SIZE",
}
#: What azure-current lowered from the guide's level (each with its §6 phrase in the TOML).
LOWERED = {"LINUX-NO-LVM", "LINUX-PYTHON-VERSION", "LINUX-NETWORKMANAGER-DISABLED",
           "LINUX-SUDO-NO-TARGETPW", "LINUX-UDEV-PERSISTENT-NET", "LINUX-RESOLV-CONF-REMOVED"}


def test_azure_current_severities_follow_section_6() -> None:
    current, guide = load_profile("azure-current"), load_profile("azure-2015")
    for rule_id in SECTION_6_WARNINGS:
        assert effective_severity(REGISTRY[rule_id], current) is Severity.WARNING, rule_id
    for rule_id in SECTION_6_BLOCKING:
        assert effective_severity(REGISTRY[rule_id], current) is Severity.FAIL, rule_id
    for rule_id in LOWERED:
        assert effective_severity(REGISTRY[rule_id], guide) is Severity.FAIL, rule_id
    # both layout warnings are written in the profile itself, each with its §6 phrase
    text = (Path(__file__).parent.parent / "src/vmimage/profiles/azure-current.toml").read_text()
    for rule_id in LOWERED | {"LINUX-SINGLE-ROOT-PARTITION"}:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{rule_id} ="))
        assert re.search(r'= "warning"\s+# §6: "', line), line


def test_section_6_warnings_on_a_real_root(made) -> None:
    """One Debian root breaking five rules that §6 calls warnings: azure-current warns and
    passes it, azure-2015 (the guide) fails it (Python 3.7 is above the guide's 2.6)."""
    root = made(dr.debian_copy())
    dr.put(root, "/etc/resolv.conf", "nameserver 10.1.2.3\n")
    dr.put(root, "/etc/udev/rules.d/70-persistent-net.rules",
           'SUBSYSTEM=="net", ATTR{address}=="00:15:5d:01:02:03", NAME="eth0"\n')
    dr.put(root, "/etc/sudoers.d/suse", "Defaults targetpw\n", 0o440)
    status = (root / "var/lib/dpkg/status").read_text()
    dr.put(root, "/var/lib/dpkg/status", re.sub(
        r"(Package: python3[.\d]*(?:-minimal)?\n(?:.+\n)*?Version: )3\.\d+[^\n]*", r"\g<1>3.7.3-1",
        status))
    dr.install_nm_stub(root)
    dr.systemctl(root, "enable", "NetworkManager.service")
    broken = {"LINUX-RESOLV-CONF-REMOVED", "LINUX-UDEV-PERSISTENT-NET", "LINUX-SUDO-NO-TARGETPW",
              "LINUX-PYTHON-VERSION", NM}
    current = check_target(str(root), "azure-current")
    assert {f.check_id: f.status for f in current.findings
            if f.status in (FAIL, WARN)} == dict.fromkeys(broken, WARN)
    assert current.exit_code == 0
    legacy = check_target(str(root), "azure-2015")
    assert {f.check_id: f.status for f in legacy.findings
            if f.status in (FAIL, WARN)} == dict.fromkeys(broken - {"LINUX-PYTHON-VERSION"}, FAIL)
    assert legacy.exit_code == 1


def test_lvm_on_the_os_disk_is_a_warning_today(tmp_path: Path) -> None:
    disk = ib.build_disk(tmp_path / "lvm.raw", lvm=True)  # 30 GiB, sparse
    convert_in_place(disk.path)
    current = check_target(str(disk.path), "azure-current")
    bad = {f.check_id: f.status for f in current.findings if f.status in (FAIL, WARN)}
    assert bad == {"LINUX-NO-LVM": WARN}
    assert current.exit_code == 0
    legacy = check_target(str(disk.path), "azure-2015")
    assert {f.check_id: f.status for f in legacy.findings
            if f.check_id == "LINUX-NO-LVM"} == {"LINUX-NO-LVM": FAIL}
    assert legacy.exit_code == 1
