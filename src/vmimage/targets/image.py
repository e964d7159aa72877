"""A disk image file as a target: its partitions, its root filesystem and fstab's mounts.

A disk with no Linux root may hold Windows: the NTFS volume with
``/Windows/System32/config/SYSTEM`` (the registry's SYSTEM hive, which every installed Windows
has and a data disk does not) is then the target's ``/`` (:attr:`ImageTarget.os_family`).

Opening reads the partition table, a few kilobytes of each partition (signatures), the LVM
metadata, and the superblocks and ``/etc`` of the filesystems that might be the root; never a
scan of the disk, so a 30 GiB sparse VHD opens in milliseconds. Reads go through one block
cache (:mod:`vmimage.targets.blockio`) and ``bytes_read`` says what the image cost.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Collection, Iterator
from dataclasses import replace

from vmimage.disk.inspect import DiskInfo, open_disk
from vmimage.disk.sources import DiskSource
from vmimage.errors import UnsupportedError
from vmimage.log import debugging, get
from vmimage.targets import lvm, partitions, paths
from vmimage.targets.base import (
    BYTES_MAX,
    DiskLayout,
    FileStat,
    Partition,
    PathTarget,
    UnreadableError,
)
from vmimage.targets.blockio import BLOCK, CAPACITY, BlockCache
from vmimage.targets.filesystems import BINDING_ERRORS, Filesystem, short_error
from vmimage.targets.fstab import FstabEntry, parse_fstab
from vmimage.targets.mounts import Mount, MountTable, VolumeIndex, names_a_device
from vmimage.targets.partitions import Table, Volume
from vmimage.targets.signatures import READABLE, ROOT_TYPES

SWAP_MOUNTPOINT = "[SWAP]"  # Partition.mountpoint of a swap volume fstab names, as lsblk shows
#: Filesystems a root could be on but which vmimage cannot read.
UNREADABLE_ROOT = frozenset({"btrfs", "crypto_LUKS"})
#: Filesystems opened while looking for the root: a real disk has a handful.
MAX_ROOT_CANDIDATES = 64
#: What makes an NTFS volume a Windows system volume; looked up case-insensitively.
WINDOWS_MARKER = "/Windows/System32/config/SYSTEM"
_log = get("reads")


class ImageTarget(PathTarget):
    """Read a Linux or Windows system from a disk image file (raw, VHD, VHDX, qcow2, VMDK),
    read-only."""

    def __init__(self, path: str | os.PathLike[str], *,
                 opened: tuple[DiskInfo, DiskSource] | None = None, block: int = BLOCK) -> None:
        """Open the image file at ``path``; or, with ``opened``, read a disk already opened
        by its caller (a blob: :mod:`vmimage.targets.remote`), named ``path`` in reports,
        through a cache of ``block``-sized blocks (the same bytes held in memory)."""
        self.name = os.fspath(path)
        self.disk_info: DiskInfo
        self.disk_info, self._source = opened if opened is not None else open_disk(path)
        self._cache = BlockCache(self._source, block, CAPACITY * BLOCK // block)
        self._filesystems: dict[str, Filesystem] = {}
        self._groups = lvm.VolumeGroups()
        self._mounts = MountTable()  # what can be read, by path
        self._points: dict[str, Volume] = {}  # where fstab mounts what, readable or not
        self._swap: set[str] = set()
        self._first_mib: tuple[tuple[tuple[int, int], ...], bool] | None = None
        self._table = Table("none")
        self._volumes: list[Volume] = []
        self._index = VolumeIndex([])
        self._closed = False
        #: What the reader met and could not use: damaged tables, unreadable filesystems.
        self.notes: list[str] = []
        #: The root filesystem's /etc/fstab, parsed (empty when there is none).
        self.fstab: list[FstabEntry] = []
        #: ``linux`` (a root with fstab or os-release), ``windows`` (the Windows volume is
        #: ``/``) or None (nothing readable is a system: a data disk, or a damaged one).
        self.os_family: str | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self.capabilities = frozenset({"disk", "filesystem"} if self._mounts.mounts else {"disk"})

    # ---- opening ----------------------------------------------------------------------------

    def _open(self) -> None:
        self._table = partitions.read_table(self._cache, self._source.size)
        self.notes += self._table.notes
        pvs = [v for v in self._table.volumes if v.part.fs_type == "LVM2_member"]
        if pvs:
            self._groups = lvm.open_volume_groups(pvs)
            self.notes += self._groups.notes
        self._volumes = self._table.volumes + self._groups.volumes
        self._index = VolumeIndex(self._volumes)
        root = self._find_root()
        if root is None:
            windows = self._find_windows()
            if windows is None:
                self._no_root()
                return
            self.os_family = "windows"
            self._mounts.add(Mount("/", windows, self._filesystems[windows.part.name]))
            self._points["/"] = windows
            return
        self.os_family = "linux"
        self._mounts.add(Mount("/", root, self._filesystems[root.part.name]))
        self._points["/"] = root
        self._mount_fstab()

    def _fs(self, volume: Volume, options: tuple[str, ...] = ()) -> Filesystem | None:
        """The volume's filesystem, opened once (with the options of its first mount); None
        (with a note) when it cannot be."""
        name = volume.part.name
        if name not in self._filesystems:
            try:
                self._filesystems[name] = Filesystem(volume.part.fs_type, volume.window, options)
            except (*BINDING_ERRORS, ValueError) as exc:  # a damaged superblock, whatever form
                self.notes.append(f"{name}: {volume.part.fs_type} cannot be opened: "
                                  f"{short_error(exc)}")
                return None
        return self._filesystems[name]

    def _root_score(self, volume: Volume, fs: Filesystem) -> int:
        """3: its fstab mounts itself at /; 2: fstab and os-release; 1: one of them; 0: none."""
        try:
            has_fstab = fs.kind("/etc/fstab") == "file"
            has_release = fs.kind("/etc/os-release") is not None  # Debian's is a symlink
            if not has_fstab:
                return int(has_release)
            entries = parse_fstab(fs.read("/etc/fstab").decode("utf-8", "replace"))
        except OSError:
            return 0
        if any(e.file == "/" and self._index.match(e.spec) is volume for e in entries):
            return 3
        return 2 if has_release else 1

    def _candidates(self, types: Collection[str], what: str) -> Iterator[Volume]:
        """The volumes of these filesystem types, each filesystem once (a hostile table may
        list one behind many entries), at most :data:`MAX_ROOT_CANDIDATES` (noted beyond)."""
        seen: set[tuple[int, int, str]] = set()
        for volume in self._volumes:
            where = (volume.window.offset, volume.part.size, volume.part.uuid)
            if volume.part.fs_type not in types or where in seen:
                continue
            seen.add(where)
            if len(seen) > MAX_ROOT_CANDIDATES:
                self.notes.append(f"more than {MAX_ROOT_CANDIDATES} {what}; the others were "
                                  "not looked at")
                return
            yield volume

    def _find_root(self) -> Volume | None:
        """The root filesystem: the one with /etc/fstab and /etc/os-release.

        Among several, the one whose own fstab mounts it at ``/`` wins: a rescue or old root
        copied onto a data partition must not be taken for the system.
        """
        best: tuple[int, Volume] | None = None
        for volume in self._candidates(ROOT_TYPES, "filesystems could be the root"):
            fs = self._fs(volume)
            score = self._root_score(volume, fs) if fs else 0
            if score and (best is None or score > best[0]):
                best = (score, volume)
            if score == 3:
                break
        return best[1] if best else None

    def _find_windows(self) -> Volume | None:
        """The Windows system volume: the first NTFS volume holding the SYSTEM hive.

        System Reserved, Recovery and data volumes are NTFS too, without it; they stay in the
        layout, unmounted. A volume that cannot be opened is noted (``_fs``) and passed over.
        """
        found: list[Volume] = []
        for volume in self._candidates(frozenset({"ntfs"}), "NTFS volumes"):
            fs = self._fs(volume)
            try:
                if fs is not None and fs.kind(WINDOWS_MARKER) == "file":
                    found.append(volume)
            except OSError as exc:
                self.notes.append(f"{volume.part.name}: ntfs: {exc}")
        if len(found) > 1:
            self.notes.append("more than one NTFS volume holds Windows ("
                              + ", ".join(v.part.name for v in found)
                              + f"); {found[0].part.name} is taken for the system")
        return found[0] if found else None

    @property
    def windows_volume(self) -> Partition | None:
        """The partition holding Windows (mounted at ``/``), or None."""
        return self.root_partition if self.os_family == "windows" else None

    def _no_root(self) -> None:
        """No readable root: refuse an image whose root we cannot read, else say so."""
        unreadable = [v.part for v in self._volumes if v.part.fs_type in UNREADABLE_ROOT]
        if unreadable:
            raise UnsupportedError(self.name, f"{unreadable[0].fs_type}: cannot read; "
                                              "vmimage reads ext2/3/4 and XFS")
        self.notes.append("no root filesystem found (none holds /etc/fstab or /etc/os-release, "
                          f"no NTFS volume holds {WINDOWS_MARKER})")

    def _mount_fstab(self) -> None:
        """Mount what the root's fstab names on this disk; note what cannot be mounted."""
        try:
            self.fstab = parse_fstab(self.read_text("/etc/fstab"))
        except OSError as exc:
            self.notes.append(f"the root filesystem's /etc/fstab cannot be read: {exc}")
            return
        for entry in self.fstab:
            volume = self._index.match(entry.spec)
            point = paths.normalize(entry.file)
            if volume is None:
                if names_a_device(entry.spec):
                    where = "swap" if entry.is_swap else point
                    self.notes.append(f"fstab line {entry.line}: {entry.spec} ({where}) "
                                      "matches no partition or logical volume of this disk")
            elif entry.is_swap:
                self._swap.add(volume.part.name)
            elif point == "/" and volume is not self._points["/"]:
                self.notes.append(f"fstab line {entry.line}: / is {entry.spec} "
                                  f"({volume.part.name}), but the system found is on "
                                  f"{self._points['/'].part.name}")
            elif entry.file.startswith("/") and point != "/":
                self._mount(point, volume, entry.options)

    def _mount(self, point: str, volume: Volume, options: tuple[str, ...]) -> None:
        """Record where fstab puts the volume, and mount its filesystem if it can be read."""
        self._points[point] = volume
        kind = volume.part.fs_type
        if kind not in READABLE:
            self.notes.append(f"{volume.part.name} ({kind}) mounted at {point}: vmimage "
                              f"does not read {kind}; its files are not visible")
            return
        mounted = self._fs(volume, options)  # None: _fs noted why
        if mounted is not None:
            self._mounts.add(Mount(point, volume, mounted))

    # ---- disk -------------------------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        """Bytes read from the image file so far."""
        return self._source.bytes_read

    @property
    def read_calls(self) -> int:
        """Reads asked of the block cache so far (each binding read is one)."""
        return self._cache.calls

    def _partition(self, volume: Volume) -> Partition:
        """The volume's partition with its mount point filled in."""
        name = volume.part.name
        point = next((p for p, v in self._points.items() if v is volume), None)
        if point is None and name in self._swap:
            point = SWAP_MOUNTPOINT
        return replace(volume.part, mountpoint=point) if point else volume.part

    def layout(self) -> DiskLayout:
        """The partitions and LVM logical volumes, and what lies in the first MiB."""
        if self._first_mib is None:
            self._first_mib = partitions.first_mib(self._cache, self._source.size,
                                                   self._table.gpt)
        ranges, boot_code = self._first_mib
        return DiskLayout(self._table.scheme, self._source.size,
                          tuple(self._partition(v) for v in self._volumes), ranges, boot_code,
                          tuple(self.notes))

    def mounts(self) -> dict[str, Partition]:
        """Mount point -> the partition or LV that fstab mounts there, sorted by point.

        Filesystems vmimage cannot read (a btrfs /home, an NTFS data partition) are here too: this
        says where the disk's partitions go, not what can be read.
        """
        return {point: self._partition(self._points[point]) for point in sorted(self._points)}

    def partition_at(self, mountpoint: str) -> Partition | None:
        """The partition or LV mounted exactly at ``mountpoint`` (``/``, ``/boot``...)."""
        volume = self._points.get(paths.normalize(mountpoint))
        return self._partition(volume) if volume else None

    def partition_for(self, path: str) -> Partition | None:
        """The partition or LV holding ``path``: its longest mount point, symlinks resolved."""
        try:
            path = self.resolve(path)
        except OSError:
            path = paths.normalize(path)
        for point in sorted(self._points, key=len, reverse=True):
            if point == "/" or path == point or path.startswith(point + "/"):
                return self._partition(self._points[point])
        return None

    def mount_windows(self) -> dict[str, tuple[Partition, int | None, int]]:
        """Mount point -> (partition, byte offset on the disk or None, size): where each
        filesystem fstab mounts (and the root) lies, for ``vmimage generalize`` to mount it at
        an offset of the image file. None for a logical volume: its place on the disk is the
        LVM metadata's to say (:mod:`vmimage.targets.lvmmeta`)."""
        return {point: (self._partition(volume),
                        None if volume.part.scheme == "lvm" else volume.window.offset,
                        volume.window.size)
                for point, volume in sorted(self._points.items())}

    @property
    def reader(self) -> BlockCache:
        """The virtual disk's bytes (through the block cache), for readers of on-disk
        metadata such as LVM's."""
        return self._cache

    def physical_volumes(self) -> list[tuple[Partition, int]]:
        """The disk's LVM physical volumes: (partition, byte offset on the disk)."""
        return [(v.part, v.window.offset) for v in self._table.volumes
                if v.part.fs_type == "LVM2_member"]

    @property
    def root_partition(self) -> Partition | None:
        """The partition or LV holding the root filesystem."""
        return self.partition_at("/")

    # ---- files ------------------------------------------------------------------------------

    def _locate(self, path: str) -> tuple[Filesystem, str]:
        found = self._mounts.locate(path)
        if found is None:
            raise FileNotFoundError(2, "No such file or directory (no root filesystem)", path)
        return found[0].fs, found[1]

    def _kind(self, path: str) -> str | None:
        found = self._mounts.locate(path)
        if found is None:
            return None
        return found[0].fs.kind(found[1])

    def _readlink(self, path: str) -> str:
        fs, inner = self._locate(path)
        return fs.readlink(inner)

    def _follow(self, path: str) -> str:
        """What resolving goes through: the link's target; an NTFS reparse point refuses."""
        fs, inner = self._locate(path)
        return fs.follow(inner)

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The path inside the image with every symlink resolved inside the image."""
        if not self._mounts.mounts:
            raise FileNotFoundError(2, "No such file or directory (no root filesystem)", path)
        return paths.resolve(path, self._kind, self._follow, follow_last)

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """A regular file's content (its first ``limit`` bytes), following links inside the
        image; refused over ``max_size`` (:class:`~vmimage.targets.base.UnreadableError`)."""
        fs, inner = self._locate(self.resolve(path))
        try:
            data = fs.read(inner, limit, max_size)
            if debugging(_log):
                _log.debug("file %s: %d bytes", path, len(data))
            return data
        except UnreadableError as exc:
            raise UnreadableError(path, exc.problem, exc.errno or errno.EIO) from None

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes of a regular file from ``offset``, only those read from the
        image (a registry lookup reads a few cells of a 100 MiB hive)."""
        fs, inner = self._locate(self.resolve(path))
        try:
            return fs.read_at(inner, offset, size)
        except UnreadableError as exc:
            raise UnreadableError(path, exc.problem, exc.errno or errno.EIO) from None

    def stat(self, path: str, follow: bool = True) -> FileStat:
        """Mode, size, owner and modification time."""
        fs, inner = self._locate(self.resolve(path, follow_last=follow))
        return fs.lstat(inner)

    def iterdir(self, path: str) -> list[str]:
        """Sorted names in a directory."""
        fs, inner = self._locate(self.resolve(path))
        return fs.listdir(inner)

    def readlink(self, path: str) -> str:
        """A symlink's target as stored."""
        return self._readlink(self.resolve(path, follow_last=False))

    def close(self) -> None:
        """Close the filesystems, the LVM handles and the image file."""
        for fs in self._filesystems.values():
            fs.close()
        self._filesystems.clear()
        self._mounts = MountTable()
        self._points.clear()
        self._groups.close()
        if not self._closed:
            self._closed = True
            self._source.close()

    def __enter__(self) -> ImageTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
