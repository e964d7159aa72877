"""Bootable copies of the compliant Debian disk, for the tests that boot a real VM.

``tests.imagebuild`` builds a compliant disk with a kernel, an initramfs and grub.cfg, but
nothing in the MBR: ``grub-install`` wants a block device. Here a copy is made bootable the
way grub-install would make it, by hand (0.2 s):

- a GRUB core image made with ``grub-mkimage -O i386-pc`` from the image's own GRUB modules
  (its ``/usr/lib/grub/i386-pc``), with an early config that finds the root by UUID, is
  written into the MBR gap (sector 1 on: boot.img's default next sector), and ``boot.img``'s
  first 440 bytes into the MBR (the disk signature and the partition table stay);
- the initramfs is rebuilt by the image's own ``mkinitramfs`` (in a chroot of the tree) with
  ``MODULES=list`` and only the drivers a QEMU VM needs (virtio, ext4): 6 MB instead of the
  image's 36 MB ``MODULES=most``, which GRUB reads through BIOS calls and the kernel unpacks,
  both slow under TCG (the kernel's part of the boot: 16 → 12 s, docs/benchmarks.md). A generic initramfs
  is an image property Azure's hardware needs (Hyper-V drivers), not something a rule checks;
- ``rootdelay=300``, which the guide requires, makes Debian's initramfs sleep 300 s
  unconditionally: a small newc cpio holding an ``/init`` without that sleep is appended to
  the initrd (later members of a concatenated initramfs win). ``/proc/cmdline`` still shows
  ``rootdelay=300``, so the image stays what it was, only faster to boot;
- the ``panic`` variant adds ``rdinit=/nonexistent`` to grub.cfg's kernel lines (and drops
  ``rootdelay=300``, which the kernel itself would sleep on before mounting): the kernel then
  mounts the root itself, cannot (``root=UUID=`` needs the initramfs), and panics within
  seconds: the fail-fast test's image.

Results are cached beside the compliant disk, built once under a lock, keyed by the compliant
disk's key and this file's text. Read only: boot them through an overlay (``vm boot`` does).
Command line: ``python3 -m tests.bootimage [normal|panic]`` prints the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from tests import imagebuild as ib

#: The provisioning variants (``vm boot --provision``'s tests): the compliant image, and one
#: image per reason Azure's deployment of it would fail.
PROVISION_VARIANTS = ("agent-disabled", "agent-off", "static-ip", "not-generalized")
#: ``cloud-init``: the compliant image with cloud-init provisioning it (imagebuild's
#: ``cloud_init_tree``), as Azure's own Debian images do.
VARIANTS = ("normal", "panic", "swap", "uefi", "cloud-init", *PROVISION_VARIANTS)
_INIT_SLEEP = re.compile(r'^(\s*)ROOTDELAY="\$\{x#rootdelay=\}"$', re.M)


def _key() -> str:
    text = Path(__file__).read_bytes()
    return hashlib.sha256(ib.compliant_key().encode() + text).hexdigest()[:16]


def newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc (``cpio -H newc``) archive of regular files ``(name, mode, data)``."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        raw = name.encode() + b"\0"
        fields = [ino if name != "TRAILER!!!" else 0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                  len(raw), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out + b"\0" * (-len(out) % 512))


def fast_init(tree: Path) -> bytes:
    """Debian's initramfs ``/init`` with ``rootdelay=`` parsed but never slept on."""
    text = (tree / "usr/share/initramfs-tools/init").read_text()
    fixed, n = _INIT_SLEEP.subn(r"\1ROOTDELAY=", text)
    if n != 1:
        raise ib.ImageBuildError("initramfs-tools' init changed: rootdelay parsing not found")
    return fixed.encode()


#: What a QEMU VM with a virtio disk needs to mount an ext4 root (their dependencies follow).
QEMU_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "ext4")


