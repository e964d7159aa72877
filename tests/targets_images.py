"""Small real disk images for the target tests, made with the tools that make them in the wild.

One source tree (a few hundred KiB shaped like a Debian root: ``/bin -> usr/bin``, an absolute
link into ``/etc``, a link loop, setuid and sticky modes, owners other than root) is written
into disks with ``sfdisk``, ``mkfs.ext2/3/4 -d``, ``mkfs.xfs`` plus a loop mount and ``cp -a``,
``mkswap``, ``mkfs.vfat``, ``mkfs.btrfs --rootdir``, and ``pvcreate``/``lvcreate`` on a loop
device; then converted with ``qemu-img`` and vmimage's own VHD writer. The tree on the host is
the oracle: every target must read back what it holds.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

KiB, MiB = 1024, 1024 * 1024
SECTOR = 512
MTIME = 1_700_000_000  # whole seconds: ext2's 128-byte inodes keep no nanoseconds

HOSTNAME = "image-test\n"
ROOT_UUID = "5a0c2c34-0d4e-4f0e-9a51-7d2b8c1e0a01"
BOOT_UUID = "5a0c2c34-0d4e-4f0e-9a51-7d2b8c1e0a02"
SWAP_UUID = "5a0c2c34-0d4e-4f0e-9a51-7d2b8c1e0a03"
BOOT_PARTUUID = "9d1b7a64-3c1e-4b7e-8f2a-0e6c5d4b3a02"
LVM_CONFIG = "devices { use_devicesfile=0 } backup { backup=0 archive=0 }"
XFS_ENV = {**os.environ, "TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}

LABEL_FSTAB = """# /etc/fstab: static file system information.
LABEL=root  /          ext4  errors=remount-ro  0 1
LABEL=boot  /boot      ext2  defaults           0 2
LABEL=EFI   /boot/efi  vfat  umask=0077         0 1
LABEL=swap  none       swap  sw                 0 0
proc        /proc      proc  defaults           0 0
"""

# (path, content, mode, uid, gid)
FILES: list[tuple[str, bytes, int, int, int]] = [
    ("etc/hostname", HOSTNAME.encode(), 0o640, 1000, 1001),
    ("etc/shadow", b"root:*:19000:0:99999:7:::\nalice:!:19000::::::\n", 0o640, 0, 42),
    ("etc/ssh/sshd_config", b"Include /etc/ssh/sshd_config.d/*.conf\nClientAliveInterval 180\n",
     0o644, 0, 0),
    ("etc/ssh/sshd_config.d/10-first.conf", b"PasswordAuthentication no\n", 0o644, 0, 0),
    ("etc/ssh/sshd_config.d/20-second.conf", b"ClientAliveInterval 120\n", 0o644, 0, 0),
    ("etc/ssh/sshd_config.d/.hidden.conf", b"# not matched by *.conf\n", 0o644, 0, 0),
    ("etc/with space.conf", b"spaced = yes\n", 0o644, 0, 0),
    ("usr/lib/os-release", b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
     b'VERSION_ID="12"\n', 0o644, 0, 0),
    ("usr/lib/big.bin", bytes((i * 7 + i // 251) % 256 for i in range(300 * KiB + 123)),
     0o644, 0, 0),
    ("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o4755, 0, 0),
    ("usr/sbin/sshd", b"\x7fELF fake sshd\n", 0o755, 0, 0),
    ("home/alice/.bash_history", b"ls\nsudo -i\n", 0o600, 1000, 1000),
    ("boot/vmlinuz-6.1.0-13-cloud-amd64", b"kernel image " * 100, 0o644, 0, 0),
    ("boot/grub/grub.cfg", b"linux /vmlinuz-6.1.0-13-cloud-amd64 root=LABEL=root "
     b"console=ttyS0 rootdelay=300\n", 0o444, 0, 0),
]
DIRS: list[tuple[str, int, int, int]] = [
    ("root", 0o700, 0, 0), ("tmp", 0o1777, 0, 0), ("var/log/empty", 0o755, 0, 0),
    ("boot/efi", 0o700, 0, 0), ("home/alice", 0o750, 1000, 1000),
]
LINKS: list[tuple[str, str]] = [
    ("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
    ("etc/os-release", "../usr/lib/os-release"),
    ("etc/abs-link", "/etc/hostname"),  # absolute: the image's /etc, never the host's
    ("etc/kernel-link", "/boot/vmlinuz-6.1.0-13-cloud-amd64"),  # crosses into /boot
    ("boot/current", "vmlinuz-6.1.0-13-cloud-amd64"),
    ("etc/loop-a", "loop-b"), ("etc/loop-b", "loop-a"),
    ("etc/dangling", "/nonexistent/file"),
    ("etc/up-and-over", "../../../../usr/bin/tool"),  # .. cannot climb above /
]


def run(*cmd: str | os.PathLike[str], env: dict[str, str] | None = None) -> str:
    """Run a tool, never reading standard input; fail with its error output."""
    done = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=300, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def make_tree(dest: Path, fstab: str = LABEL_FSTAB) -> Path:
    """Write the source tree; every mtime is a whole second, so each filesystem keeps it."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel, *_ in DIRS:
        (dest / rel).mkdir(parents=True, exist_ok=True)
    for rel, content, *_ in FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(content)
    (dest / "etc/fstab").write_text(fstab)
    for rel, target in LINKS:
        (dest / rel).symlink_to(target)
    for rel, _, mode, uid, gid in FILES:
        os.chown(dest / rel, uid, gid)
        os.chmod(dest / rel, mode)
    for rel, mode, uid, gid in DIRS:
        os.chown(dest / rel, uid, gid)
        os.chmod(dest / rel, mode)
    set_mtimes(dest)
    return dest


