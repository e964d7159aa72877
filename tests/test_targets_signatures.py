"""Content signatures of every kind the image target names, checked against blkid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import targets_images as ti
from vmimage.targets.image import ImageTarget

MiB = ti.MiB
MKNTFS = shutil.which("mkntfs")


def _put(disk: Path, offset: int, image: Path) -> None:
    ti.copy_in(image, disk, offset)
    image.unlink()


def test_fat32_ntfs_big_page_swap_and_empty(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "disk.raw", 64 * MiB)
    ti.sfdisk(disk, "label: gpt\n"
                    "start=2048, size=69632, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                    "start=71680, size=20480, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n"
                    "start=92160, size=8192, type=S\n"
                    "start=100352, size=8192, type=L\n")
    ti.run("mkfs.vfat", "-C", "-F", "32", "-n", "ESP32", tmp_path / "fat.img", "34816")
    _put(disk, 2048 * 512, tmp_path / "fat.img")
    if MKNTFS:
        ti.blank(tmp_path / "ntfs.img", 10 * MiB)
        ti.run(MKNTFS, "-F", "-Q", "-q", "-L", "Windows", tmp_path / "ntfs.img")
        _put(disk, 71680 * 512, tmp_path / "ntfs.img")
    ti.blank(tmp_path / "swap.img", 4 * MiB)
    ti.run("mkswap", "-p", "65536", "-L", "bigpage", tmp_path / "swap.img")
    _put(disk, 92160 * 512, tmp_path / "swap.img")
    with ImageTarget(disk) as target:
        parts = target.layout().partitions
        assert [p.fs_type for p in parts] == ["vfat", "ntfs" if MKNTFS else "unknown", "swap",
                                              "unknown"]
        assert [p.label for p in parts] == ["ESP32", "Windows" if MKNTFS else "", "bigpage", ""]
        assert [p.type_name for p in parts] == ["efi", "microsoft", "swap", "linux"]
        for part in parts:
            found = ti.blkid(disk, part.start, part.size)
            assert found.get("TYPE", "unknown") == part.fs_type
            assert found.get("UUID", "") == part.uuid
            assert found.get("LABEL", "") == part.label


@pytest.mark.skipif(MKNTFS is None, reason="mkntfs (ntfs-3g) is not installed")
def test_ntfs_on_the_whole_disk_is_not_taken_for_an_mbr(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "ntfs.raw", 8 * MiB)
    ti.run(str(MKNTFS), "-F", "-Q", "-q", "-L", "Data", disk)
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "none"
        (part,) = layout.partitions
        assert (part.name, part.fs_type, part.label) == ("disk", "ntfs", "Data")
        assert part.uuid == ti.blkid(disk, 0, 8 * MiB)["UUID"]


def test_fat_on_the_whole_disk_is_not_taken_for_an_mbr(tmp_path: Path) -> None:
    disk = tmp_path / "fat.raw"
    ti.run("mkfs.vfat", "-C", "-n", "STICK", disk, "8192")
    with ImageTarget(disk) as target:
        (part,) = target.layout().partitions
        assert (part.scheme, part.fs_type, part.label) == ("none", "vfat", "STICK")
