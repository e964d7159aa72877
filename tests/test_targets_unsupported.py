"""What the image target cannot read, or finds damaged: a clear error or note, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import targets_images as ti
from vmimage.errors import InputError, UnsupportedError
from vmimage.targets.image import ImageTarget

MiB = ti.MiB
OS_RELEASE = 'ID=debian\nVERSION_ID="12"\n'


def _small_root(path: Path, fstab: str) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "home").mkdir()
    (path / "etc/fstab").write_text(fstab)
    (path / "etc/os-release").write_text(OS_RELEASE)
    return path


def _patch(disk: Path, offset: int, data: bytes) -> None:
    fd = os.open(disk, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def test_btrfs_root_is_refused_clearly(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "disk.raw", 24 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=40960, type=L\n")
    ti.mkfs_btrfs(disk, MiB, 20 * MiB, ti.full_tree(), tmp_path, "root")
    with pytest.raises(UnsupportedError) as refused:
        ImageTarget(disk)
    assert str(refused.value) == f"{disk}: btrfs: cannot read; vmimage reads ext2/3/4 and XFS"
    assert isinstance(refused.value, InputError) and refused.value.exit_code == 2


def test_btrfs_home_beside_an_ext4_root_is_a_note(tmp_path: Path) -> None:
    root = _small_root(tmp_path / "root", "LABEL=root / ext4 defaults 0 1\n"
                                          "LABEL=home /home btrfs defaults 0 2\n")
    home = tmp_path / "home"
    (home / "alice").mkdir(parents=True)
    disk = ti.blank(tmp_path / "disk.raw", 32 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=16384, type=L\nstart=18432, size=40960\n")
    ti.mkfs_ext(disk, MiB, 8 * MiB, root, "ext4", "root")
    ti.mkfs_btrfs(disk, 9 * MiB, 20 * MiB, home, tmp_path, "home")
    with ImageTarget(disk) as target:
        assert target.capabilities == {"disk", "filesystem"}
        layout = target.layout()
        p2 = layout.partitions[1]
        assert (p2.fs_type, p2.label, p2.mountpoint) == ("btrfs", "home", "/home")
        assert target.partition_for("/home/alice") == p2
        assert ti.blkid(disk, p2.start, p2.size)["UUID"] == p2.uuid
        assert any("btrfs" in n and "/home" in n for n in layout.notes), layout.notes
        assert target.iterdir("/home") == []  # the root's empty mount point, not btrfs
        assert target.read_text("/etc/os-release") == OS_RELEASE


def test_a_data_disk_has_no_root(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "srv").mkdir(parents=True)
    disk = ti.blank(tmp_path / "disk.raw", 16 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, type=L\n")
    ti.mkfs_ext(disk, MiB, 8 * MiB, data, "ext4", "data")
    with ImageTarget(disk) as target:
        assert target.capabilities == {"disk"}
        assert "no root filesystem" in " ".join(target.layout().notes)
        assert target.layout().partitions[0].mountpoint is None
        assert not target.exists("/srv") and not target.exists("/")
        with pytest.raises(FileNotFoundError):
            target.read_bytes("/etc/fstab")
        with pytest.raises(FileNotFoundError):
            target.iterdir("/")
        assert target.glob("/*") == []
        assert target.partition_for("/srv") is None


def test_a_blank_disk(tmp_path: Path) -> None:
    with ImageTarget(ti.blank(tmp_path / "blank.raw", 4 * MiB)) as target:
        layout = target.layout()
        assert (layout.scheme, layout.partitions, target.capabilities) == ("none", (), {"disk"})
        assert any("no partition table" in n for n in layout.notes)


def test_a_tiny_file_that_is_no_disk(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with ImageTarget(path) as target:
        assert target.capabilities == {"disk"} and target.layout().partitions == ()


def test_fstab_naming_what_the_disk_lacks(tmp_path: Path) -> None:
    root = _small_root(tmp_path / "root",
                       "LABEL=root / ext4 defaults 0 1\n"
                       "UUID=0e0e0e0e-1111-2222-3333-444444444444 /srv ext4 defaults 0 2\n"
                       "tmpfs /tmp tmpfs defaults 0 0\n")
    disk = ti.blank(tmp_path / "disk.raw", 12 * MiB)
    ti.sfdisk(disk, "label: dos\nstart=2048, type=83\n")
    ti.mkfs_ext(disk, MiB, 10 * MiB, root, "ext4", "root")
    with ImageTarget(disk) as target:
        notes = target.layout().notes
        assert notes == ("fstab line 2: UUID=0e0e0e0e-1111-2222-3333-444444444444 (/srv) "
                         "matches no partition or logical volume of this disk",)


def test_the_root_is_the_one_its_fstab_mounts_at_slash(tmp_path: Path) -> None:
    """A copy of a root on another partition (a backup) is not taken for the system."""
    fstab = "LABEL=real / ext4 defaults 0 1\n"
    backup = _small_root(tmp_path / "backup", fstab)
    real = _small_root(tmp_path / "real", fstab)
    (real / "etc/hostname").write_text("real\n")
    disk = ti.blank(tmp_path / "disk.raw", 20 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=16384, type=L\nstart=18432, size=16384\n")
    ti.mkfs_ext(disk, MiB, 8 * MiB, backup, "ext4", "backup")
    ti.mkfs_ext(disk, 9 * MiB, 8 * MiB, real, "ext4", "real")
    with ImageTarget(disk) as target:
        assert target.root_partition is not None and target.root_partition.label == "real"
        assert target.read_text("/etc/hostname") == "real\n"


def test_damaged_primary_gpt_falls_back_to_the_backup(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "disk.raw", 8 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=4096, type=L\nstart=6144, size=4096\n")
    _patch(disk, 512 + 56, b"\xff" * 8)  # the disk GUID: the header's CRC no longer matches
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "gpt"
        assert [p.start for p in layout.partitions] == [2048 * 512, 6144 * 512]
        assert any("backup" in n for n in layout.notes)


def test_a_looping_chain_of_logical_partitions_stops(tmp_path: Path) -> None:
    disk = ti.blank(tmp_path / "disk.raw", 16 * MiB)
    ti.sfdisk(disk, "label: dos\nstart=2048, type=5\nstart=4096, size=4096, type=83\n"
                    "start=10240, size=4096, type=82\n")
    with ImageTarget(disk) as target:
        assert [p.name for p in target.layout().partitions] == ["p1", "p5", "p6"]
    # sfdisk put the second boot record at sector 8192 (6144 into the extended partition);
    # make its link to the next record point at itself
    link = 8192 * 512 + 446 + 16
    _patch(disk, link + 4, b"\x05")
    _patch(disk, link + 8, (6144).to_bytes(4, "little") + (4096).to_bytes(4, "little"))
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert [p.name for p in layout.partitions] == ["p1", "p5", "p6"]
        assert any("loops" in n for n in layout.notes)


def test_a_corrupt_ext4_is_a_note(tmp_path: Path) -> None:
    root = _small_root(tmp_path / "root", "LABEL=root / ext4 defaults 0 1\n")
    disk = ti.blank(tmp_path / "disk.raw", 12 * MiB)
    ti.sfdisk(disk, "label: dos\nstart=2048, type=83\n")
    ti.mkfs_ext(disk, MiB, 10 * MiB, root, "ext4", "root")
    _patch(disk, MiB + 1024 + 0x18, (40).to_bytes(4, "little"))  # log block size 2^(10+40)
    with ImageTarget(disk) as target:
        assert target.capabilities == {"disk"}
        notes = " ".join(target.layout().notes)
        assert "p1: ext4 cannot be opened" in notes and "no root filesystem" in notes


def test_fstab_root_on_another_partition_is_a_note(tmp_path: Path) -> None:
    root = _small_root(tmp_path / "root", "LABEL=other / ext4 defaults 0 1\n")
    other = tmp_path / "other"
    other.mkdir()
    disk = ti.blank(tmp_path / "disk.raw", 20 * MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=16384, type=L\nstart=18432, size=16384\n")
    ti.mkfs_ext(disk, MiB, 8 * MiB, root, "ext4", "root")
    ti.mkfs_ext(disk, 9 * MiB, 8 * MiB, other, "ext4", "other")
    with ImageTarget(disk) as target:
        assert target.root_partition is not None and target.root_partition.name == "p1"
        assert target.layout().notes == (
            "fstab line 1: / is LABEL=other (p2), but the system found is on p1",)
