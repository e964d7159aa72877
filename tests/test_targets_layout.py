"""Partition tables, signatures and mounts of real images, with blkid and sfdisk as oracles."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tests import targets_images as ti
from vmimage.disk.inspect import open_disk
from vmimage.disk.sources import FileWindow
from vmimage.targets.base import Partition
from vmimage.targets.blockio import BlockCache
from vmimage.targets.image import SWAP_MOUNTPOINT, ImageTarget

MiB = ti.MiB


def _agrees_with_blkid(disk: Path, part: Partition, offset: int | None = None) -> None:
    """blkid's low-level probe at the same bytes finds the same type, label and UUID."""
    found = ti.blkid(disk, part.start if offset is None else offset, part.size)
    if part.fs_type == "unknown":
        assert "TYPE" not in found, (part.name, found)
        return
    assert found.get("TYPE") == part.fs_type, (part.name, found)
    assert found.get("LABEL", "") == part.label, (part.name, found)
    assert found.get("UUID", "") == part.uuid, (part.name, found)


def _sfdisk_json(disk: Path) -> dict[str, object]:
    table: dict[str, object] = json.loads(ti.run("sfdisk", "--json", disk))["partitiontable"]
    return table


def test_gpt_layout() -> None:
    disk = ti.gpt_image()
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "gpt" and layout.size == 48 * MiB
        parts = {p.name: p for p in layout.partitions}
        assert list(parts) == ["p1", "p2", "p3", "p4", "p5"]
        assert [p.type_name for p in parts.values()] == ["bios-boot", "efi", "linux", "linux",
                                                          "swap"]
        assert [p.fs_type for p in parts.values()] == ["unknown", "vfat", "ext2", "ext4", "swap"]
        assert [p.mountpoint for p in parts.values()] == [None, "/boot/efi", "/boot", "/",
                                                           SWAP_MOUNTPOINT]
        assert (parts["p4"].uuid, parts["p4"].label) == (ti.ROOT_UUID, "root")
        assert (parts["p3"].uuid, parts["p3"].label) == (ti.BOOT_UUID, "boot")
        assert parts["p5"].uuid == ti.SWAP_UUID and parts["p2"].label == "EFI"
        assert all(p.scheme == "gpt" and not p.bootable for p in parts.values())
        for entry in _sfdisk_json(disk)["partitions"]:  # type: ignore[attr-defined]
            name = "p" + entry["node"].rsplit("raw", 1)[1]
            assert parts[name].start == entry["start"] * 512
            assert parts[name].size == entry["size"] * 512
            assert parts[name].type_id == entry["type"]
        for part in parts.values():
            _agrees_with_blkid(disk, part)
        assert layout.first_mib_data == () and not layout.mbr_boot_code
        assert layout.notes == ()  # the ESP's vfat is read now: nothing left unread
        # fstab named / by UUID, /boot by PARTUUID and swap by /dev/disk/by-uuid
        assert target.mounts() == {"/": parts["p4"], "/boot": parts["p3"],
                                   "/boot/efi": parts["p2"]}
        assert target.root_partition == parts["p4"]
        assert target.partition_at("/boot") == parts["p3"]
        assert target.partition_at("/boot/efi/") == parts["p2"]
        assert target.partition_at("/srv") is None
        assert target.partition_for("/boot/efi/EFI/debian/grubx64.efi") == parts["p2"]
        assert target.iterdir("/boot/efi") == []  # the empty FAT made by mkfs.vfat
        assert target.stat("/boot/efi").mode == 0o40700  # umask=0077 in fstab
        assert target.partition_for("/boot/grub/grub.cfg") == parts["p3"]
        assert target.partition_for("/etc/kernel-link") == parts["p3"]  # resolved into /boot
        assert target.partition_for("/etc/hostname") == parts["p4"]
        assert [e.file for e in target.fstab] == ["/", "/boot", "/boot/efi", "none"]


def test_mbr_with_logical_partitions_and_xfs_root() -> None:
    disk = ti.mbr_image()
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "mbr"
        parts = {p.name: p for p in layout.partitions}
        assert list(parts) == ["p1", "p2", "p5", "p6"]  # logical partitions numbered from 5
        for name, (start, size) in ti.MBR_PARTS.items():
            assert (parts[name].start, parts[name].size) == (start * 512, size * 512)
        assert [p.type_id for p in parts.values()] == ["0x83", "0x05", "0x83", "0x82"]
        assert [p.type_name for p in parts.values()] == ["linux", "extended", "linux", "swap"]
        assert [p.fs_type for p in parts.values()] == ["ext3", "unknown", "xfs", "swap"]
        assert [p.bootable for p in parts.values()] == [True, False, False, False]
        # fstab names them /dev/sda5, /dev/sda1, /dev/sda6
        assert [p.mountpoint for p in parts.values()] == ["/boot", None, "/", SWAP_MOUNTPOINT]
        for name in ("p1", "p5", "p6"):
            _agrees_with_blkid(disk, parts[name])
        assert layout.first_mib_data == () and not layout.mbr_boot_code
        assert layout.notes == ()
        assert target.partition_for("/boot/grub") == parts["p1"]


