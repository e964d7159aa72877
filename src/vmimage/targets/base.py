"""The one read-only protocol every target implements: disk image, mounted root, live VM.

Checks and facts read a system only through :class:`Target`, so the same check runs offline on
an image, on a directory, and live over SSH. Paths are absolute POSIX paths *inside* the
target's root; symlinks resolve inside that root, never on the host (rulings).

Missing files raise the builtin ``FileNotFoundError``; a directory where a file was expected
raises ``IsADirectoryError``; ``NotADirectoryError`` likewise. Nothing else is raised for a
path that simply is not there, so facts can catch exactly those.

Every other failure to read image content (a symlink loop, a damaged inode, a FIFO or device
node, a file over the size limit of what it should be) raises :class:`UnreadableError`: the
image is untrusted, and such a failure must become a skipped rule with its reason (the engine
turns a :class:`~vmimage.errors.VmimageError` into one), never a traceback or a hang.
"""

from __future__ import annotations

import errno as errno_module
import stat as stat_module
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from vmimage.errors import InputError

MiB = 1024 * 1024
#: What ``read_text`` accepts by default: a configuration file is a few KiB; 4 MiB is generous
#: and keeps a hostile 1 GiB sparse ``sshd_config`` from costing gigabytes of memory.
TEXT_MAX = 4 * MiB
#: What ``read_bytes`` accepts without an explicit bound (the package databases pass theirs).
BYTES_MAX = 64 * MiB


class UnreadableError(InputError, OSError):
    """A file of the target exists but cannot be read safely: a symlink loop, a damaged inode,
    a FIFO or device node, or more bytes than what it should be could hold.

    It is an :class:`~vmimage.errors.InputError`, so a rule that meets it is skipped with the
    reason (the engine's rule) and the CLI prints one line; and an ``OSError``, so code that
    already treats any ``OSError`` as "cannot use this path" keeps doing so.
    """

    def __init__(self, path: str, problem: str, code: int = errno_module.EIO) -> None:
        InputError.__init__(self, path, problem)
        self.errno = code
        self.strerror = problem
        self.filename = path

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"

    def __reduce__(self) -> tuple[type[UnreadableError], tuple[str, str, int]]:
        return type(self), (self.source, self.problem, self.errno or errno_module.EIO)


def unreadable(exc: BaseException, path: str) -> UnreadableError:
    """The typed error for a failure of a filesystem binding or the host while reading
    ``path``: the first line of its message, never a traceback's worth."""
    if isinstance(exc, UnreadableError):
        return exc
    code = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else \
        errno_module.EIO
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    first = (text.splitlines() or [type(exc).__name__])[0][:200]
    return UnreadableError(path, f"cannot be read: {first}", code)


def too_large(path: str, size: int, max_size: int) -> UnreadableError:
    """The refusal of a file larger than what it should be (a hostile or damaged inode)."""
    return UnreadableError(path, f"{size} bytes, over the {max_size}-byte limit for this file; "
                                 "not read", errno_module.EFBIG)


def not_regular(path: str, mode: int) -> UnreadableError:
    """The refusal of a FIFO, socket or device node where a file's content is wanted: opening
    one on the host could block forever or read a host device."""
    kinds = ((stat_module.S_ISFIFO, "a FIFO"), (stat_module.S_ISCHR, "a character device"),
             (stat_module.S_ISBLK, "a block device"), (stat_module.S_ISSOCK, "a socket"),
             (stat_module.S_ISLNK, "a symbolic link"))
    kind = next((name for test, name in kinds if test(mode)), f"of type {mode >> 12:o}")
    return UnreadableError(path, f"is {kind}, not a regular file; not read", errno_module.EINVAL)


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

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """The file's content: its first ``limit`` bytes when given, else all of it, refused
        (:class:`UnreadableError`) when over ``max_size``."""
        ...

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes of a regular file from ``offset`` (fewer at its end): what
        reads a large file by parts (a 100 MiB registry hive of which a lookup needs a few
        cells) without reading all of it."""
        ...

    def read_text(self, path: str, max_size: int = TEXT_MAX) -> str:
        """The file decoded as UTF-8, undecodable bytes replaced; refused over ``max_size``."""
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


class CommandResult(NamedTuple):
    """What a command run on a live target gave: its exit status (-1 when it was killed or
    timed out) and its output, each cut at the caller's bound."""

    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        """Exit status 0."""
        return self.exit_status == 0

    def text(self) -> str:
        """The standard output decoded as UTF-8, undecodable bytes replaced."""
        return self.stdout.decode("utf-8", "replace")