def set_mtimes(tree: Path) -> None:
    """Give every entry a distinct whole-second mtime, children before their directories."""
    entries = sorted(tree.rglob("*"), key=lambda p: str(p), reverse=True)
    for index, path in enumerate([*entries, tree]):
        os.utime(path, (MTIME + index, MTIME + index), follow_symlinks=False)


def split_boot(full: Path, work: Path) -> tuple[Path, Path]:
    """The root tree with an empty /boot, and /boot's content as a tree of its own."""
    root, boot = work / "root-tree", work / "boot-tree"
    run("cp", "-a", full, root)
    run("cp", "-a", full / "boot", boot)
    for child in (root / "boot").iterdir():
        if child.is_dir() and not child.is_symlink():
            if child.name == "efi":
                continue  # the mount point of the ESP stays, empty, as in the full tree
            shutil.rmtree(child)
        else:
            child.unlink()
    stamp = os.lstat(full / "boot").st_mtime
    os.utime(root / "boot", (stamp, stamp))
    return root, boot


def write_fstab(tree: Path, fstab: str) -> None:
    """Replace the tree's fstab, keeping its mtime."""
    stamp = os.lstat(tree / "etc/fstab").st_mtime
    (tree / "etc/fstab").write_text(fstab)
    os.utime(tree / "etc/fstab", (stamp, stamp))
    os.utime(tree / "etc", (os.lstat(tree / "etc").st_mtime,) * 2)


def blank(path: Path, size: int) -> Path:
    """A sparse file of ``size`` bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sfdisk(disk: Path, script: str) -> None:
    """Write a partition table with sfdisk's script syntax."""
    done = subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(disk)],
                          input=script, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"sfdisk failed: {done.stderr}")


def copy_in(image: Path, disk: Path, offset: int) -> None:
    """Copy a filesystem image into the disk at ``offset``, leaving its holes as holes."""
    fd_in, fd_out = os.open(image, os.O_RDONLY), os.open(disk, os.O_WRONLY)
    try:
        size, pos = os.fstat(fd_in).st_size, 0
        while pos < size:
            chunk = os.pread(fd_in, MiB, pos)
            if chunk.strip(b"\0"):
                os.pwrite(fd_out, chunk, offset + pos)
            pos += len(chunk)
    finally:
        os.close(fd_in)
        os.close(fd_out)


def mkfs_ext(disk: Path, offset: int, size: int, tree: Path | None, kind: str = "ext4",
             label: str = "", uuid: str = "") -> None:
    """``mkfs.ext4 -E offset=N -d TREE disk SIZEk``: straight into the partition."""
    opts = f"offset={offset}" + ("" if kind == "ext2" else ",lazy_journal_init=1")
    cmd: list[str | os.PathLike[str]] = [f"mkfs.{kind}", "-q", "-F", "-E", opts]
    if kind == "ext2":
        cmd += ["-I", "128"]  # the old 128-byte inodes: seconds only, as old images have
    if label:
        cmd += ["-L", label]
    if uuid:
        cmd += ["-U", uuid]
    if tree is not None:
        cmd += ["-d", tree]
    run(*cmd, disk, f"{size // KiB}k")