def test_lvm_logical_volumes() -> None:
    disk, offsets = ti.lvm_image()
    vg = ti.vg_name()
    with ImageTarget(disk) as target:
        layout = target.layout()
        parts = {p.name: p for p in layout.partitions}
        assert list(parts) == ["p1", "p2", f"{vg}/root", f"{vg}/swap"]
        assert (parts["p2"].type_name, parts["p2"].fs_type) == ("lvm", "LVM2_member")
        _agrees_with_blkid(disk, parts["p2"])  # the PV UUID, formatted as LVM prints it
        root, swap = parts[f"{vg}/root"], parts[f"{vg}/swap"]
        assert (root.scheme, root.type_id, root.size, root.fs_type) == ("lvm", "lvm", 20 * MiB,
                                                                        "ext4")
        assert (swap.size, swap.fs_type, swap.label) == (4 * MiB, "swap", "lvswap")
        _agrees_with_blkid(disk, root, offsets["root"])
        _agrees_with_blkid(disk, swap, offsets["swap"])
        # fstab: /dev/mapper/vm--tN-root at /, LABEL=boot, /dev/vm-tN/swap
        assert root.mountpoint == "/" and swap.mountpoint == SWAP_MOUNTPOINT
        assert parts["p1"].mountpoint == "/boot"
        assert target.root_partition == root
        assert target.partition_for("/etc/fstab") == root
        assert target.partition_for("/boot/vmlinuz-6.1.0-13-cloud-amd64") == parts["p1"]


def test_whole_disk_filesystem() -> None:
    disk = ti.whole_disk_image()
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert layout.scheme == "none"
        (part,) = layout.partitions
        assert (part.name, part.scheme, part.start, part.size) == ("disk", "none", 0, 24 * MiB)
        assert (part.fs_type, part.label, part.mountpoint) == ("ext4", "root", "/")
        _agrees_with_blkid(disk, part)
        # its fstab (the tree's, by LABEL) names a /boot and an ESP this disk does not have
        assert any("LABEL=boot" in n and "/boot" in n for n in layout.notes)
        assert target.read_text("/boot/grub/grub.cfg").startswith("linux ")


@pytest.mark.parametrize("fmt", ["vhd-fixed", "vhd-dynamic", "qcow2", "vmdk", "vhdx"])
def test_every_format_gives_the_same_layout(fmt: str) -> None:
    with ImageTarget(ti.gpt_image()) as raw, ImageTarget(ti.converted(fmt)) as other:
        assert [asdict(p) for p in other.layout().partitions] == [
            asdict(p) for p in raw.layout().partitions]
        assert other.layout().first_mib_data == raw.layout().first_mib_data
        assert other.disk_info.format.startswith(fmt.split("-")[0])
        assert other.layout().size == raw.layout().size


def test_open_reads_little() -> None:
    with ImageTarget(ti.gpt_image()) as target:
        assert 0 < target.bytes_read <= 4 * MiB
        before = target.bytes_read
        target.read_text("/etc/hostname")
        assert target.bytes_read - before <= 1 * MiB
        assert target.read_calls > 0


@pytest.mark.parametrize(("image", "part"), [("gpt", "p4"), ("mbr", "p5")])
def test_the_bindings_alone_stop_at_symlinks(image: str, part: str) -> None:
    """Why paths are resolved by us (rulings): libfsext and libfsxfs look up no path through
    a symlink (None, or an error), so ``/bin/tool`` on a Debian 12 root needs our resolver."""
    import pyfsext
    import pyfsxfs

    disk = ti.gpt_image() if image == "gpt" else ti.mbr_image()
    start, sectors = (ti.GPT_PARTS if image == "gpt" else ti.MBR_PARTS)[part]
    _, source = open_disk(disk)
    try:
        volume = pyfsext.volume() if image == "gpt" else pyfsxfs.volume()
        volume.open_file_object(FileWindow(BlockCache(source), start * 512, sectors * 512))
        assert volume.get_file_entry_by_path("/usr/bin/tool") is not None
        try:
            through_link = volume.get_file_entry_by_path("/bin/tool")
        except OSError:
            through_link = None
        assert through_link is None
        volume.close()
    finally:
        source.close()
    with ImageTarget(disk) as target:
        assert target.read_text("/bin/tool") == "#!/bin/sh\necho tool\n"


@pytest.mark.parametrize(("spec", "name"), [
    (f"UUID={ti.ROOT_UUID}", "p4"), (f"UUID={ti.ROOT_UUID.upper()}", "p4"),
    ('LABEL="boot"', "p3"), ("LABEL=EFI", "p2"), (f"PARTUUID={ti.BOOT_PARTUUID}", "p3"),
    ("PARTLABEL=root", "p4"), (f"/dev/disk/by-uuid/{ti.SWAP_UUID}", "p5"),
    ("/dev/disk/by-label/boot", "p3"), (f"/dev/disk/by-partuuid/{ti.BOOT_PARTUUID}", "p3"),
    ("/dev/disk/by-partlabel/esp", "p2"), ("/dev/sda4", "p4"), ("/dev/vda3", "p3"),
    ("/dev/xvda1", "p1"), ("/dev/nvme0n1p5", "p5"), ("/dev/sdb1", None), ("/dev/sda9", None),
    ("UUID=00000000-0000-0000-0000-000000000000", None), ("LABEL=", None), ("tmpfs", None),
])
def test_fstab_specs_name_partitions(spec: str, name: str | None) -> None:
    from vmimage.targets.mounts import match_spec
    from vmimage.targets.partitions import read_table

    _, source = open_disk(ti.gpt_image())
    try:
        volumes = read_table(BlockCache(source), source.size).volumes
        found = match_spec(spec, volumes)
        assert (found.part.name if found else None) == name
    finally:
        source.close()
