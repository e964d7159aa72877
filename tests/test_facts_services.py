"""Service enablement from the symlinks ``systemctl --root`` itself makes, and SysV rc links."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vmimage.facts.services import service_state
from vmimage.targets.rootdir import RootDirTarget

needs_systemctl = pytest.mark.skipif(shutil.which("systemctl") is None,
                                     reason="systemctl not installed")

SSH_UNIT = """\
[Unit]
Description=OpenBSD Secure Shell server
After=network.target auditd.service

[Service]
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
Type=notify

[Install]
WantedBy=multi-user.target
Alias=sshd.service
"""

AGENT_UNIT = """\
[Unit]
Description=Azure Linux Agent
After=network-online.target cloud-init.service

[Service]
Type=simple
ExecStart=/usr/bin/python3 -u /usr/sbin/waagent -daemon

[Install]
WantedBy=multi-user.target
"""

NM_UNIT = """\
[Unit]
Description=Network Manager

[Service]
ExecStart=/usr/sbin/NetworkManager --no-daemon

[Install]
WantedBy=multi-user.target
Alias=dbus-org.freedesktop.NetworkManager.service
Also=NetworkManager-dispatcher.service
"""


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def systemctl(root: Path, *args: str) -> str:
    out = subprocess.run(["systemctl", f"--root={root}", *args], capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def debian_root(tmp_path):
    """Debian 12: merged /usr, units in /lib (= /usr/lib) as the packages install them."""
    (tmp_path / "usr/lib/systemd/system").mkdir(parents=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    for name in ("lib", "sbin", "bin"):
        (tmp_path / "usr" / name).mkdir(exist_ok=True)
        os.symlink(f"usr/{name}", tmp_path / name)
    put(tmp_path, "/lib/systemd/system/ssh.service", SSH_UNIT)
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", AGENT_UNIT)
    put(tmp_path, "/lib/systemd/system/NetworkManager.service", NM_UNIT)
    put(tmp_path, "/lib/systemd/system/serial-getty@.service",
        "[Unit]\nDescription=Serial Getty on %I\n[Service]\nExecStart=-/sbin/agetty %I\n"
        "[Install]\nWantedBy=getty.target\n")
    return tmp_path


@needs_systemctl
def test_enabled_by_systemctl(debian_root):
    systemctl(debian_root, "enable", "ssh.service", "walinuxagent.service",
              "serial-getty@ttyS0.service")
    target = RootDirTarget(debian_root)
    state = service_state(target, "ssh.service", "sshd.service")
    assert (state.unit, state.installed, state.enabled, state.masked) == (
        "ssh.service", True, True, False)
    assert state.evidence.startswith("/etc/systemd/system/multi-user.target.wants/ssh.service")
    assert state.path == "/lib/systemd/system/ssh.service"
    # asked by its alias first, as on RHEL-minded checks: the alias is the unit
    alias = service_state(target, "sshd.service", "ssh.service")
    assert alias.unit == "sshd.service" and alias.installed and alias.enabled
    assert service_state(target, "waagent", "walinuxagent").unit == "walinuxagent.service"
    assert service_state(target, "walinuxagent").enabled
    getty = service_state(target, "serial-getty@ttyS0.service")
    assert getty.installed and getty.enabled
    assert not service_state(target, "serial-getty@ttyS1.service").enabled
    for unit in ("ssh.service", "walinuxagent.service", "NetworkManager.service"):
        expected = systemctl(debian_root, "is-enabled", unit)
        assert service_state(target, unit).enabled == (expected == "enabled"), unit


@needs_systemctl
def test_disabled_and_masked_by_systemctl(debian_root):
    systemctl(debian_root, "enable", "ssh.service", "NetworkManager.service")
    systemctl(debian_root, "disable", "ssh.service")
    systemctl(debian_root, "mask", "NetworkManager.service")
    target = RootDirTarget(debian_root)
    ssh = service_state(target, "ssh.service", "sshd.service")
    assert ssh.installed and not ssh.enabled and not ssh.masked
    assert "no symlink" in ssh.evidence
    assert systemctl(debian_root, "is-enabled", "ssh.service") == "disabled"
    nm = service_state(target, "NetworkManager.service")
    assert nm.installed and nm.masked and not nm.enabled
    assert systemctl(debian_root, "is-enabled", "NetworkManager.service") == "masked"
    assert "/etc/systemd/system/NetworkManager.service -> /dev/null" in nm.evidence
    # the alias went with the disable: sshd.service is no longer a name for anything
    assert not service_state(target, "sshd.service").installed


def test_rhel_layout_and_vendor_enabled(tmp_path):
    put(tmp_path, "/usr/lib/systemd/system/sshd.service", SSH_UNIT.replace("Alias=sshd.service",
                                                                          ""))
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", AGENT_UNIT)
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    os.symlink("/usr/lib/systemd/system/sshd.service", wants / "sshd.service")
    vendor = tmp_path / "usr/lib/systemd/system/multi-user.target.wants"
    vendor.mkdir()
    os.symlink("../waagent.service", vendor / "waagent.service")
    target = RootDirTarget(tmp_path)
    assert service_state(target, "ssh.service", "sshd.service").unit == "sshd.service"
    assert service_state(target, "ssh.service", "sshd.service").enabled
    agent = service_state(target, "walinuxagent.service", "waagent.service")
    assert agent.enabled and "enabled by the distribution" in agent.evidence


def test_sysv_fallback(tmp_path):
    put(tmp_path, "/etc/init.d/waagent", "#!/bin/sh\n### BEGIN INIT INFO\n")
    put(tmp_path, "/etc/init.d/ssh", "#!/bin/sh\n")
    for level in "2345":
        (tmp_path / f"etc/rc{level}.d").mkdir(parents=True)
        os.symlink("../init.d/waagent", tmp_path / f"etc/rc{level}.d/S01waagent")
    os.symlink("../init.d/ssh", tmp_path / "etc/rc2.d/K01ssh")
    target = RootDirTarget(tmp_path)
    agent = service_state(target, "walinuxagent.service", "waagent.service")
    assert (agent.unit, agent.installed, agent.enabled) == ("waagent.service", True, True)
    assert agent.evidence == "/etc/rc2.d/S01waagent -> ../init.d/waagent"
    ssh = service_state(target, "ssh")
    assert ssh.installed and not ssh.enabled


def test_not_installed(tmp_path):
    state = service_state(RootDirTarget(tmp_path), "ssh.service", "sshd.service")
    assert (state.unit, state.installed, state.enabled, state.masked) == (
        "ssh.service", False, False, False)
    assert "none of ssh.service, sshd.service" in state.evidence
    os.makedirs(tmp_path / "etc/systemd/system")
    os.symlink("/dev/null", tmp_path / "etc/systemd/system/NetworkManager.service")
    masked = service_state(RootDirTarget(tmp_path), "NetworkManager.service")
    assert masked.masked and not masked.installed


WICKED_UNIT = """\
[Unit]
Description=wicked managed network interfaces