def small_initrd(tree: Path, kernel: str) -> bytes:
    """The tree's own initramfs, rebuilt by its ``mkinitramfs`` with only ``QEMU_MODULES``."""
    with tempfile.TemporaryDirectory(dir=tree / "tmp", prefix="bootimage-") as tmp:
        conf = Path(tmp)
        ib.run(["cp", "-a", f"{tree}/etc/initramfs-tools/.", conf])
        text = (conf / "initramfs.conf").read_text()
        (conf / "initramfs.conf").write_text(re.sub(r"(?m)^MODULES=.*$", "MODULES=list", text))
        with open(conf / "modules", "a") as fh:
            fh.write("".join(f"{m}\n" for m in QEMU_MODULES))
        inside = f"/tmp/{conf.name}"
        ib.run(["chroot", tree, "mkinitramfs", "-d", inside, "-o", f"{inside}/initrd.img", kernel])
        return (conf / "initrd.img").read_bytes()


def _core_image(tree: Path, layout: ib.Layout, work: Path) -> bytes:
    boot = layout.boot_volume
    prefix = "/grub" if layout.volume("boot") else "/boot/grub"
    early = work / "early.cfg"
    early.write_text(f"search.fs_uuid {boot.uuid} root\nset prefix=($root){prefix}\n")
    core = work / "core.img"
    mods = ["biosdisk", "part_msdos", "part_gpt", "ext2", "xfs", "normal", "linux", "boot",
            "configfile", "search", "search_fs_uuid", "echo", "test", "gzio", "serial",
            "terminal", "loadenv", "sleep", "all_video"]
    ib.run(["grub-mkimage", "-O", "i386-pc", "-d", tree / "usr/lib/grub/i386-pc", "-c", early,
            "-p", prefix, "-o", core, *mods])
    return core.read_bytes()


def make_bootable(disk: ib.Disk, tree: Path, variant: str = "normal") -> None:
    """Make ``disk`` boot and speed up its initramfs, in place: GRUB's boot code into the MBR
    and its gap for an MBR disk; a GPT disk with an EFI system partition already holds GRUB's
    EFI loader (``imagebuild.build_disk(esp=True)``), which OVMF starts."""
    layout = disk.layout
    if layout.label == "dos":
        _mbr_boot_code(disk, tree)
    elif not (layout.label == "gpt" and layout.volume("efi")):
        raise ib.ImageBuildError("only MBR disks and GPT disks with an ESP are made bootable")
    vol = layout.boot_volume
    rel = "" if layout.volume("boot") else "/boot"
    initrd = f"{rel}/initrd.img-{layout.kernel}"
    data = small_initrd(tree, layout.kernel)
    data += b"\0" * (-len(data) % 512) + newc([("init", 0o100755, fast_init(tree))])
    ib.put_file(disk.path, vol.offset, initrd, data, mode=0o644)
    if variant == "swap":
        _firstboot_swap(disk.path, layout.root.offset)
    if variant in PROVISION_VARIANTS:
        _unprovisionable(disk.path, layout.root.offset, variant)
    if variant == "panic":
        ib.edit_file(disk.path, vol.offset, f"{rel}/grub/grub.cfg",
                     lambda t: re.sub(r"(?m)^(\s*linux\t.*)$", r"\1 rdinit=/nonexistent",
                                    t.replace(" rootdelay=300", "")))


#: What publishers' first-boot scripts do (certification-research.md §5): make and enable a
#: swap file. Offline the image holds no swap (no fstab line, no swap file, no .swap unit);
#: after its first boot it swaps.
FIRSTBOOT_SWAP_UNIT = """[Unit]
Description=Example first-boot configuration: a swap file
ConditionPathExists=!/swapfile

[Service]
Type=oneshot
ExecStart=/bin/dd if=/dev/zero of=/swapfile bs=1M count=32
ExecStart=/bin/chmod 600 /swapfile
ExecStart=/sbin/mkswap /swapfile
ExecStart=/sbin/swapon /swapfile

[Install]
WantedBy=multi-user.target
"""


def _firstboot_swap(disk: Path, offset: int) -> None:
    unit = "/etc/systemd/system/firstboot-swap.service"
    ib.put_file(disk, offset, unit, FIRSTBOOT_SWAP_UNIT)
    ib.inject(disk, offset, ['symlink "/etc/systemd/system/multi-user.target.wants/'
                             f'firstboot-swap.service" "{unit}"'])


