"""Root trees of other distributions, for the rules that judge each distribution's network stack.

- ``ubuntu_root``: the cached compliant Debian 12 tree (``tests/imagebuild.py``) made into
  Ubuntu 22.04: its os-release, no ifupdown, netplan YAML in ``/etc/netplan`` rendered by
  systemd-networkd (Debian's real unit and daemon, enabled by the real ``systemctl``).
- ``rhel_root``: a merged-/usr directory with the os-release of RHEL, Rocky, CentOS (or the
  release file of RHEL 6), an RPM database made by the real ``rpm --initdb`` and packages built
  here with the real ``rpmbuild`` and installed with ``rpm --root`` (their files land in the
  tree, their headers in ``/var/lib/rpm/rpmdb.sqlite``), units enabled by ``systemctl``.
- ``suse_root``: the same for SLES 15 SP5 with wicked and ``/etc/sysconfig/network/ifcfg-*``.

Debian-derived trees are hard-linked copies of the cached tree (``cp -al``, under a second):
every change here unlinks a file before writing it, so the cache is never written through a
link. Delete a tree with ``shutil.rmtree`` when done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests import imagebuild as ib

UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

ROCKY_9 = """\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

RHEL_9 = """\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
BUG_REPORT_URL="https://issues.redhat.com/"
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

RHEL_8 = """\
NAME="Red Hat Enterprise Linux"
VERSION="8.9 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.9"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.9 (Ootpa)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:redhat:enterprise_linux:8::baseos"
HOME_URL="https://www.redhat.com/"
"""

CENTOS_7 = """\
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
BUG_REPORT_URL="https://bugs.centos.org/"
"""

RHEL_6_RELEASE = "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"

SLES_15 = """\
NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:suse:sles:15:sp5"
DOCUMENTATION_URL="https://documentation.suse.com/"
"""

# Ubuntu's Azure images: cloud-init's netplan file, the NIC matched by its driver.
NETPLAN_AZURE = """\
# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        eth0:
            dhcp4: true
            dhcp4-overrides:
                route-metric: 100
            dhcp6: false
            match:
                driver: hv_netvsc
            set-name: eth0
    version: 2
"""

NETPLAN_STATIC = """\
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: false
      addresses:
        - 10.0.0.4/24
      routes:
        - to: default
          via: 10.0.0.1
"""

NM_KEYFILE_DHCP = """\
[connection]
id=cloud-init eth0
uuid=1dd9a779-d327-56e1-8454-c65e2556c12c
type=ethernet
interface-name=eth0

[ethernet]

[ipv4]
method=auto

[ipv6]
method=ignore
"""

IFCFG_RHEL_DHCP = """\
DEVICE=eth0
ONBOOT=yes
BOOTPROTO=dhcp
TYPE=Ethernet
USERCTL=no
PEERDNS=yes
IPV6INIT=no
NM_CONTROLLED=yes
"""

IFCFG_SUSE_DHCP = """\
BOOTPROTO='dhcp'
DHCLIENT6_MODE='managed'
MTU=''
REMOTE_IPADDR=''
STARTMODE='auto'
"""

UNIT_INSTALL = "[Install]\nWantedBy=multi-user.target\n"


def unit(description: str, exec_start: str, install: str = UNIT_INSTALL) -> str:
    """A systemd service unit as a package ships it."""
    return f"[Unit]\nDescription={description}\n\n[Service]\nExecStart={exec_start}\n\n{install}"


def script(name: str) -> str:
    return f"#!/bin/sh\n# {name}: a stand-in for vmimage's tests\nexit 0\n"


# --- writing into a tree without touching the cache -------------------------------------------


def put(root: Path, path: str, text: str | bytes, mode: int = 0o644) -> Path:
    """Replace ``root/path`` (unlinked first: never written through a hard link)."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_bytes(text.encode() if isinstance(text, str) else text)
    target.chmod(mode)
    return target


def remove(root: Path, path: str) -> None:
    target = root / path.lstrip("/")
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def symlink(root: Path, path: str, to: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    os.symlink(to, target)


def systemctl(root: Path, *args: str) -> None:
    """The real ``systemctl --root`` (it makes and removes symlinks only)."""
    ib.run(["systemctl", f"--root={root}", *args])


# --- Debian-derived trees ------------------------------------------------------------------------


def debian_copy() -> Path:
    """A hard-linked copy of the cached compliant Debian 12 tree, in the scratch store."""
    src = ib.compliant_tree()
    dest = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="distro-")) / "root"
    ib.run(["cp", "-al", src, dest])
    return dest