@contextlib.contextmanager
def loop_mounted(image: Path) -> Iterator[Path]:
    """Loop-mount a filesystem image in a fresh directory, unmounting whatever happens."""
    with tempfile.TemporaryDirectory(prefix="vmimage-mnt-") as mnt:
        run("mount", "-o", "loop", image, mnt)
        try:
            yield Path(mnt)
        finally:
            run("umount", mnt)


def mkfs_xfs(disk: Path, offset: int, size: int, tree: Path, work: Path, label: str = "",
             uuid: str = "") -> None:
    """XFS holds no ``-d``: make it on a file, loop-mount it, ``cp -a`` the tree, copy it in."""
    image = blank(work / f"xfs-{offset}.img", size)
    cmd: list[str | os.PathLike[str]] = ["mkfs.xfs", "-q", "-f"]
    if label:
        cmd += ["-L", label]
    if uuid:
        cmd += ["-m", f"uuid={uuid}"]
    run(*cmd, image, env=XFS_ENV)  # the env lifts mkfs.xfs's 300 MB minimum (as fstests do)
    with loop_mounted(image) as mnt:
        run("cp", "-a", f"{tree}/.", mnt)
        stat = os.lstat(tree)
        os.chown(mnt, stat.st_uid, stat.st_gid)
        os.chmod(mnt, stat.st_mode & 0o7777)
    copy_in(image, disk, offset)
    image.unlink()


def mkswap(disk: Path, offset: int, size: int, work: Path, label: str = "",
           uuid: str = "") -> None:
    """``mkswap`` on a file, copied into the partition."""
    image = blank(work / f"swap-{offset}.img", size)
    cmd: list[str | os.PathLike[str]] = ["mkswap"]
    if label:
        cmd += ["-L", label]
    if uuid:
        cmd += ["-U", uuid]
    run(*cmd, image)
    copy_in(image, disk, offset)
    image.unlink()