def _unprovisionable(disk: Path, offset: int, variant: str) -> None:
    """What publishers get wrong (certification-research.md §5 row 8): the agent's unit not
    enabled; ``Provisioning.Agent=disabled`` in waagent.conf (the agent then reports Ready
    and creates no user); a static address in the interfaces file (no DHCP, no WireServer);
    ``/var/lib/waagent/provisioned`` left in the image (not deprovisioned)."""
    if variant == "agent-disabled":
        ib.remove_file(disk, offset, "/etc/systemd/system/multi-user.target.wants/"
                                     "walinuxagent.service")
    elif variant == "agent-off":
        ib.edit_file(disk, offset, "/etc/waagent.conf",
                     lambda t: re.sub(r"(?m)^Provisioning\.Agent=.*$",
                                      "Provisioning.Agent=disabled", t))
    elif variant == "static-ip":
        ib.edit_file(disk, offset, "/etc/network/interfaces",
                     lambda t: t.replace("iface eth0 inet dhcp", "iface eth0 inet static\n"
                                         "    address 192.168.1.10/24\n    gateway 192.168.1.1"))
    elif variant == "not-generalized":
        ib.put_file(disk, offset, "/var/lib/waagent/provisioned", "")


def _mbr_boot_code(disk: ib.Disk, tree: Path) -> None:
    with tempfile.TemporaryDirectory(dir=ib.scratch_dir()) as tmp:
        core = _core_image(tree, disk.layout, Path(tmp))
    if len(core) > (2048 - 1) * 512:
        raise ib.ImageBuildError(f"core.img is {len(core)} bytes: larger than the MBR gap")
    boot_img = (tree / "usr/lib/grub/i386-pc/boot.img").read_bytes()
    with open(disk.path, "r+b") as fh:
        fh.seek(0)
        fh.write(boot_img[:440])
        fh.seek(512)
        fh.write(core)


def _prune(directory: Path, key: str, max_idle: float = 2 * 3600) -> None:
    """Delete bootable disks of other keys (an older bootimage.py) unused for a while."""
    for old in directory.glob("bootable-*"):
        if key not in old.name and time.time() - old.stat().st_mtime > max_idle:
            old.unlink(missing_ok=True)


def bootable_disk(variant: str = "normal") -> ib.Disk:
    """The cached bootable disk of ``variant`` (read only: boot it through an overlay)."""
    if variant not in VARIANTS:
        raise ValueError(variant)
    key = _key()
    path = ib.store_dir() / "disks" / f"bootable-{variant}-{key}.raw"
    meta = path.with_suffix(".json")
    if not meta.exists():
        with ib.locked(f"bootable-{variant}-{key}"):
            if not meta.exists():
                start = time.monotonic()
                _prune(path.parent, key)
                tmp = path.with_name(f".{path.name}.tmp")
                tree = ib.cloud_init_tree() if variant == "cloud-init" else ib.compliant_tree()
                if variant == "uefi":
                    disk = ib.build_disk(tmp, tree, label="gpt", esp=True)
                elif variant == "cloud-init":
                    disk = ib.build_disk(tmp, tree)
                else:
                    disk = ib.compliant_copy(tmp)
                make_bootable(disk, tree, variant)
                tmp.rename(path)
                meta.write_text(json.dumps(disk.layout.to_dict()))
                print(f"bootimage: {variant} disk in {time.monotonic() - start:.1f} s: {path}",
                      file=sys.stderr)
    return ib.Disk(path, ib.Layout.from_dict(json.loads(meta.read_text())))


def content_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes in a canonical form: its size, then the offset and bytes
    of every 1 MiB-aligned chunk that is not all zeros.

    Equal digests mean equal bytes; holes (found with SEEK_DATA/SEEK_HOLE) are never read, so
    a 30 GiB image with 800 MB of data takes seconds, and the result does not depend on how
    the filesystem happens to map the file (a freshly written file's extents change as it
    is flushed).
    """
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(b"%d\n" % size)
    zero = bytes(chunk)
    done = -1  # the last chunk hashed
    with open(path, "rb") as fh:
        fd = fh.fileno()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            for index in range(max(start // chunk, done + 1), (end - 1) // chunk + 1):
                data = os.pread(fd, chunk, index * chunk)
                if data != zero[:len(data)]:
                    h.update(b"%d\n" % index + data)
                done = index
            pos = end
    return h.hexdigest()


if __name__ == "__main__":
    print(bootable_disk(sys.argv[1] if len(sys.argv) > 1 else "normal").path)
    sys.exit(0)