#: What a live command may print before it is cut (``dpkg-query -W`` of a big system is ~100 KiB).
RUN_OUTPUT_MAX = 16 * MiB


@runtime_checkable
class LiveTarget(Target, Protocol):
    """A running system: a :class:`Target` that can also run a command (``live`` capability).

    Facts that have a live source (``/proc/swaps``, ``sshd -T``, ``systemctl is-enabled``)
    ask for it with :func:`live` and fall back to the files when it is None, so the facts
    layer never knows how the command travels (SSH, WinRM).
    """

    #: The account the session is logged in as (the one the VM was deployed with).
    login_user: str

    def run(self, argv: list[str], *, timeout: float = 30.0,
            max_output: int = RUN_OUTPUT_MAX) -> CommandResult:
        """Run ``argv`` (no shell: each argument quoted as is), as root when the target was
        opened with sudo; a command that outlives ``timeout`` is killed (exit -1)."""
        ...

    def snapshot(self, roots: list[str], *, timeout: float = 60.0) -> None:
        """Fetch the files under ``roots`` (metadata of all, bytes of the small ones) in one
        stream, so that the reads that follow need no round trip for them."""
        ...

    def prefetch(self, commands: list[list[str]], *, timeout: float = 60.0,
                 wait: bool = True) -> None:
        """Run these commands at once, in one remote shell, so that :meth:`run` answers them
        from what they printed: each round trip (and each ``sudo``) costs the VM a fraction
        of a second, and the facts ask for a dozen commands. Their stderr is not kept.
        ``wait=False`` returns at once: the commands run while the caller does other work,
        and the first :meth:`run` waits for them."""
        ...


def live(target: Target) -> LiveTarget | None:
    """The target as a live one when it says ``live`` and can run commands, else None."""
    if "live" in target.capabilities and isinstance(target, LiveTarget):
        return target
    return None


class PathTarget:
    """What every file-based target derives from its primitives.

    A subclass provides ``resolve``, ``read_bytes``, ``stat`` and ``iterdir``; reading text,
    existence and globbing follow from them the same way for an image and a directory.
    """

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The path with symlinks resolved inside the target's root."""
        raise NotImplementedError

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """The file's content: its first ``limit`` bytes when given, else all of it, refused
        (:class:`UnreadableError`) when over ``max_size``."""
        raise NotImplementedError

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes from ``offset``; this fallback reads the file up to there
        (a target whose files can be read at an offset says so by overriding it)."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        return self.read_bytes(path, offset + size)[offset:]

    def stat(self, path: str, follow: bool = True) -> FileStat:
        """Mode, size, owner and time of the path."""
        raise NotImplementedError

    def iterdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
        raise NotImplementedError

    def read_text(self, path: str, max_size: int = TEXT_MAX) -> str:
        """The file decoded as UTF-8, undecodable bytes replaced; refused over ``max_size``."""
        return self.read_bytes(path, max_size=max_size).decode("utf-8", "replace")

    def exists(self, path: str) -> bool:
        """Whether the path exists (following symlinks inside the root); False for a symlink
        loop, as ``os.path.exists`` says. A fact reader that must not take an unreadable file
        for an absent one reads it instead and lets :class:`UnreadableError` through."""
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