[Service]
ExecStart=/usr/sbin/wicked --systemd ifup all

[Install]
WantedBy=multi-user.target
Alias=network.service
Also=wickedd.service
"""


@needs_systemctl
def test_suse_network_service_is_wicked(tmp_path):
    """SLES: `systemctl enable wicked` links network.service to it; either name is wicked."""
    put(tmp_path, "/usr/lib/systemd/system/wicked.service", WICKED_UNIT)
    put(tmp_path, "/usr/lib/systemd/system/wickedd.service",
        "[Service]\nExecStart=/usr/sbin/wickedd\n[Install]\nWantedBy=multi-user.target\n")
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    systemctl(tmp_path, "enable", "wicked.service")
    target = RootDirTarget(tmp_path)
    wicked = service_state(target, "wicked.service")
    assert wicked.installed and wicked.enabled
    assert systemctl(tmp_path, "is-enabled", "wicked.service") == "enabled"
    network = service_state(target, "network.service")
    assert network.installed and network.enabled
    assert network.path == "/etc/systemd/system/network.service"
    assert service_state(target, "wickedd.service").enabled  # Also=


def test_chkconfig_layout_through_rc_d_links(tmp_path):
    """RHEL/CentOS 6 and 7 keep SysV scripts in /etc/rc.d; /etc/init.d and /etc/rcN.d are
    links into it. `chkconfig network on` makes S10network, `chkconfig NetworkManager off`
    K02NetworkManager, in every runlevel directory."""
    put(tmp_path, "/etc/rc.d/init.d/network", "#!/bin/sh\n# chkconfig: 2345 10 90\n")
    put(tmp_path, "/etc/rc.d/init.d/NetworkManager", "#!/bin/sh\n# chkconfig: - 23 84\n")
    os.symlink("rc.d/init.d", tmp_path / "etc/init.d")
    for level in range(7):
        rc = tmp_path / f"etc/rc.d/rc{level}.d"
        rc.mkdir()
        os.symlink(f"rc.d/rc{level}.d", tmp_path / f"etc/rc{level}.d")
        os.symlink("../init.d/network", rc / ("S10network" if 2 <= level <= 5 else "K90network"))
        os.symlink("../init.d/NetworkManager", rc / "K02NetworkManager")
    target = RootDirTarget(tmp_path)
    network = service_state(target, "network.service")
    assert network.installed and network.enabled
    assert network.evidence == "/etc/rc2.d/S10network -> ../init.d/network"
    nm = service_state(target, "NetworkManager.service")
    assert nm.installed and not nm.enabled and nm.path == "/etc/init.d/NetworkManager"
