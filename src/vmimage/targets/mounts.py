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


def _canonical(spec: str) -> tuple[str, str, str]:
    """``(spec, key, value)`` with a ``/dev/disk/by-*`` link turned into its ``KEY=value``."""
    spec = spec.strip('"')
    if spec.startswith("/dev/disk/"):
        parts = spec.split("/")
        if len(parts) == 5 and parts[3] in _BY:
            spec = f"{_BY[parts[3]]}={_udev_unescape(parts[4])}"
    key, _, value = spec.partition("=")
    return spec, key, value.strip('"')


class VolumeIndex:
    """The disk's volumes by every name fstab may give them, built once.

    Matching each fstab line of each candidate root against every volume is quadratic in the
    number of volumes, and a hostile GPT holds thousands: one dictionary lookup per line is
    not. The first volume (in disk order) that carries a name wins, as the loop it replaces.
    """

    def __init__(self, volumes: list[Volume]) -> None:
        self._names: dict[tuple[str, str], Volume] = {}
        self._numbers: dict[int, Volume] = {}
        self._whole: Volume | None = None
        for volume in volumes:
            part = volume.part
            for key, value in (("UUID", part.uuid.lower()), ("LABEL", part.label),
                               ("PARTUUID", volume.partuuid.lower()),
                               ("PARTLABEL", volume.partlabel),
                               *(("device", d) for d in volume.devices)):
                if value:
                    self._names.setdefault((key, value), volume)
            if part.scheme in ("mbr", "gpt") and volume.number is not None:
                self._numbers.setdefault(volume.number, volume)
            if part.scheme == "none" and self._whole is None:
                self._whole = volume

    def match(self, spec: str) -> Volume | None:
        """The volume an fstab spec names, or None when it names none of this disk's."""
        spec, key, value = _canonical(spec)
        if value:
            lookup = value.lower() if key in ("UUID", "PARTUUID") else value
            found = self._names.get((key, lookup))
            if found is not None:
                return found
        found = self._names.get(("device", spec))
        if found is not None:
            return found
        kernel = _KERNEL_NAME.match(spec)
        if kernel:
            if kernel.group(1):
                return self._numbers.get(int(kernel.group(1)))
            return self._whole
        return None


def match_spec(spec: str, volumes: list[Volume] | VolumeIndex) -> Volume | None:
    """The volume an fstab spec names, or None when it names none of this disk's."""
    index = volumes if isinstance(volumes, VolumeIndex) else VolumeIndex(volumes)
    return index.match(spec)


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
