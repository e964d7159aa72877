"""Match fstab's device names to the disk's volumes, and map paths to mounted filesystems.

fstab names a filesystem by ``UUID=``, ``LABEL=``, ``PARTUUID=``, ``PARTLABEL=``, a
``/dev/disk/by-*`` link, an LVM name or a kernel device name. The image is the VM's first
disk, so ``/dev/sda2``, ``/dev/vda2``, ``/dev/xvda2`` and ``/dev/nvme0n1p2`` all mean its
second partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmimage.targets.filesystems import Filesystem
from vmimage.targets.partitions import Volume

_KERNEL_NAME = re.compile(r"^/dev/(?:(?:[shv]|xv)da|(?:nvme0n1|mmcblk0)(?=p\d|$))p?(\d*)$")
_BY = {"by-uuid": "UUID", "by-label": "LABEL", "by-partuuid": "PARTUUID",
       "by-partlabel": "PARTLABEL"}
_DEVICE_SPEC = re.compile(r"^(UUID|LABEL|PARTUUID|PARTLABEL)=|^/dev/")


def _udev_unescape(name: str) -> str:
    r"""``/dev/disk/by-label`` escapes ``/`` and spaces as ``\x2f``, ``\x20``."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


def names_a_device(spec: str) -> bool:
    """Whether an fstab spec names a block device (not ``proc``, ``tmpfs``, a bind source)."""
    return bool(_DEVICE_SPEC.match(spec))


def match_spec(spec: str, volumes: list[Volume]) -> Volume | None:
    """The volume an fstab spec names, or None when it names none of this disk's."""
    spec = spec.strip('"')
    if spec.startswith("/dev/disk/"):
        parts = spec.split("/")
        if len(parts) == 5 and parts[3] in _BY:
            spec = f"{_BY[parts[3]]}={_udev_unescape(parts[4])}"
    key, _, value = spec.partition("=")
    value = value.strip('"')
    for volume in volumes:
        part = volume.part
        if ((key == "UUID" and value and value.lower() == part.uuid.lower())
                or (key == "LABEL" and value and value == part.label)
                or (key == "PARTUUID" and value and value.lower() == volume.partuuid.lower())
                or (key == "PARTLABEL" and value and value == volume.partlabel)
                or spec in volume.devices):
            return volume
    kernel = _KERNEL_NAME.match(spec)
    if kernel:
        number = int(kernel.group(1)) if kernel.group(1) else None
        for volume in volumes:
            if volume.part.scheme in ("mbr", "gpt") and volume.number == number:
                return volume
            if number is None and volume.part.scheme == "none":
                return volume
    return None


@dataclass
class Mount:
    """A filesystem mounted at a point of the image's tree."""

    point: str
    volume: Volume
    fs: Filesystem


class MountTable:
    """Longest-prefix lookup from an image path to (filesystem, path inside it)."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []

    def add(self, mount: Mount) -> None:
        """Mount on top of what is there; the later of two mounts at one point wins."""
        self.mounts = [m for m in self.mounts if m.point != mount.point]
        self.mounts.append(mount)
        self.mounts.sort(key=lambda m: len(m.point), reverse=True)

    def locate(self, path: str) -> tuple[Mount, str] | None:
        """The mount holding ``path`` (normalized, symlinks resolved) and the path inside it."""
        for mount in self.mounts:
            if mount.point == "/":
                return mount, path
            if path == mount.point or path.startswith(mount.point + "/"):
                return mount, path[len(mount.point):] or "/"
        return None