def ubuntu_root(netplan: str = NETPLAN_AZURE, *, renderer_nm: bool = False) -> Path:
    """Ubuntu 22.04 as its Azure images are: netplan, systemd-networkd, no ifupdown.

    ``renderer_nm``: NetworkManager installed and enabled, as netplan's renderer.
    """
    root = debian_copy()
    remove(root, "/etc/os-release")
    put(root, "/usr/lib/os-release", UBUNTU_2204)
    symlink(root, "/etc/os-release", "../usr/lib/os-release")
    systemctl(root, "disable", "networking.service")
    for path in ("/etc/network/interfaces", "/usr/sbin/ifup", "/usr/sbin/ifdown",
                 "/usr/sbin/ifquery", "/usr/lib/systemd/system/networking.service"):
        remove(root, path)
    put(root, "/usr/sbin/netplan", script("netplan"), 0o755)
    put(root, "/usr/lib/systemd/system-generators/netplan", script("netplan generate"), 0o755)
    put(root, "/etc/netplan/50-cloud-init.yaml", netplan, 0o600)
    systemctl(root, "enable", "systemd-networkd.service")
    if renderer_nm:
        install_nm_stub(root)
        systemctl(root, "enable", "NetworkManager.service")
    return root


def install_nm_stub(root: Path) -> None:
    """NetworkManager's daemon, nmcli and unit where a dpkg system installs them."""
    put(root, "/usr/sbin/NetworkManager", script("NetworkManager"), 0o755)
    put(root, "/usr/bin/nmcli", script("nmcli"), 0o755)
    put(root, "/usr/lib/systemd/system/NetworkManager.service",
        unit("Network Manager", "/usr/sbin/NetworkManager --no-daemon",
             UNIT_INSTALL + "Alias=dbus-org.freedesktop.NetworkManager.service\n"))


# --- RPM-based trees -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpm:
    """A package to build: its name, version, release and files (path -> (content, mode));
    content starting with ``->`` makes a symlink."""

    name: str
    version: str
    release: str
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    epoch: int | None = None


SPEC = """\
Name: {name}
Version: {version}
Release: {release}
{epoch}Summary: {name}, a stand-in for vmimage's tests
License: MIT
BuildArch: x86_64
AutoReqProv: no
%define debug_package %{{nil}}
%define __os_install_post %{{nil}}
%define _build_id_links none

%description
{name} with only the files vmimage's rules read.

%install
cp -a {staging}/. %{{buildroot}}/

%files
{files}
"""


class RpmBuilder:
    """Builds packages with the real rpmbuild, once each, into ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.built: dict[tuple[object, ...], Path] = {}

    def build(self, pkg: Rpm) -> Path:
        key = (pkg.name, pkg.version, pkg.release, pkg.epoch, tuple(sorted(pkg.files.items())))
        if key in self.built:
            return self.built[key]
        work = Path(tempfile.mkdtemp(dir=self.workdir, prefix=f"{pkg.name}-"))
        staging = work / "staging"
        staging.mkdir()
        for path, (content, mode) in pkg.files.items():
            if content.startswith("->"):
                symlink(staging, path, content[2:].strip())
            else:
                put(staging, path, content, mode)
        listing = "\n".join(f"%config(noreplace) {p}" if p.startswith("/etc/") and not
                            pkg.files[p][0].startswith("->") else p for p in sorted(pkg.files))
        spec = work / f"{pkg.name}.spec"
        spec.write_text(SPEC.format(name=pkg.name, version=pkg.version, release=pkg.release,
                                    epoch=f"Epoch: {pkg.epoch}\n" if pkg.epoch else "",
                                    staging=staging, files=listing))
        ib.run(["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {work / 'top'}", spec])
        [rpm] = (work / "top" / "RPMS").glob("*/*.rpm")
        self.built[key] = rpm
        return rpm


def rpm_install(root: Path, rpms: list[Path]) -> None:
    """``rpm --root``: files into the tree, headers into its ``/var/lib/rpm`` (sqlite)."""
    base = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
    if not (root / "var/lib/rpm/rpmdb.sqlite").exists():
        ib.run([*base, "--initdb"])
    ib.run([*base, "-i", "--nodeps", "--noscripts", "--ignorearch", *map(str, rpms)])


def rpm_query(root: Path) -> list[str]:
    """``rpm -qa`` on the tree's database, as the oracle for what is installed."""
    out = subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-qa"],
                         capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    return sorted(out.stdout.split())


