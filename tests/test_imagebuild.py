"""The image builders of tests/imagebuild.py, checked with the tools that read disks for real.

Fast tests use a tiny tree shaped like a Debian root; the ``slow`` ones use the cached full
Debian 12 root (built once, about 90 s the first time).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.imagebuild import SECTOR, GiB, MiB

REPO = Path(__file__).resolve().parent.parent
KVER = "6.1.0-99-amd64"


def sh(*args, check=True) -> str:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL).stdout


def blkid(disk: Path, offset: int) -> dict[str, str]:
    out = sh("blkid", "-p", "-O", offset, "-o", "export", disk, check=False)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sfdisk_dump(disk: Path) -> list[tuple[int, int, str]]:
    rows = []
    for line in sh("sfdisk", "-d", disk).splitlines():
        m = re.search(r"start=\s*(\d+), size=\s*(\d+), type=([0-9A-Fa-f-]+)", line)
        if m:
            rows.append((int(m[1]), int(m[2]), m[3].upper()))
    return rows


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    """A few files shaped like a Debian root: enough for every builder."""
    root = tmp_path / "tree"
    for d in ("etc/ssh", "etc/default", "boot/grub", "usr/lib", "usr/bin", "var/log", "home",
              "root", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                                             'ID=debian\nVERSION_ID="12"\n')
    (root / f"boot/vmlinuz-{KVER}").write_bytes(b"kernel" * 1000)
    (root / f"boot/initrd.img-{KVER}").write_bytes(b"initrd" * 1000)
    (root / "etc/hostname").write_text("localhost.localdomain\n")
    return root


# --------------------------------------------------------------------------------------------
# Without the Debian root


def test_plan_layout_is_aligned_and_leaves_the_first_mib_empty():
    for label, extra in (("dos", {}), ("gpt", {"bios_boot": True, "esp": True})):
        layout = ib.plan_layout(size=30 * GiB, label=label, boot=True, swap="fstab", **extra)
        starts = [p.start for p in layout.partitions]
        assert starts[0] == 2048 * SECTOR
        end = 0
        for p in layout.partitions:
            assert p.start % MiB == 0 and p.size % MiB == 0
            assert p.start >= end
            end = p.start + p.size
        assert end <= 30 * GiB - (34 * SECTOR if label == "gpt" else 0)
        assert layout.root.offset == layout.partition("root").start
        assert layout.volume("swap").fstab_spec == f"UUID={ib.SWAP_UUID}"
    with pytest.raises(ib.ImageBuildError):
        ib.plan_layout(label="dos", esp=True)


def test_apt_sources_reads_deb822_and_one_line_formats(tmp_path: Path):
    d = tmp_path / "etc/apt/sources.list.d"
    d.mkdir(parents=True)
    (d / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.invalid/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb deb-src\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://disabled.invalid/x\nSuites: sid\nEnabled: no\n")
    (tmp_path / "etc/apt/sources.list").write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://other.invalid/debian bookworm main\n")
    assert ib.apt_sources(tmp_path) == [
        ("http://mirror.invalid/debian", ("bookworm", "bookworm-updates")),
        ("http://mirror.invalid/debian-security", ("bookworm-security",)),
        ("http://other.invalid/debian", ("bookworm",)),
    ]


def test_mbr_ext4_with_separate_boot_and_unlisted_swap(tiny_tree: Path, tmp_path: Path):
    disk, layout = ib.build_disk(tmp_path / "d.raw", tiny_tree, size=2 * GiB, boot=True,
                                 swap="hidden")
    assert disk.stat().st_size == 2 * GiB
    assert disk.stat().st_blocks * 512 < 64 * MiB  # sparse
    rows = sfdisk_dump(disk)
    assert [r[2] for r in rows] == ["83", "83", "82"]
    assert [(r[0] * SECTOR, r[1] * SECTOR) for r in rows] == [
        (p.start, p.size) for p in layout.partitions]
    assert rows[0][0] == 2048
    boot, root, swap = (layout.volume(r) for r in ("boot", "root", "swap"))
    assert blkid(disk, root.offset)["TYPE"] == "ext4"
    assert blkid(disk, root.offset)["UUID"] == ib.ROOT_UUID
    assert blkid(disk, boot.offset)["UUID"] == ib.BOOT_UUID
    assert blkid(disk, swap.offset)["TYPE"] == "swap"
    assert blkid(disk, swap.offset)["UUID"] == ib.SWAP_UUID
    fstab = ib.read_file(disk, root.offset, "/etc/fstab").decode()
    assert re.search(rf"(?m)^UUID={ib.ROOT_UUID}\s+/\s+ext4", fstab)
    assert re.search(rf"(?m)^UUID={ib.BOOT_UUID}\s+/boot\s+ext4", fstab)
    assert "swap" not in fstab.split("<pass>")[1]  # the swap partition is not named
    # /boot lives in the boot filesystem; grub.cfg paths are relative to it.
    assert not ib.exists(disk, root.offset, f"/boot/vmlinuz-{KVER}")
    assert ib.exists(disk, boot.offset, f"/vmlinuz-{KVER}")
    grub = ib.read_file(disk, boot.offset, "/grub/grub.cfg").decode()
    assert f"search --no-floppy --fs-uuid --set=root {ib.BOOT_UUID}" in grub
    assert (f"linux\t/vmlinuz-{KVER} root=UUID={ib.ROOT_UUID} ro "
            f"console=ttyS0 earlyprintk=ttyS0 rootdelay=300") in grub
    assert ib.read_file(disk, root.offset, "/etc/os-release").startswith(b"PRETTY_NAME")
    assert ib.resolve(disk, root.offset, "/etc/os-release") == "/usr/lib/os-release"
    # The tree itself is untouched (builds work on a hard-linked staging copy).
    assert not (tiny_tree / "etc/fstab").exists()
    assert not list(tiny_tree.parent.glob(".stage-*"))


def test_gpt_xfs_root_esp_bios_boot_and_listed_swap(tiny_tree: Path, tmp_path: Path):
    disk, layout = ib.build_disk(tmp_path / "g.raw", tiny_tree, size=3 * GiB, label="gpt",
                                 root_fs="xfs", swap="fstab", bios_boot=True, esp=True)
    rows = sfdisk_dump(disk)
    assert [r[2] for r in rows] == [ib._PART_TYPES[r][1] for r in
                                   ("bios_boot", "esp", "root", "swap")]
    assert rows[0][0] == 2048
    assert "label: gpt" in sh("sfdisk", "-d", disk)
    root, esp, swap = layout.root, layout.volume("efi"), layout.volume("swap")
    assert blkid(disk, root.offset)["TYPE"] == "xfs"
    assert blkid(disk, root.offset)["UUID"] == ib.ROOT_UUID
    assert blkid(disk, esp.offset)["TYPE"] == "vfat"
    assert blkid(disk, esp.offset)["UUID"] == ib.ESP_UUID
    assert blkid(disk, swap.offset)["TYPE"] == "swap"
    # The ESP holds the grub.cfg stub that points at the root's /boot/grub.
    esp_img = tmp_path / "esp.img"
    with open(disk, "rb") as fi, open(esp_img, "wb") as fo:
        fi.seek(esp.offset)
        fo.write(fi.read(4 * MiB))
    stub = sh("mtype", "-i", esp_img, "::/EFI/debian/grub.cfg")
    assert f"search.fs_uuid {ib.ROOT_UUID} root" in stub
    assert "'/boot/grub'" in stub
    # The XFS root reads back through the kernel's own driver.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sh("mount", "-o", f"ro,loop,offset={root.offset},sizelimit={root.size}", disk, mnt)
    try:
        fstab = (mnt / "etc/fstab").read_text()
        assert os.readlink(mnt / "etc/os-release") == "../usr/lib/os-release"
        assert (mnt / f"boot/vmlinuz-{KVER}").read_bytes() == b"kernel" * 1000
        assert (mnt / "boot/efi").is_dir()
        grub = (mnt / "boot/grub/grub.cfg").read_text()
    finally:
        sh("umount", mnt)
    assert re.search(rf"(?m)^UUID={ib.ROOT_UUID}\s+/\s+xfs", fstab)
    assert re.search(rf"(?m)^UUID={ib.ESP_UUID}\s+/boot/efi\s+vfat", fstab)
    assert re.search(rf"(?m)^UUID={ib.SWAP_UUID}\s+none\s+swap", fstab)
    assert "insmod part_gpt" in grub and "insmod xfs" in grub


def test_lvm_root_and_swap_at_the_offsets_lvm_reports(tiny_tree: Path, tmp_path: Path):
    disk, layout = ib.build_disk(tmp_path / "l.raw", tiny_tree, size=2 * GiB, boot=True,
                                 lvm=True, swap="fstab")
    assert [r[2] for r in sfdisk_dump(disk)] == ["83", "8E"]
    pv = layout.partition("lvm")
    info = blkid(disk, pv.start)
    assert info["TYPE"] == "LVM2_member"
    assert info["UUID"] == layout.lvm.pv_uuid
    assert layout.lvm.pe_start == 1 * MiB and layout.lvm.extent_size == 4 * MiB
    names = [lv.name for lv in layout.lvm.lvs]
    assert names == ["root", "swap_1"]
    root, swap = layout.root, layout.volume("swap")
    assert root.offset == pv.start + layout.lvm.pe_start  # extent 0
    assert blkid(disk, root.offset)["UUID"] == ib.ROOT_UUID
    assert blkid(disk, swap.offset)["TYPE"] == "swap"
    assert swap.offset == root.offset + root.size
    # lvm2's own metadata text (in the PV's metadata area) names both LVs.
    with open(disk, "rb") as fh:
        fh.seek(pv.start)
        meta = fh.read(layout.lvm.pe_start)
    assert b"debian-vg {" in meta and b"root {" in meta and b"swap_1 {" in meta
    fstab = ib.read_file(disk, root.offset, "/etc/fstab").decode()
    assert re.search(r"(?m)^/dev/mapper/debian--vg-root\s+/\s+ext4", fstab)
    assert re.search(r"(?m)^/dev/mapper/debian--vg-swap_1\s+none\s+swap", fstab)
    grub = ib.read_file(disk, layout.volume("boot").offset, "/grub/grub.cfg").decode()
    assert "root=/dev/mapper/debian--vg-root ro" in grub
    assert not any(Path("/etc/lvm/backup").glob("debian-vg*"))


@pytest.mark.parametrize("method", ["qemu-img", "vmimage"])
def test_fixed_vhd_keeps_the_exact_size(tiny_tree: Path, tmp_path: Path, method: str):
    disk = ib.build_disk(tmp_path / "v.raw", tiny_tree, size=2 * GiB)
    vhd = ib.to_vhd(disk, tmp_path / f"{method}.vhd", method=method)
    assert vhd.stat().st_size == 2 * GiB + 512
    assert vhd.stat().st_blocks * 512 < 64 * MiB
    info = json.loads(sh("qemu-img", "info", "-f", "vpc", "--output=json", vhd))
    assert info["virtual-size"] == 2 * GiB
    with open(vhd, "rb") as fh:
        fh.seek(-512, os.SEEK_END)
        assert fh.read(8) == b"conectix"
    assert blkid(vhd, disk.layout.root.offset)["UUID"] == ib.ROOT_UUID


def test_inject_edits_ext4_in_place(tiny_tree: Path, tmp_path: Path):
    disk = ib.build_disk(tmp_path / "i.raw", tiny_tree, size=2 * GiB)
    off = disk.root_offset
    table = sh("sfdisk", "-d", disk.path)
    ib.put_file(disk.path, off, "/root/.bash_history", "ls\nsudo -i\n", mode=0o600)
    ib.put_file(disk.path, off, "/etc/hostname", b"myhost\n")  # replaces
    disk.inject(["symlink /etc/resolv.conf ../run/resolvconf/resolv.conf",
                 "mkdir /home/alice"])
    ib.remove_file(disk.path, off, "/usr/lib/os-release")
    assert ib.read_file(disk.path, off, "/root/.bash_history") == b"ls\nsudo -i\n"
    assert ib.read_file(disk.path, off, "/etc/hostname") == b"myhost\n"
    assert ib.stat(disk.path, off, "/root/.bash_history") == (0o100600, 0, 0)
    assert ib.exists(disk.path, off, "/etc/resolv.conf")
    assert ib.exists(disk.path, off, "/home/alice")
    assert not ib.exists(disk.path, off, "/usr/lib/os-release")
    with pytest.raises(ib.ImageBuildError):
        ib.remove_file(disk.path, off, "/no/such/file")
    fsck = subprocess.run(["e2fsck", "-fn", f"{disk.path}?offset={off}"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr  # debugfs left it consistent
    ib.write_mbr_gap(disk.path)
    with open(disk.path, "rb") as fh:
        fh.seek(100 * SECTOR)
        assert fh.read(SECTOR) == ib.MBR_GAP_JUNK
    assert sh("sfdisk", "-d", disk.path) == table  # the partition table is untouched


# --------------------------------------------------------------------------------------------
# With the full Debian root


@pytest.mark.slow
def test_compliant_disk_holds_a_compliant_debian(tmp_path: Path):
    disk, layout = ib.compliant_disk()
    assert layout.label == "dos" and layout.size == 30 * GiB
    assert disk.stat().st_size == 30 * GiB
    assert [p.role for p in layout.partitions] == ["root"]
    assert sfdisk_dump(disk) == [(2048, 30 * GiB // SECTOR - 2048, "83")]
    off = layout.root.offset
    assert blkid(disk, off)["UUID"] == ib.ROOT_UUID

    def cat(path: str) -> str:
        return ib.read_file(disk, off, path).decode()

    assert 'VERSION_ID="12"' in cat("/etc/os-release")  # a symlink into /usr/lib
    status = cat("/var/lib/dpkg/status")
    installed = set(re.findall(r"(?m)^Package: (\S+)\nStatus: install ok installed", status))
    assert set(ib.PACKAGES) <= installed
    waagent = cat("/etc/waagent.conf")
    for key, value in ib.WAAGENT_SETTINGS.items():
        assert re.search(rf"(?m)^{re.escape(key)}={value}$", waagent), key
    assert re.search(r"(?m)^ClientAliveInterval 180$", cat("/etc/ssh/sshd_config"))
    ssh_dir = ib.debugfs(disk, off, ["ls -l /etc/ssh"])
    assert "ssh_host_" not in ssh_dir and "sshd_config" in ssh_dir
    wants = ib.debugfs(disk, off, ["ls /etc/systemd/system/multi-user.target.wants"])
    assert "ssh.service" in wants and "walinuxagent.service" in wants
    assert not ib.exists(disk, off, "/etc/resolv.conf")
    assert not ib.exists(disk, off, "/usr/sbin/NetworkManager")
    assert cat("/etc/hostname") == "localhost.localdomain\n"
    assert re.search(r"(?m)^auto eth0\niface eth0 inet dhcp$", cat("/etc/network/interfaces"))
    shadow = cat("/etc/shadow")
    assert re.search(r"(?m)^root:\*:", shadow)
    assert all(line.split(":")[1][:1] in ("*", "!") for line in shadow.splitlines())
    assert not ib.exists(disk, off, "/root/.bash_history")
    assert cat("/etc/machine-id") == ""
    grub = cat("/boot/grub/grub.cfg")
    linux_lines = re.findall(r"(?m)^\s*linux\s+(\S+) (.*)$", grub)
    assert len(linux_lines) == 3
    for kernel, args in linux_lines:
        assert kernel == f"/boot/vmlinuz-{layout.kernel}"
        assert args.startswith(f"root=UUID={ib.ROOT_UUID} ro ")
        assert "console=ttyS0 earlyprintk=ttyS0 rootdelay=300" in args
    assert ib.exists(disk, off, f"/boot/vmlinuz-{layout.kernel}")
    assert ib.exists(disk, off, f"/boot/initrd.img-{layout.kernel}")
    assert 'GRUB_CMDLINE_LINUX="console=ttyS0 earlyprintk=ttyS0 rootdelay=300"' in cat(
        "/etc/default/grub")
    fstab = cat("/etc/fstab")
    assert re.findall(r"(?m)^[^#\s]\S*", fstab) == [f"UUID={ib.ROOT_UUID}"]


@pytest.mark.slow
def test_a_violation_copy_takes_well_under_a_second():
    master = ib.compliant_disk()
    start = time.monotonic()
    with ib.compliant_disk_copy() as disk:
        ib.put_file(disk.path, disk.root_offset, "/root/.bash_history", "ls\n")
        elapsed = time.monotonic() - start
        assert ib.read_file(disk.path, disk.root_offset, "/root/.bash_history") == b"ls\n"
        copy_path = disk.path
    assert not copy_path.exists()
    assert not ib.exists(master.path, master.root_offset, "/root/.bash_history")
    print(f"copy + inject: {elapsed:.2f} s")
    assert elapsed < 5  # about 0.1 s with the reflink pool, 3 s with a sparse copy


@pytest.mark.slow
def test_full_root_on_lvm_xfs_with_gpt_esp(tmp_path: Path):
    disk, layout = ib.build_disk(tmp_path / "full.raw", size=4 * GiB, label="gpt",
                                 root_fs="xfs", lvm=True, esp=True, bios_boot=True,
                                 boot=True, swap="hidden")
    assert blkid(disk, layout.partition("lvm").start)["TYPE"] == "LVM2_member"
    assert blkid(disk, layout.root.offset)["TYPE"] == "xfs"
    assert blkid(disk, layout.volume("swap").offset)["TYPE"] == "swap"
    assert ib.exists(disk, layout.volume("boot").offset, f"/vmlinuz-{layout.kernel}")
    esp = layout.volume("efi")
    esp_img = tmp_path / "esp.img"
    with open(disk, "rb") as fi, open(esp_img, "wb") as fo:
        fi.seek(esp.offset)
        fo.write(fi.read(esp.size))
    loader = tmp_path / "BOOTX64.EFI"
    sh("mcopy", "-i", esp_img, "::/EFI/BOOT/BOOTX64.EFI", loader)
    assert loader.read_bytes()[:2] == b"MZ"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    sh("mount", "-o", f"ro,loop,offset={layout.root.offset},sizelimit={layout.root.size}",
       disk, mnt)
    try:
        assert "ClientAliveInterval 180" in (mnt / "etc/ssh/sshd_config").read_text()
        assert (mnt / "usr/sbin/waagent").exists()
        assert not any((mnt / "boot").iterdir()) or sorted(
            p.name for p in (mnt / "boot").iterdir()) == ["efi"]
    finally:
        sh("umount", mnt)


@pytest.mark.slow
def test_sample_image_script_makes_a_30_gib_fixed_vhd(tmp_path: Path):
    out = tmp_path / "sample.vhd"
    subprocess.run([REPO / "scripts/build-sample-image.sh", out], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    assert out.stat().st_size == 30 * GiB + 512
    assert out.stat().st_blocks * 512 < 2 * GiB
    info = json.loads(sh("qemu-img", "info", "-f", "vpc", "--output=json", out))
    assert info["virtual-size"] == 30 * GiB
    assert blkid(out, MiB)["UUID"] == ib.ROOT_UUID


def test_edit_file_keeps_mode_and_owner(tiny_tree: Path, tmp_path: Path):
    (tiny_tree / "etc/ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n"
                                                 "ClientAliveInterval 180\n")
    os.chmod(tiny_tree / "etc/ssh/sshd_config", 0o600)
    os.chown(tiny_tree / "etc/ssh/sshd_config", 0, 42)
    disk = ib.build_disk(tmp_path / "e.raw", tiny_tree, size=2 * GiB)
    off = disk.root_offset
    assert ib.stat(disk.path, off, "/etc/ssh/sshd_config") == (0o100600, 0, 42)
    new = ib.edit_file(disk.path, off, "/etc/ssh/sshd_config",
                       lambda t: t.replace("ClientAliveInterval 180", "ClientAliveInterval 300"))
    assert ib.read_file(disk.path, off, "/etc/ssh/sshd_config").decode() == new
    assert "ClientAliveInterval 300" in new
    assert ib.stat(disk.path, off, "/etc/ssh/sshd_config") == (0o100600, 0, 42)
    assert ib.stat(disk.path, off, "/bin")[0] == 0o120777
