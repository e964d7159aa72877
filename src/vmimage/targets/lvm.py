"""LVM: volume groups on the disk's physical volumes, their logical volumes as partitions.

pyvslvm reads the PV label and the metadata text and maps a logical volume's extents onto
the physical volumes; we hand it the PV partitions as windows over the cached disk, and get
each LV back as something readable at an offset, on which filesystems open like on any
partition. A VG with a PV on another disk cannot be read whole: that is a note, not a crash.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.disk.sources import FileWindow
from vmimage.targets import signatures
from vmimage.targets.base import Partition
from vmimage.targets.filesystems import short_error
from vmimage.targets.partitions import Volume

if TYPE_CHECKING:
    import pyvslvm


class LvReader:
    """An LVM logical volume as a :class:`~vmimage.disk.sources.Reader`."""

    def __init__(self, lv: pyvslvm.logical_volume, size: int) -> None:
        self.lv, self.size = lv, size

    def read(self, offset: int, length: int) -> bytes:
        """Bytes of the LV at ``offset``, through pyvslvm's extent mapping."""
        length = max(0, min(length, self.size - offset))
        return bytes(self.lv.read_buffer_at_offset(length, offset)) if length else b""


@dataclass
class VolumeGroups:
    """The logical volumes found, the open handles (closed with the target), and notes."""

    volumes: list[Volume] = field(default_factory=list)
    handles: list[pyvslvm.handle] = field(default_factory=list)
    #: The file objects handed to pyvslvm, which keeps no reference to them itself.
    files: list[FileWindow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close every pyvslvm handle."""
        for handle in self.handles:
            handle.close()
        self.handles.clear()
        self.files.clear()


def _mapper_name(vg: str, lv: str) -> str:
    """``/dev/mapper`` doubles the hyphens inside each name: ``vg-os/root`` is ``vg--os-root``."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def _copy(window: FileWindow) -> FileWindow:
    """A window of its own for pyvslvm, whose seeks must not move anyone else's position."""
    return FileWindow(window.reader, window.offset, window.size)


def _close(handle: pyvslvm.handle) -> None:
    """Close a handle that may not have opened."""
    with contextlib.suppress(OSError):
        handle.close()


def open_volume_groups(pvs: list[Volume]) -> VolumeGroups:
    """Open each volume group whose physical volumes are among ``pvs`` (LVM2_member volumes)."""
    import pyvslvm

    found = VolumeGroups()
    by_uuid = {pv.part.uuid: pv for pv in pvs}
    done: set[str] = set()
    for pv in pvs:
        if pv.part.uuid in done:
            continue
        handle = pyvslvm.handle()
        vg_name, members = "", [pv.part.uuid]
        try:
            found.files.append(_copy(pv.window))
            handle.open_file_object(found.files[-1])
            vg = handle.get_volume_group()
            vg_name = vg.get_name()
            members = [vg.get_physical_volume(i).get_identifier()
                       for i in range(vg.get_number_of_physical_volumes())]
            done.update(members)
            missing = [m for m in members if m not in by_uuid]
            if missing:
                found.notes.append(f"LVM volume group {vg_name}: physical volume(s) "
                                   f"{', '.join(missing)} are not on this disk; its logical "
                                   "volumes cannot be read")
                _close(handle)
                continue
            files = [_copy(by_uuid[m].window) for m in members]
            found.files += files
            handle.open_physical_volume_files_as_file_objects(files)
            vg = handle.get_volume_group()  # the one fetched before cannot read the PVs
        except OSError as exc:
            if len(members) > 1:  # libvslvm fails on every group of several PVs (tested)
                found.notes.append(f"LVM volume group {vg_name} spans {len(members)} physical "
                                   "volumes, which libvslvm cannot open; its logical volumes "
                                   "are not read")
            else:
                found.notes.append(f"{pv.part.name}: LVM physical volume cannot be read: "
                                   f"{short_error(exc)}")
            _close(handle)
            continue
        found.handles.append(handle)
        found.volumes += _logical_volumes(vg, pv, found.notes)
    return found


def _logical_volumes(vg: pyvslvm.volume_group, pv: Volume, notes: list[str]) -> list[Volume]:
    """Each LV of ``vg`` as a volume named ``vg/lv``, its content probed like a partition's.

    pyvslvm does not expose segments, so ``start`` is the (first) PV partition's start:
    where the LV lives, not the exact extent.
    """
    vg_name = vg.get_name()
    volumes = []
    for index in range(vg.get_number_of_logical_volumes()):
        lv = vg.get_logical_volume(index)
        name, size = lv.get_name(), lv.get_size()
        window = FileWindow(LvReader(lv, size), 0, size)
        try:
            sig = signatures.probe(window)
        except OSError as exc:
            notes.append(f"{vg_name}/{name}: cannot be read: "
                         f"{short_error(exc)}")
            sig = signatures.Signature("unknown")
        part = Partition(f"{vg_name}/{name}", pv.part.start, size, "lvm", "lvm", "lvm",
                         sig.fs_type, sig.label, sig.uuid)
        volumes.append(Volume(part, window, devices=(
            f"/dev/mapper/{_mapper_name(vg_name, name)}", f"/dev/{vg_name}/{name}")))
    return volumes