def networkmanager(version: str = "1.46.0", release: str = "26.el9_4", *, nmcli: bool = True,
                   sysv: bool = False) -> Rpm:
    files = {"/usr/sbin/NetworkManager": (script("NetworkManager"), 0o755),
             "/etc/NetworkManager/NetworkManager.conf":
                 ("[main]\n#plugins=keyfile,ifcfg-rh\n\n[logging]\n", 0o644)}
    if nmcli:
        files["/usr/bin/nmcli"] = (script("nmcli"), 0o755)
    if sysv:
        files["/etc/rc.d/init.d/NetworkManager"] = (script("NetworkManager init script"), 0o755)
    else:
        files["/usr/lib/systemd/system/NetworkManager.service"] = (unit(
            "Network Manager", "/usr/sbin/NetworkManager --no-daemon",
            UNIT_INSTALL + "Alias=dbus-org.freedesktop.NetworkManager.service\n"), 0o644)
    return Rpm("NetworkManager", version, release, files, epoch=1)


def walinuxagent(release: str = "1.el9") -> Rpm:
    return Rpm("WALinuxAgent", "2.9.1.1", release, {
        "/usr/sbin/waagent": (script("waagent"), 0o755),
        "/etc/waagent.conf": ("Provisioning.Agent=auto\nResourceDisk.EnableSwap=n\n", 0o644),
        "/usr/lib/systemd/system/waagent.service": (unit(
            "Azure Linux Agent", "/usr/bin/python3 -u /usr/sbin/waagent -daemon"), 0o644)})


def network_scripts(release: str = "1.el7") -> Rpm:
    """RHEL/CentOS 7's initscripts: the SysV ``network`` service and ifup/ifdown."""
    return Rpm("initscripts", "9.49.53", release, {
        "/etc/rc.d/init.d/network": (script("network"), 0o755),
        "/etc/sysconfig/network-scripts/ifup-eth": (script("ifup-eth"), 0o755),
        "/etc/sysconfig/network-scripts/ifcfg-lo": ("DEVICE=lo\nIPADDR=127.0.0.1\n", 0o644),
        "/usr/sbin/ifup": (script("ifup"), 0o755),
        "/usr/sbin/ifdown": (script("ifdown"), 0o755)})


def wicked() -> Rpm:
    """SLES 15's wicked and wicked-service: the daemon, its units, ``ifup``."""
    return Rpm("wicked", "0.6.74", "150500.3.24.1", {
        "/usr/sbin/wicked": (script("wicked"), 0o755),
        "/usr/sbin/wickedd": (script("wickedd"), 0o755),
        "/usr/sbin/ifup": (script("ifup (wicked)"), 0o755),
        "/usr/sbin/ifdown": ("-> ifup", 0o777),
        "/usr/lib/systemd/system/wickedd.service": (unit(
            "wicked network management service daemon", "/usr/sbin/wickedd --systemd"), 0o644),
        "/usr/lib/systemd/system/wicked.service": (unit(
            "wicked managed network interfaces", "/usr/sbin/wicked --systemd ifup all",
            UNIT_INSTALL + "Alias=network.service\nAlso=wickedd.service\n"), 0o644)})


