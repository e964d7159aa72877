"""waagent.conf read the way the agent's conf.py reads it."""

from __future__ import annotations

import pytest

from vmimage.facts.waagent import DEFAULTS, parse_waagent_conf, read_waagent_conf
from vmimage.targets.rootdir import RootDirTarget

# The settings part of the waagent.conf Debian's waagent package ships (comments shortened).
DEBIAN_WAAGENT_CONF = """\
#
# Microsoft Azure Linux Agent Configuration
#

# Enable extension handling. Do not disable this unless you do not need password reset,
# backup, monitoring, or any extension handling whatsoever.
Extensions.Enabled=y

# Which provisioning agent to use. Supported values are "auto" (default), "waagent",
# "cloud-init", or "disabled".
Provisioning.Agent=auto

# Password authentication for root account will be unavailable.
Provisioning.DeleteRootPassword=y

# Generate fresh host key pair.
Provisioning.RegenerateSshHostKeyPair=y

# Supported values are "rsa", "dsa", "ecdsa", "ed25519", and "auto".
Provisioning.SshHostKeyPairType=auto

# Format if unformatted. If 'n', resource disk will not be mounted.
ResourceDisk.Format=y

# File system on the resource disk
ResourceDisk.Filesystem=ext4

# Mount point for the resource disk
ResourceDisk.MountPoint=/mnt/resource

# Create and use swapfile on resource disk.
ResourceDisk.EnableSwap=n

# Size of the swapfile.
ResourceDisk.SwapSizeMB=0

# Enable verbose logging (y|n)
Logs.Verbose=n

# Enable RDMA management and set up, should only be used in HPC images
# OS.EnableRDMA=y

# Root device timeout in seconds.
OS.RootDeviceScsiTimeout=300

# If set, agent will use proxy server to access internet
#HttpProxy.Host=None
#HttpProxy.Port=None

# Enable or disable goal state processing auto-update, default is enabled
# AutoUpdate.Enabled=y
"""


def test_debian_default(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/waagent.conf").write_text(DEBIAN_WAAGENT_CONF)
    conf = read_waagent_conf(RootDirTarget(tmp_path))
    assert conf.path == "/etc/waagent.conf"
    assert conf.flag("Provisioning.DeleteRootPassword", False)
    assert conf.flag("Provisioning.RegenerateSshHostKeyPair", False)
    assert not conf.flag("ResourceDisk.EnableSwap", True)
    assert conf.get("AutoUpdate.Enabled") is None  # only in a comment
    assert conf.flag("AutoUpdate.Enabled", True) and conf.flag("AutoUpdate.Enabled")
    swap = conf.get("ResourceDisk.EnableSwap")
    assert swap is not None and swap.value == "n"
    assert DEBIAN_WAAGENT_CONF.splitlines()[swap.line - 1] == "ResourceDisk.EnableSwap=n"
    assert conf.get("HttpProxy.Host") is None


@pytest.mark.parametrize(("line", "expected"), [
    ("AutoUpdate.Enabled=n", False),
    ("AutoUpdate.Enabled=N", False),
    ("AutoUpdate.Enabled = n ", False),
    ('AutoUpdate.Enabled="n"', False),
    ("AutoUpdate.Enabled=n # turned off", False),
    ("AutoUpdate.Enabled=no", True),  # not y/n: the agent keeps its default
    ("AutoUpdate.Enabled=false", True),
    ("#AutoUpdate.Enabled=n", True),
    ("  # AutoUpdate.Enabled=n", True),  # the agent reads key "# AutoUpdate.Enabled"
    ("AutoUpdate.Enabled=None", True),
])
def test_switch_parsing_as_conf_py(line, expected):
    assert parse_waagent_conf(line + "\n").flag("AutoUpdate.Enabled") is expected


def test_later_lines_win_and_defaults(tmp_path):
    conf = parse_waagent_conf("ResourceDisk.EnableSwap=y\nResourceDisk.SwapSizeMB=2048\n"
                              "ResourceDisk.EnableSwap=n\n")
    setting = conf.get("ResourceDisk.EnableSwap")
    assert setting is not None and (setting.value, setting.line) == ("n", 3)
    assert DEFAULTS["AutoUpdate.Enabled"] is True
    assert DEFAULTS["ResourceDisk.EnableSwap"] is False
    assert DEFAULTS["Provisioning.RegenerateSshHostKeyPair"] is False
    assert DEFAULTS["Provisioning.DeleteRootPassword"] is False
    missing = read_waagent_conf(RootDirTarget(tmp_path))
    assert missing.path is None and missing.flag("AutoUpdate.Enabled")


def test_crlf_file():
    conf = parse_waagent_conf("Provisioning.DeleteRootPassword=y\r\nLogs.Verbose=n\r\n")
    assert conf.flag("Provisioning.DeleteRootPassword") and conf.get("Logs.Verbose").value == "n"
