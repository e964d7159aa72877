"""The first MiB of the OS disk (rulings): nothing but the MBR and the GPT's LBA 1-33 in it."""

from __future__ import annotations

import os
from pathlib import Path

from tests import targets_images as ti
from vmimage.targets.image import ImageTarget

MiB = ti.MiB


def _write(disk: Path, offset: int, data: bytes) -> None:
    fd = os.open(disk, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def _mbr_disk(tmp_path: Path, start: int = 2048) -> Path:
    disk = ti.blank(tmp_path / "disk.raw", 8 * MiB)
    ti.sfdisk(disk, f"label: dos\nstart={start}, type=83\n")
    return disk


def test_clean_mbr_disk(tmp_path: Path) -> None:
    with ImageTarget(_mbr_disk(tmp_path)) as target:
        layout = target.layout()
        assert layout.first_mib_data == () and not layout.mbr_boot_code
        assert target.capabilities == {"disk"}  # no filesystem at all: no root
        assert layout.partitions[0].fs_type == "unknown"


def test_bytes_at_lba_100(tmp_path: Path) -> None:
    disk = _mbr_disk(tmp_path)
    _write(disk, 100 * 512 + 7, b"GRUB core")
    _write(disk, 1500 * 512, b"\x01")
    with ImageTarget(disk) as target:
        assert target.layout().first_mib_data == ((100 * 512 + 7, 100 * 512 + 16),
                                                 (1500 * 512, 1500 * 512 + 1))
        assert not target.layout().mbr_boot_code


def test_boot_code_in_the_mbr(tmp_path: Path) -> None:
    disk = _mbr_disk(tmp_path)
    _write(disk, 0, b"\xeb\x63\x90" + bytes(range(1, 200)))
    with ImageTarget(disk) as target:
        assert target.layout().mbr_boot_code
        assert target.layout().first_mib_data == ()  # the MBR sector is never "data"


def test_partition_starting_at_sector_63(tmp_path: Path) -> None:
    disk = _mbr_disk(tmp_path, start=63)
    ti.mkfs_ext(disk, 63 * 512, 4 * MiB, None, "ext4", "old")
    with ImageTarget(disk) as target:
        layout = target.layout()
        (part,) = layout.partitions
        assert (part.start, part.fs_type, part.label) == (63 * 512, "ext4", "old")
        assert layout.first_mib_data  # the filesystem's own blocks lie in the first MiB
        assert layout.first_mib_data[0][0] >= 63 * 512
        assert "no root filesystem" in " ".join(layout.notes)


def test_gpt_header_and_entries_are_allowed() -> None:
    with ImageTarget(ti.gpt_image()) as clean:
        assert clean.layout().first_mib_data == ()


def test_data_in_a_gpt_disk_gap(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "disk.raw", 8 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, type=L\n")
    _write(disk, 34 * 512, b"core.img")  # GRUB's core image in the gap, as BIOS GRUB on GPT
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "gpt"
        assert layout.first_mib_data == ((34 * 512, 34 * 512 + 8),)