def mkfs_vfat(disk: Path, offset: int, size: int, work: Path, label: str = "") -> None:
    """An EFI system partition's FAT, made on a file and copied in."""
    image = work / f"vfat-{offset}.img"
    run("mkfs.vfat", "-C", *(["-n", label] if label else []), image, str(size // KiB))
    copy_in(image, disk, offset)
    image.unlink()


def mkfs_btrfs(disk: Path, offset: int, size: int, tree: Path, work: Path,
               label: str = "") -> None:
    """``mkfs.btrfs --rootdir`` on a file, copied in."""
    image = blank(work / f"btrfs-{offset}.img", size)
    run("mkfs.btrfs", "-q", *(["-L", label] if label else []), "--rootdir", tree, image)
    copy_in(image, disk, offset)
    image.unlink()


@contextlib.contextmanager
def loop_device(disk: Path, offset: int, size: int) -> Iterator[str]:
    """A loop device over part of a disk file, detached whatever happens."""
    device = run("losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size),
                 disk).strip()
    try:
        yield device
    finally:
        run("losetup", "-d", device)


def make_lvm(disk: Path, offset: int, size: int, vg: str,
             lvs: list[tuple[str, int]]) -> dict[str, int]:
    """A PV in the partition, a VG on it, and LVs of the given MiB sizes (rulings: no
    device-mapper here, so ``lvcreate --driverloaded n -an -Zn``).

    Returns each LV's byte offset on the disk: the partition, plus the PV's data start, plus
    the LV's first extent, which is where its filesystem must be written.
    """
    pieces = make_lvm_pvs(disk, [(offset, size)], vg, lvs)
    return {name: runs[0][0] for name, runs in pieces.items()}


def make_lvm_pvs(disk: Path, pvs: list[tuple[int, int]], vg: str,
                 lvs: list[tuple[str, int]]) -> dict[str, list[tuple[int, int]]]:
    """One VG over several PV partitions; each LV's pieces as (disk offset, length), in order.

    An LV larger than one PV spans them: its filesystem is written piece by piece
    (:func:`write_pieces`).
    """
    cfg = ["--config", LVM_CONFIG]
    with contextlib.ExitStack() as stack:
        devices = [stack.enter_context(loop_device(disk, off, size)) for off, size in pvs]
        for device in devices:
            run("pvcreate", *cfg, "-ff", "-y", device)
        run("vgcreate", *cfg, vg, *devices)
        for name, mib in lvs:
            run("lvcreate", *cfg, "--driverloaded", "n", "-an", "-Zn", "-L", f"{mib}m",
                "-n", name, vg)
        extent = int(run("vgs", *cfg, "--noheadings", "--units", "b", "--nosuffix",
                         "-o", "vg_extent_size", vg).split()[0])
        data_start = {}
        for device, (off, _) in zip(devices, pvs, strict=True):
            pe_start = int(run("pvs", *cfg, "--noheadings", "--units", "b", "--nosuffix",
                               "-o", "pe_start", device).split()[0])
            data_start[device] = off + pe_start
        pieces: dict[str, list[tuple[int, int]]] = {}
        for line in run("lvs", *cfg, "--noheadings", "-o", "lv_name,seg_pe_ranges",
                        vg).splitlines():
            name, *ranges = line.split()
            for spec in ranges:  # "/dev/loop3:0-1"
                device, span = spec.rsplit(":", 1)
                first, last = (int(x) for x in span.split("-"))
                pieces.setdefault(name, []).append(
                    (data_start[device] + first * extent, (last - first + 1) * extent))
        return pieces


def write_pieces(image: Path, disk: Path, pieces: list[tuple[int, int]]) -> None:
    """Write a filesystem image into an LV's pieces on the disk, in order."""
    data = image.read_bytes()
    fd = os.open(disk, os.O_WRONLY)
    try:
        pos = 0
        for offset, length in pieces:
            chunk = data[pos:pos + length]
            if chunk.strip(b"\0"):
                os.pwrite(fd, chunk, offset)
            pos += length
    finally:
        os.close(fd)


def blkid(disk: Path, offset: int, size: int) -> dict[str, str]:
    """What blkid's low-level probe says at an offset: the oracle for types, labels, UUIDs."""
    done = subprocess.run(["blkid", "-p", "-O", str(offset), "-S", str(size), "-o", "export",
                           str(disk)], capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def qemu_convert(src: Path, dest: Path, fmt: str, *options: str) -> Path:
    """``qemu-img convert``: the peer that writes the formats we read."""
    run("qemu-img", "convert", "-f", "raw", "-O", fmt, *options, src, dest)
    return dest


# ---- the images, built once per test process -------------------------------------------------

@functools.cache
def workdir() -> Path:
    """A directory for this process's images (pytest-xdist workers each build their own)."""
    path = Path(tempfile.mkdtemp(prefix="vmimage-targets-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def full_tree() -> Path:
    """The source tree every image holds, as the host sees it: the oracle."""
    return make_tree(workdir() / "full")


def _fresh(name: str) -> Path:
    work = workdir() / name
    work.mkdir()
    return work


GPT_FSTAB = f"""UUID={ROOT_UUID}  /  ext4  errors=remount-ro  0 1
PARTUUID={BOOT_PARTUUID}  /boot  ext2  defaults  0 2
LABEL=EFI  /boot/efi  vfat  umask=0077  0 1
/dev/disk/by-uuid/{SWAP_UUID}  none  swap  sw  0 0
"""
GPT_BIOS = "21686148-6449-6E6F-744E-656564454649"
GPT_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
# (name, start sector, sectors): bios-boot, ESP, /boot, /, swap
GPT_PARTS = {"p1": (2048, 2048), "p2": (4096, 16384), "p3": (20480, 16384),
             "p4": (36864, 49152), "p5": (86016, 8192)}


@functools.cache
def gpt_image() -> Path:
    """GPT: BIOS-boot, ESP (vfat), /boot (ext2), / (ext4), swap; fstab by UUID and PARTUUID."""
    work = _fresh("gpt")
    root, boot = split_boot(full_tree(), work)
    write_fstab(root, GPT_FSTAB)
    disk = blank(work / "disk.raw", 48 * MiB)
    p = GPT_PARTS
    types = {"p1": f"{GPT_BIOS}, name=bios", "p2": f"{GPT_ESP}, name=esp",
             "p3": f"{GPT_LINUX}, name=boot, uuid={BOOT_PARTUUID}",
             "p4": f"{GPT_LINUX}, name=root", "p5": f"{GPT_SWAP}, name=swap"}
    sfdisk(disk, "label: gpt\nlabel-id: 0B5E3C1A-7D2E-4F60-9A8B-1C2D3E4F5A6B\n" + "".join(
        f"start={start}, size={size}, type={types[name]}\n" for name, (start, size) in p.items()))
    mkfs_vfat(disk, p["p2"][0] * SECTOR, p["p2"][1] * SECTOR, work, "EFI")
    mkfs_ext(disk, p["p3"][0] * SECTOR, p["p3"][1] * SECTOR, boot, "ext2", "boot", BOOT_UUID)
    mkfs_ext(disk, p["p4"][0] * SECTOR, p["p4"][1] * SECTOR, root, "ext4", "root", ROOT_UUID)
    mkswap(disk, p["p5"][0] * SECTOR, p["p5"][1] * SECTOR, work, "swap", SWAP_UUID)
    return disk


MBR_FSTAB = """/dev/sda5  /      xfs   defaults  0 1
/dev/sda1  /boot  ext3  defaults  0 2
/dev/sda6  none   swap  sw        0 0
"""
MBR_PARTS = {"p1": (2048, 16384), "p2": (18432, 55296), "p5": (20480, 40960),
             "p6": (63488, 8192)}


@functools.cache
def mbr_image() -> Path:
    """MBR: /boot (ext3, bootable), an extended partition with / (XFS) and swap inside."""
    work = _fresh("mbr")
    root, boot = split_boot(full_tree(), work)
    write_fstab(root, MBR_FSTAB)
    disk = blank(work / "disk.raw", 36 * MiB)
    p = MBR_PARTS
    sfdisk(disk, f"""label: dos
label-id: 0x1234abcd
start={p["p1"][0]}, size={p["p1"][1]}, type=83, bootable
start={p["p2"][0]}, size={p["p2"][1]}, type=5
start={p["p5"][0]}, size={p["p5"][1]}, type=83
start={p["p6"][0]}, size={p["p6"][1]}, type=82
""")
    mkfs_ext(disk, p["p1"][0] * SECTOR, p["p1"][1] * SECTOR, boot, "ext3", "boot")
    mkfs_xfs(disk, p["p5"][0] * SECTOR, p["p5"][1] * SECTOR, root, work, "root")
    mkswap(disk, p["p6"][0] * SECTOR, p["p6"][1] * SECTOR, work, "swap")
    return disk


def vg_name() -> str:
    """Unique per process (two xdist workers build at once); the hyphen tests mapper names."""
    return f"vm-t{os.getpid()}"


LVM_PARTS = {"p1": (2048, 16384), "p2": (18432, 65536)}


@functools.cache
def lvm_image() -> tuple[Path, dict[str, int]]:
    """MBR: /boot (ext4), an LVM PV holding the root LV (ext4) and a swap LV."""
    work = _fresh("lvm")
    vg = vg_name()
    root, boot = split_boot(full_tree(), work)
    mapper = vg.replace("-", "--")
    write_fstab(root, f"""/dev/mapper/{mapper}-root  /      ext4  defaults  0 1
LABEL=boot                 /boot  ext4  defaults  0 2
/dev/{vg}/swap             none   swap  sw        0 0
""")
    disk = blank(work / "disk.raw", 42 * MiB)
    p = LVM_PARTS
    sfdisk(disk, f"""label: dos
start={p["p1"][0]}, size={p["p1"][1]}, type=83
start={p["p2"][0]}, size={p["p2"][1]}, type=8e
""")
    mkfs_ext(disk, p["p1"][0] * SECTOR, p["p1"][1] * SECTOR, boot, "ext4", "boot")
    offsets = make_lvm(disk, p["p2"][0] * SECTOR, p["p2"][1] * SECTOR, vg,
                       [("root", 20), ("swap", 4)])
    mkfs_ext(disk, offsets["root"], 20 * MiB, root, "ext4", "root")
    mkswap(disk, offsets["swap"], 4 * MiB, work, "lvswap")
    return disk, offsets


@functools.cache
def whole_disk_image() -> Path:
    """No partition table: one ext4 filesystem over the whole disk, /boot inside it."""
    work = _fresh("whole")
    disk = blank(work / "disk.raw", 24 * MiB)
    mkfs_ext(disk, 0, 24 * MiB, full_tree(), "ext4", "root")
    return disk


@functools.cache
def converted(fmt: str) -> Path:
    """The GPT image in another format: our fixed VHD writer, or qemu-img for the rest."""
    src = gpt_image()
    work = workdir()
    if fmt == "vhd-fixed":
        from vmimage.disk.convert import convert

        convert(src, work / "gpt-fixed.vhd")
        return work / "gpt-fixed.vhd"
    options = {"vhd-dynamic": ("vpc", "-o", "subformat=dynamic,force_size=on"),
               "qcow2": ("qcow2",), "vmdk": ("vmdk",), "vhdx": ("vhdx",)}[fmt]
    return qemu_convert(src, work / f"gpt.{fmt}", *options)
