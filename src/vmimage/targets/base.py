"""The one read-only protocol every target implements: disk image, mounted root, live VM.

Checks and facts read a system only through :class:`Target`, so the same check runs offline on
an image, on a directory, and live over SSH. Paths are absolute POSIX paths *inside* the
target's root; symlinks resolve inside that root, never on the host (rulings).

Missing files raise the builtin ``FileNotFoundError``; a directory where a file was expected
raises ``IsADirectoryError``; ``NotADirectoryError`` likewise. Nothing else is raised for a
path that simply is not there, so facts can catch exactly those.
"""

from __future__ import annotations

import stat as stat_module
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class FileStat:
    """What ``stat`` tells about a path inside a target."""

    mode: int
    size: int
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0

    @property
    def is_dir(self) -> bool:
        """A directory."""
        return stat_module.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        """A regular file."""
        return stat_module.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        """A symbolic link (only from ``stat(..., follow=False)``)."""
        return stat_module.S_ISLNK(self.mode)


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition (or LVM logical volume) of the disk, with what was found inside it.

    ``fs_type`` comes from the content's signature, never from the partition type alone:
    ``ext2``/``ext3``/``ext4``, ``xfs``, ``btrfs``, ``vfat``, ``ntfs``, ``swap``, ``LVM2_member``
    or ``unknown``. ``mountpoint`` is where the image's fstab mounts it (``/``, ``/boot``...).
    """

    name: str  # "p1", "p2" ... for partitions; "vg/lv" for logical volumes
    start: int  # byte offset on the disk (for an LV: on its PV's partition, informational)
    size: int
    scheme: str  # "mbr", "gpt", "lvm", or "none" for a filesystem on the whole disk
    type_id: str  # MBR type byte as "0x83", GPT type GUID, or "lvm"
    type_name: str  # "linux", "swap", "lvm", "efi", "bios-boot", "extended", "microsoft", ...
    fs_type: str
    label: str = ""
    uuid: str = ""
    mountpoint: str | None = None
    bootable: bool = False


@dataclass(frozen=True)
class DiskLayout:
    """The disk as a whole: partition table, partitions, and what lies in its first MiB."""

    scheme: str  # "mbr", "gpt" or "none"
    size: int
    partitions: tuple[Partition, ...] = ()
    #: Byte ranges in LBA 0-2047 that hold data outside the MBR and GPT structures.
    first_mib_data: tuple[tuple[int, int], ...] = ()
    #: Whether the MBR's boot-code area (bytes 0-439) holds code.
    mbr_boot_code: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


@runtime_checkable
class Target(Protocol):
    """A system vmimage can check: read-only access to its files, its disk, maybe a shell."""

    #: Shown in reports: the image path, the directory, or ``ssh://user@host``.
    name: str
    #: ``filesystem`` always; ``disk`` for an image file; ``live`` when ``run`` works.
    capabilities: frozenset[str]

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The file's content (its first ``limit`` bytes when given)."""
        ...

    def read_text(self, path: str) -> str:
        """The file decoded as UTF-8, undecodable bytes replaced."""
        ...

    def exists(self, path: str) -> bool:
        """Whether the path exists (following symlinks)."""
        ...

    def stat(self, path: str, follow: bool = True) -> FileStat:
        """Mode, size, owner and time of the path."""
        ...

    def iterdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
        ...

    def readlink(self, path: str) -> str:
        """A symlink's target, as stored."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """Absolute paths matching a shell pattern (``*``, ``?``, ``[..]`` per component)."""
        ...

    def layout(self) -> DiskLayout | None:
        """The disk's partitions, or None when the target is not a disk (a root directory)."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


class PathTarget:
    """What every file-based target derives from its primitives.

    A subclass provides ``resolve``, ``read_bytes``, ``stat`` and ``iterdir``; reading text,
    existence and globbing follow from them the same way for an image and a directory.
    """

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The path with symlinks resolved inside the target's root."""
        raise NotImplementedError

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The file's content (its first ``limit`` bytes when given)."""
        raise NotImplementedError

    def stat(self, path: str, follow: bool = True) -> FileStat:
        """Mode, size, owner and time of the path."""
        raise NotImplementedError

    def iterdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
        raise NotImplementedError

    def read_text(self, path: str) -> str:
        """The file decoded as UTF-8, undecodable bytes replaced."""
        return self.read_bytes(path).decode("utf-8", "replace")

    def exists(self, path: str) -> bool:
        """Whether the path exists (following symlinks inside the root)."""
        try:
            self.resolve(path)
        except OSError:
            return False
        return True

    def glob(self, pattern: str) -> list[str]:
        """Absolute paths matching a shell pattern, component by component; dangling links
        match too, as the shell's do."""
        from vmimage.targets.paths import glob_components

        found = glob_components(pattern, self.iterdir, self._is_dir)
        return [p for p in found if self.exists(p) or self._is_link(p)]

    def _is_dir(self, path: str) -> bool:
        try:
            return self.stat(path).is_dir
        except OSError:
            return False

    def _is_link(self, path: str) -> bool:
        try:
            return self.stat(path, follow=False).is_symlink
        except OSError:
            return False
