"""A disk image as a generalize target: where its filesystems lie, and whether it may be
changed.

vmimage reads images with its own readers, but generalizing writes: deleting trees, renaming
temporary files, keeping owners and modes. Doing that through our own ext4 and XFS writers
would be a second filesystem implementation to trust with publishers' images, so the image's
filesystems are mounted by the kernel, each at its byte offset in the file
(``mount -o loop,offset=N,sizelimit=M``), in a mount namespace of their own
(:mod:`vmimage.generalize.worker`). The root is found exactly as ``vmimage check`` finds it
(MBR, GPT, LVM, the root's fstab for /boot and the rest), by :class:`ImageTarget`.

Only formats whose virtual disk is the file's bytes can be mounted so: raw and fixed VHD
(the footer is the file's last 512 bytes, past every partition). Others are refused with
the command that converts them.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import InputError

if TYPE_CHECKING:
    from vmimage.targets.image import ImageTarget

#: Filesystems the kernel mounts for us; the rest of fstab's entries are noted, not mounted.
MOUNTABLE = frozenset({"ext2", "ext3", "ext4", "xfs", "vfat"})
#: How long a loop device that still names the image may take to go (the kernel detaches an
#: auto-clearing loop device just after the mount namespace that used it ends).
LOOP_RELEASE_WAIT = 3.0


@dataclass(frozen=True)
class Extent:
    """A filesystem to mount: where fstab puts it, its type, its bytes in the image file."""

    point: str
    fs_type: str
    offset: int
    size: int

    def to_dict(self) -> dict[str, object]:
        """Plain data for the worker's command line."""
        return {"point": self.point, "fs_type": self.fs_type, "offset": self.offset,
                "size": self.size}


@dataclass(frozen=True)
class ImageLayout:
    """What to mount, in order (the root first), and what could not be."""

    path: str
    extents: tuple[Extent, ...]
    notes: tuple[str, ...]


def is_image(target: str) -> bool:
    """A regular file (or a link to one) is taken as a disk image, a directory as a root."""
    try:
        return stat.S_ISREG(Path(target).stat().st_mode)
    except OSError:
        return False


def locate(path: str) -> ImageLayout:
    """The root filesystem and what its fstab mounts from the same disk.

    Raises:
        InputError: not a raw or fixed VHD image, no Linux root, or a root that cannot be
            mounted at an offset (a logical volume spread over the disk).
    """
    from vmimage.disk.inspect import FORMAT_NAMES, RAW, VHD_FIXED
    from vmimage.targets.image import ImageTarget

    with ImageTarget(path) as target:
        fmt = target.disk_info.format
        if fmt not in (RAW, VHD_FIXED):
            raise InputError(path, f"is a {FORMAT_NAMES[fmt]}: generalize changes raw and "
                                   "fixed VHD images only; convert it first (vmimage vhd "
                                   "convert IN OUT.vhd)")
        windows = target.mount_windows()
        if "/" not in windows:
            raise InputError(path, "has no Linux root filesystem (none holds /etc/fstab or "
                                   "/etc/os-release)")
        lvm: dict[str, tuple[int, int] | None] | None = None  # read when an LV is met
        extents, notes = [], list(target.notes)
        notes += [f"a swap area exists ({p.name}, {p.size // 2**20} MiB): removing a partition "
                  "is not done; see vmimage checks show LINUX-NO-SWAP"
                  for p in target.layout().partitions if p.fs_type == "swap"]
        for point, (part, offset, size) in windows.items():
            if part.fs_type not in MOUNTABLE:
                if point == "/":
                    raise InputError(path, f"its root filesystem is {part.fs_type}: "
                                           "generalize mounts ext2/3/4 and XFS roots")
                notes.append(f"{point} ({part.fs_type}) is not mounted: its files are not "
                             "generalized")
                continue
            if offset is None:
                if lvm is None:
                    lvm = _lvm_extents(target)
                found = lvm.get(part.name)
                if found is None:
                    message = (f"{point} is on logical volume {part.name}, which does not lie "
                               "in one piece on one physical volume")
                    if point == "/":
                        raise InputError(path, message + ": cannot be mounted at an offset")
                    notes.append(message + ": not mounted, its files are not generalized")
                    continue
                offset, size = found
            extents.append(Extent(point, part.fs_type, offset, size))
    extents.sort(key=lambda e: (e.point.count("/") if e.point != "/" else 0, e.point))
    return ImageLayout(path, tuple(extents), tuple(notes))


def _lvm_extents(target: ImageTarget) -> dict[str, tuple[int, int] | None]:
    """``vg/lv`` -> (offset on the disk, size) of each logical volume that lies in one piece
    on one physical volume (None for the others), from the PVs' LVM metadata."""
    from vmimage.targets import lvmmeta

    found: dict[str, tuple[int, int] | None] = {}
    for part, offset in target.physical_volumes():
        try:
            layout = lvmmeta.read_layout(target.reader, offset, part.size)
        except (OSError, ValueError):
            continue
        for lv in layout.lvs:
            where = lvmmeta.linear_extent(layout, lv.name)
            found[f"{layout.vg_name}/{lv.name}"] = (None if where is None
                                                    else (offset + where[0], where[1]))
    return found


def refuse_unwritable(path: str) -> None:
    """Refuse an image or root that must not or cannot be changed.

    Raises:
        InputError: on a read-only filesystem, or without write permission bits at all
            (``chmod a-w`` is how people protect an image; root could write it anyway).
    """
    st = Path(path).stat()
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise InputError(path, "is on a read-only filesystem (generalize a copy: --output COPY)")
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise InputError(path, "is read-only (generalize a copy: --output COPY, or make it "
                               "writable)")


def refuse_in_use(path: str) -> None:
    """Refuse an image another process has open, or a loop device still backs.

    A VM running from it, a ``losetup`` or a mount of one of its partitions would see its
    filesystem change under it, or overwrite our changes.

    Raises:
        InputError: naming the process or the loop device.
    """
    st = Path(path).stat()
    user = _opener(st)
    if user is not None:
        raise InputError(path, f"is in use by process {user}: stop it first")
    deadline = time.monotonic() + LOOP_RELEASE_WAIT
    while (loop := _backing_loop(path, st)) is not None:
        if time.monotonic() > deadline:
            raise InputError(path, f"is in use: loop device /dev/{loop} is attached to it "
                                   f"(losetup -d /dev/{loop} once nothing uses it)")
        time.sleep(0.05)


def _opener(st: os.stat_result) -> str | None:
    """``PID (command)`` of another process with the file open, or None."""
    mine = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == mine:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                other = Path(f"/proc/{pid}/fd/{fd}").stat()
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    comm = "?"
                return f"{pid} ({comm})"
    return None


def _backing_loop(path: str, st: os.stat_result) -> str | None:
    """The name of a loop device backed by the file, or None."""
    real = os.path.realpath(path)
    try:
        loops = os.listdir("/sys/block")
    except OSError:
        return None
    for loop in loops:
        if not loop.startswith("loop"):
            continue
        try:
            backing = Path(f"/sys/block/{loop}/loop/backing_file").read_text().strip()
        except OSError:
            continue
        if backing == real:
            return loop
        try:
            same = Path(backing).stat()
        except OSError:
            continue
        if (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino):
            return loop
    return None
