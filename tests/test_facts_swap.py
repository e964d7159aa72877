"""Swap sources found from configuration: fstab, systemd .swap units, cloud-init, waagent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmimage.facts.swap import swap_sources
from vmimage.targets.rootdir import RootDirTarget

FSTAB = """\
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=0f5a7c2e-3b1d-4f7a-9c1e-2d6b8a4e5f10 /               ext4    errors=remount-ro 0       1
UUID=9E3B-1C2D  /boot/efi       vfat    umask=0077      0       1
/swapfile       none            swap    sw              0       0
UUID=4d1c-swap  none            swap    sw              0       0
/dev/mapper/vg-swap none        swap    noauto          0       0
"""


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_fstab_files_and_partitions(tmp_path):
    put(tmp_path, "/etc/fstab", FSTAB)
    found = swap_sources(RootDirTarget(tmp_path))
    assert [(s.kind, s.what, s.line, s.active) for s in found] == [
        ("fstab-file", "/swapfile", 6, True),
        ("fstab-partition", "UUID=4d1c-swap", 7, True),
        ("fstab-partition", "/dev/mapper/vg-swap", 8, False),
    ]
    assert found[0].path == "/etc/fstab" and "swap file /swapfile" in found[0].description


SWAP_UNIT = """\
[Unit]
Description=Swap file

[Swap]
What=/var/swap.img
Priority=10

[Install]
WantedBy=swap.target
"""


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl not installed")
def test_systemd_swap_units_enabled_by_systemctl(tmp_path):
    put(tmp_path, "/etc/systemd/system/var-swap.img.swap", SWAP_UNIT)
    put(tmp_path, "/etc/systemd/system/spare.swap", SWAP_UNIT.replace("/var/swap.img", "/spare"))
    put(tmp_path, "/usr/lib/systemd/system/vendor.swap", SWAP_UNIT.replace("/var/swap.img",
                                                                           "/vendor"))
    subprocess.run(["systemctl", f"--root={tmp_path}", "enable", "var-swap.img.swap",
                    "vendor.swap"], check=True, capture_output=True)
    found = swap_sources(RootDirTarget(tmp_path))
    assert sorted((s.kind, s.what, s.active, s.line) for s in found) == [
        ("systemd-unit", "/spare", False, 5),
        ("systemd-unit", "/var/swap.img", True, 5),
        ("systemd-unit", "/vendor", True, 5),
    ]
    vendor = next(s for s in found if s.what == "/vendor")
    assert vendor.path == "/etc/systemd/system/swap.target.wants/vendor.swap"


CLOUD_CFG = """\
# The top level settings are used as module
# and base configuration.
users:
   - default

disable_root: true

mounts:
  - [ ephemeral0, /mnt, auto, "defaults,nofail,x-systemd.requires=cloud-init.service", "0", "2" ]
  - [ /dev/sdb2, none, swap, sw, "0", "0" ]   # the second resource partition
  - [ swap, null ]

cloud_init_modules:
 - migrator
 - mounts
"""


def test_cloud_init_swap_and_mounts(tmp_path):
    put(tmp_path, "/etc/cloud/cloud.cfg", CLOUD_CFG)
    put(tmp_path, "/etc/cloud/cloud.cfg.d/50-swap.cfg",
        "#cloud-config\nswap:\n  filename: /swapfile\n  size: auto\n  maxsize: 2147483648\n")
    found = swap_sources(RootDirTarget(tmp_path))
    assert [(s.kind, s.what, s.path, s.line) for s in found] == [
        ("cloud-init", "/swapfile", "/etc/cloud/cloud.cfg.d/50-swap.cfg", 4),  # the size
        ("cloud-init", "/dev/sdb2", "/etc/cloud/cloud.cfg", 10),
    ]
    assert found[0].description == "cloud-init swap: filename=/swapfile size=auto"
    # a later file sets the size to 0: cloud-init merges swap per key and makes no file
    put(tmp_path, "/etc/cloud/cloud.cfg.d/99-noswap.cfg", "swap: {size: 0}\n")
    # and a later mounts list replaces the earlier one whole
    put(tmp_path, "/etc/cloud/cloud.cfg.d/98-mounts.cfg", 'mounts: [[ephemeral0, "/mnt"]]\n')
    assert swap_sources(RootDirTarget(tmp_path)) == []


def test_cloud_init_flow_style_matches_a_yaml_parser(tmp_path):
    yaml = pytest.importorskip("yaml")
    text = 'swap: {filename: "/swap.img", size: "2G"}  # for builds\nmounts: []\n'
    assert yaml.safe_load(text)["swap"] == {"filename": "/swap.img", "size": "2G"}
    put(tmp_path, "/etc/cloud/cloud.cfg", text)
    found = swap_sources(RootDirTarget(tmp_path))
    assert [(s.what, s.description) for s in found] == [
        ("/swap.img", "cloud-init swap: filename=/swap.img size=2G")]


def test_waagent_resource_disk_swap(tmp_path):
    put(tmp_path, "/etc/waagent.conf", "ResourceDisk.Format=y\nResourceDisk.EnableSwap=y\n"
                                       "ResourceDisk.SwapSizeMB=2048\n")
    found = swap_sources(RootDirTarget(tmp_path))
    assert [(s.kind, s.path, s.line, s.description) for s in found] == [
        ("waagent", "/etc/waagent.conf", 2, "ResourceDisk.EnableSwap=y SwapSizeMB=2048")]
    put(tmp_path, "/etc/waagent.conf", "ResourceDisk.EnableSwap=yes\n")  # not "y": default n
    assert swap_sources(RootDirTarget(tmp_path)) == []


def test_clean_image_has_no_swap_sources(tmp_path):
    put(tmp_path, "/etc/fstab", FSTAB.split("/swapfile")[0])
    put(tmp_path, "/etc/waagent.conf", "ResourceDisk.EnableSwap=n\n")
    put(tmp_path, "/etc/cloud/cloud.cfg", "mounts:\n  - [ swap, null ]\n")
    assert swap_sources(RootDirTarget(tmp_path)) == []