def rpm_skeleton(release_files: dict[str, str]) -> Path:
    """An empty merged-/usr root as RHEL 7+ and SLES 15 lay it out, with ``release_files``."""
    root = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="distro-")) / "root"
    for sub in ("usr/bin", "usr/sbin", "usr/lib/systemd/system", "usr/lib64", "etc/systemd/system",
                "etc/rc.d/init.d", "var/lib/rpm", "boot", "root", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("bin", "sbin", "lib", "lib64"):
        os.symlink(f"usr/{name}", root / name)
    for n in range(7):
        (root / f"etc/rc.d/rc{n}.d").mkdir()
        os.symlink(f"rc.d/rc{n}.d", root / f"etc/rc{n}.d")
    os.symlink("rc.d/init.d", root / "etc/init.d")
    for path, text in release_files.items():
        put(root, path, text)
    return root


def rhel_root(builder: RpmBuilder, os_release: str = ROCKY_9, *,
              keyfile: str | None = NM_KEYFILE_DHCP, ifcfg: str | None = None,
              nm: Rpm | None = None, legacy_network: bool = False,
              nm_enabled: bool = True) -> Path:
    """A RHEL-family root: NetworkManager and WALinuxAgent built and installed with rpm, both
    enabled by systemctl, eth0 in a keyfile (``keyfile``) and/or ``ifcfg-eth0`` (``ifcfg``).

    ``legacy_network``: RHEL/CentOS 7's initscripts too, its SysV ``network`` service started
    in runlevels 2-5 as ``chkconfig network on`` links it.
    """
    root = rpm_skeleton({"/usr/lib/os-release": os_release})
    symlink(root, "/etc/os-release", "../usr/lib/os-release")
    put(root, "/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost.localdomain\n")
    pkgs = [nm or networkmanager(), walinuxagent()]
    if legacy_network:
        pkgs.append(network_scripts())
    rpm_install(root, [builder.build(p) for p in pkgs])
    systemctl(root, "enable", "waagent.service")
    if nm_enabled:
        systemctl(root, "enable", "NetworkManager.service")
    if legacy_network:
        for n in range(7):
            link = "S10network" if 2 <= n <= 5 else "K90network"
            symlink(root, f"/etc/rc.d/rc{n}.d/{link}", "../init.d/network")
    if keyfile is not None:
        put(root, "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection", keyfile,
            0o600)
    if ifcfg is not None:
        put(root, "/etc/sysconfig/network-scripts/ifcfg-eth0", ifcfg)
    return root


def rhel6_root(builder: RpmBuilder) -> Path:
    """RHEL 6.10: no os-release, SysV init; NetworkManager installed but off in every runlevel
    (``chkconfig NetworkManager off``), initscripts' ``network`` on, ifcfg-eth0 with DHCP."""
    root = rpm_skeleton({"/etc/redhat-release": RHEL_6_RELEASE})
    rpm_install(root, [builder.build(networkmanager("0.8.1", "113.el6", sysv=True)),
                       builder.build(network_scripts("1.el6")),
                       builder.build(walinuxagent("1.el6"))])
    for n in range(7):
        symlink(root, f"/etc/rc.d/rc{n}.d/K02NetworkManager", "../init.d/NetworkManager")
        link = "S10network" if 2 <= n <= 5 else "K90network"
        symlink(root, f"/etc/rc.d/rc{n}.d/{link}", "../init.d/network")
    put(root, "/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost.localdomain\n")
    put(root, "/etc/sysconfig/network-scripts/ifcfg-eth0", IFCFG_RHEL_DHCP)
    return root


def suse_root(builder: RpmBuilder, ifcfg: str = IFCFG_SUSE_DHCP) -> Path:
    """SLES 15 SP5: wicked (``systemctl enable wicked`` also makes the ``network.service``
    alias) and ``/etc/sysconfig/network/ifcfg-eth0``."""
    root = rpm_skeleton({"/usr/lib/os-release": SLES_15})
    symlink(root, "/etc/os-release", "../usr/lib/os-release")
    rpm_install(root, [builder.build(wicked()), builder.build(walinuxagent("150500.3.9.1"))])
    systemctl(root, "enable", "wicked.service", "waagent.service")
    put(root, "/etc/sysconfig/network/ifcfg-eth0", ifcfg)
    put(root, "/etc/sysconfig/network/ifcfg-lo", "IPADDR=127.0.0.1/8\nSTARTMODE=nfsroot\n")
    put(root, "/etc/sysconfig/network/dhcp", 'DHCLIENT_SET_HOSTNAME="no"\n')
    return root


def discard(root: Path) -> None:
    """Delete a tree made here (its parent is the temporary directory holding it)."""
    shutil.rmtree(root.parent, ignore_errors=True)
