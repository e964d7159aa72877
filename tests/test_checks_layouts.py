"""The Linux checks on every disk layout the issue names, built by the real tools:
MBR and GPT (with BIOS-boot and EFI system partitions), ext4 and XFS roots, a separate /boot,
LVM, and swap partitions named and not named in fstab."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import imagebuild as ib
from vmimage.app.check import check_target
from vmimage.disk.convert import convert_in_place
from vmimage.findings import Status

pytestmark = pytest.mark.slow

LAYOUTS = {
    # name: (build_disk options, check IDs that must not pass, message fragment)
    "gpt-bios-boot": (dict(label="gpt", bios_boot=True), set(), ""),
    "gpt-esp": (dict(label="gpt", esp=True), set(), ""),
    "xfs-root": (dict(root_fs="xfs"), set(), ""),
    "separate-boot": (dict(boot=True), set(), ""),
    "gpt-xfs-boot-esp": (dict(label="gpt", root_fs="xfs", boot=True, esp=True), set(), ""),
    "lvm": (dict(lvm=True), {"LINUX-NO-LVM"}, "LVM in use"),
    "swap-hidden": (dict(swap="hidden"), {"LINUX-NO-SWAP"}, "not named in /etc/fstab"),
    "swap-in-fstab": (dict(swap="fstab"), {"LINUX-NO-SWAP"}, "named in /etc/fstab"),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout(name: str, tmp_path: Path) -> None:
    options, failing, fragment = LAYOUTS[name]
    disk = ib.build_disk(tmp_path / f"{name}.raw", size=4 * 1024**3, **options)
    convert_in_place(disk.path)
    report = check_target(str(disk.path), "azure-current", role="os-linux")
    bad = [f for f in report.findings if f.status in (Status.FAIL, Status.WARNING)]
    assert {f.check_id for f in bad} == failing, [f"{f.check_id}: {f.message}" for f in bad]
    if fragment:
        assert any(fragment in f.message for f in bad), [f.message for f in bad]
    # Every layout is read: the checks that need the filesystem ran on it.
    assert report.system.get("id") == "debian"
    root_checks = {f.check_id: f.status for f in report.findings}
    assert root_checks["LINUX-KERNEL-CMDLINE"] is Status.PASS  # /boot/grub/grub.cfg was found


def test_raw_disk_fails_only_the_format_rules(tmp_path: Path) -> None:
    disk = ib.compliant_copy(tmp_path / "disk.raw")
    report = check_target(str(disk.path), "azure-current")
    bad = {f.check_id for f in report.findings if f.status is Status.FAIL}
    assert bad == {"VHD-FIXED-FORMAT", "VHD-FOOTER-VALID", "VHD-FILE-LENGTH"}


def test_qcow2_is_read_through_its_tables(tmp_path: Path) -> None:
    disk = ib.compliant_copy(tmp_path / "disk.raw")
    qcow = tmp_path / "disk.qcow2"
    ib.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk.path, qcow])
    report = check_target(str(qcow), "azure-current")
    statuses = {f.check_id: f.status for f in report.findings}
    assert statuses["VHD-FIXED-FORMAT"] is Status.FAIL
    assert statuses["LINUX-SSH-CLIENT-ALIVE"] is Status.PASS
    assert report.system["id"] == "debian"
