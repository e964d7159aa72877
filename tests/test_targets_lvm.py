"""LVM beyond one PV: a logical volume spanning two PVs, and a volume group missing a PV."""

from __future__ import annotations

import os
from pathlib import Path

from tests import targets_images as ti
from vmimage.targets.image import ImageTarget

MiB = ti.MiB
PVS = [(MiB, 12 * MiB), (13 * MiB, 12 * MiB)]
LVM_GUID = "E6D6D379-F507-44C2-A23C-238F2A3DF928"


def _spanning_disk(tmp_path: Path, vg: str) -> tuple[Path, dict[str, list[tuple[int, int]]]]:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/fstab").write_text(f"/dev/{vg}/root / ext4 defaults 0 1\n")
    (root / "etc/os-release").write_text("ID=debian\n")
    (root / "etc/big").write_bytes(os.urandom(6 * MiB))  # crosses from one PV to the other
    disk = ti.blank(tmp_path / "disk.raw", 26 * MiB)
    ti.sfdisk(disk, f"label: gpt\nstart=2048, size=24576, type={LVM_GUID}\n"
                    f"start=26624, size=24576, type={LVM_GUID}\n")
    pieces = ti.make_lvm_pvs(disk, PVS, vg, [("root", 16)])
    image = ti.blank(tmp_path / "root.img", 16 * MiB)
    ti.mkfs_ext(image, 0, 16 * MiB, root, "ext4", "root")
    ti.write_pieces(image, disk, pieces["root"])
    return disk, pieces


def test_a_logical_volume_across_two_physical_volumes(tmp_path: Path) -> None:
    """libvslvm (20260901) cannot open a group of several PVs: a clear note, no crash.

    Should a later libvslvm read it, the LV must then read correctly.
    """
    vg = f"span{os.getpid()}"
    disk, pieces = _spanning_disk(tmp_path, vg)
    assert len(pieces["root"]) == 2  # the layout really spans both PVs
    with ImageTarget(disk) as target:
        layout = target.layout()
        parts = {p.name: p for p in layout.partitions}
        assert [parts["p1"].fs_type, parts["p2"].fs_type] == ["LVM2_member"] * 2
        if f"{vg}/root" not in parts:
            assert layout.notes[0] == (f"LVM volume group {vg} spans 2 physical volumes, which "
                                       "libvslvm cannot open; its logical volumes are not read")
            assert target.capabilities == {"disk"}
            return
        root = parts[f"{vg}/root"]
        assert (root.fs_type, root.size, root.mountpoint) == ("ext4", 16 * MiB, "/")
        assert target.read_bytes("/etc/big") == (tmp_path / "root/etc/big").read_bytes()


def test_a_volume_group_missing_a_physical_volume(tmp_path: Path) -> None:
    vg = f"half{os.getpid()}"
    disk, _ = _spanning_disk(tmp_path, vg)
    fd = os.open(disk, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(4096), PVS[1][0])  # the second PV's label: as if on another disk
    finally:
        os.close(fd)
    with ImageTarget(disk) as target:
        layout = target.layout()
        assert [p.fs_type for p in layout.partitions] == ["LVM2_member", "unknown"]
        assert target.capabilities == {"disk"}
        assert any(f"LVM volume group {vg}" in n and "not on this disk" in n
                   for n in layout.notes), layout.notes
