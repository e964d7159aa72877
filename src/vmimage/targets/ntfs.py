"""One NTFS volume through pyfsntfs (libfsntfs), in the shape :class:`Filesystem` reads.

Windows looks names up case-insensitively (NTFS keeps their case, and its ``$UpCase`` table
says what matches): ``/windows/system32/CONFIG/system`` must find
``/Windows/System32/config/SYSTEM``, as a Windows VM would. libfsntfs's by-path lookup folds
case with the volume's own ``$UpCase`` table, so we use it, one path of real directories at a
time, and stop at anything that is not one: a path through a file is no path, and a path
through a reparse point is never walked.

Reparse points whose tag is a *name surrogate* (junctions, symbolic links, WSL links) are
reported as links (``S_IFLNK``) whose target, as stored, can be read but must never be
followed (:meth:`NtfsVolume.follow` refuses): a junction's target is a path on some drive of
the VM (``\\??\\C:\\Users``), not a path inside this volume. Other reparse points (WOF
compression, deduplication, cloud placeholders) keep their file or directory kind: reading
them reads this volume's own data, not a redirection. Alternate data streams are ignored:
content is the default stream. pyfsntfs has no POSIX modes or owners; we give directories
0755, files 0644, links 0777, owner 0.
"""

from __future__ import annotations

import errno
import stat as stat_module
from typing import cast

import pyfsntfs

from vmimage.disk.sources import FileWindow
from vmimage.targets.base import UnreadableError

#: FILE_ATTRIBUTE_REPARSE_POINT in ``$STANDARD_INFORMATION``.
REPARSE_POINT = 0x400
#: The reparse tag bit of the tags that name another file (junction, symlink, WSL link).
NAME_SURROGATE = 0x20000000
#: MFT records 0-15 are the volume's metadata files ($MFT, $Bitmap...): not listed, as
#: Windows lists none of them.
FIRST_USER_RECORD = 16
_MFT_INDEX = 0xFFFFFFFFFFFF  # a file reference's low 48 bits
#: 100-ns intervals between 1601-01-01 (FILETIME) and 1970-01-01.
_FILETIME_EPOCH = 116_444_736_000_000_000
#: What a damaged volume makes libfsntfs raise, besides OSError.
_ERRORS = (OSError, OverflowError, MemoryError, IndexError, ValueError, RecursionError)


def _reparse(raw: pyfsntfs.file_entry) -> pyfsntfs.reparse_point_attribute | None:
    """The entry's ``$REPARSE_POINT`` attribute, when its flags say it has one.

    Found by its methods, not ``isinstance``: pyfsntfs (20260827) binds its module name
    ``reparse_point_attribute`` to the base ``attribute`` type, so every attribute would match.
    """
    if not (raw.get_file_attribute_flags() or 0) & REPARSE_POINT:
        return None
    for index in range(min(raw.get_number_of_attributes(), 64)):
        attribute = raw.get_attribute(index)
        if hasattr(attribute, "get_tag") and hasattr(attribute, "get_substitute_name"):
            return cast(pyfsntfs.reparse_point_attribute, attribute)
    return None


def _check_record(raw: pyfsntfs.file_entry) -> None:
    """Refuse an entry whose MFT record is damaged. libfsntfs does not: for a record that
    fails its checks it hands back record 0 ($MFT) under the directory's name, so the record
    the directory index names must be the one we got, and have its standard information."""
    if raw.has_i30_entry():
        named = raw.get_i30_file_reference() & _MFT_INDEX
        if named != raw.get_file_reference() & _MFT_INDEX:
            raise OSError(errno.EIO, f"damaged MFT record {named}")
    if raw.get_file_attribute_flags() is None:
        raise OSError(errno.EIO, "damaged MFT record: no $STANDARD_INFORMATION")


def _listed(raw: pyfsntfs.file_entry, in_root: bool) -> bool:
    """Whether a directory entry is listed: not a metadata file of the root, and not a name
    Linux's ntfs-3g can write but Windows cannot open (``a:b`` is a stream to Windows)."""
    name = raw.get_name() or ""
    if ":" in name or "\\" in name:
        return False
    return not in_root or raw.get_file_reference() & _MFT_INDEX >= FIRST_USER_RECORD


class NtfsEntry:
    """A file, directory or reparse point of the volume, with the methods of a pyfsext
    ``file_entry`` that :class:`~vmimage.targets.filesystems.Filesystem` calls."""

    def __init__(self, raw: pyfsntfs.file_entry, is_root: bool = False) -> None:
        self._raw, self._is_root = raw, is_root
        self._mode: int | None = None
        self._link: str | None = None
        self._children: list[pyfsntfs.file_entry] | None = None

    def get_name(self) -> str | None:
        """The name in the parent directory, case as stored."""
        return self._raw.get_name()

    def get_file_mode(self) -> int:
        """A POSIX mode made from NTFS's kind: link for a name-surrogate reparse point."""
        if self._mode is None:
            _check_record(self._raw)
            attribute = _reparse(self._raw)
            if attribute is not None and attribute.get_tag() & NAME_SURROGATE:
                self._mode = stat_module.S_IFLNK | 0o777
                self._link = attribute.get_substitute_name() or ""
            elif self._raw.has_directory_entries_index():
                self._mode = stat_module.S_IFDIR | 0o755
            else:
                self._mode = stat_module.S_IFREG | 0o644
        return self._mode

    @property
    def is_dir(self) -> bool:
        """A real directory: a junction is a directory to NTFS but a link to us."""
        return stat_module.S_ISDIR(self.get_file_mode())

    def get_size(self) -> int:
        """The default data stream's size (0 for a directory)."""
        return 0 if self.is_dir else int(self._raw.get_size())

    def get_owner_identifier(self) -> int:
        """0: NTFS owners are SIDs in the security descriptor, not POSIX ids."""
        return 0

    def get_group_identifier(self) -> int:
        """0, as the owner."""
        return 0

    def get_modification_time_as_integer(self) -> int | None:
        """Nanoseconds since 1970 (NTFS stores 100-ns ticks since 1601)."""
        ticks = self._raw.get_modification_time_as_integer()
        if not ticks:
            return None
        return (ticks - _FILETIME_EPOCH) * 100

    def get_symbolic_link_target(self) -> str | None:
        """The reparse point's target as stored (``\\??\\C:\\Users\\Public``), or None."""
        return self._link if stat_module.S_ISLNK(self.get_file_mode()) else None

    def _sub_entries(self) -> list[pyfsntfs.file_entry]:
        """The directory's entries; the root's metadata files ($MFT...) left out, and names
        no lookup finds (see :func:`_listed`)."""
        if self._children is None:
            count = self._raw.get_number_of_sub_file_entries()
            children = (self._raw.get_sub_file_entry(i) for i in range(count))
            self._children = [c for c in children if _listed(c, self._is_root)]
        return self._children

    def get_number_of_sub_file_entries(self) -> int:
        """How many entries the directory lists (a link lists none: it is not walked)."""
        return len(self._sub_entries()) if self.is_dir else 0

    def get_sub_file_entry(self, sub_file_entry_index: int) -> NtfsEntry:
        """The directory's ``sub_file_entry_index``-th entry."""
        return NtfsEntry(self._sub_entries()[sub_file_entry_index])

    def read_buffer_at_offset(self, size: int, offset: int) -> bytes:
        """Bytes of the default data stream (never an alternate stream)."""
        if not stat_module.S_ISREG(self.get_file_mode()):
            raise OSError(errno.EINVAL, "not a regular file")
        return bytes(self._raw.read_buffer_at_offset(size, offset))


class NtfsVolume:
    """An NTFS volume read from a :class:`FileWindow`, with case-insensitive lookups."""

    def __init__(self, window: FileWindow) -> None:
        """Open the volume; a damaged boot sector or ``$MFT`` is an :class:`UnreadableError`
        (the window keeps its reference: libfsntfs keeps none to its file object)."""
        self.window = window
        self._volume = pyfsntfs.volume()
        self._entries: dict[str, NtfsEntry | None] = {}
        try:
            self._volume.open_file_object(window)
            self._root = NtfsEntry(self._volume.get_root_directory(), is_root=True)
            self._root.get_file_mode()
        except _ERRORS as exc:
            raise _damaged("/", exc) from None

    def get_label(self) -> str | None:
        """The volume label (``$Volume``'s name)."""
        return self._volume.get_name()

    @property
    def serial_number(self) -> int:
        """The 64-bit volume serial of the boot sector."""
        return int(self._volume.get_serial_number())

    def get_file_entry_by_path(self, path: str) -> NtfsEntry | None:
        """The entry at ``path`` (absolute, ``/``-separated, any case), or None when absent
        or when a component before the last is not a real directory (a file or a reparse
        point: NTFS paths do not go through them, and we never follow one)."""
        parts = [p for p in path.split("/") if p]
        if any(ch in p for p in parts for ch in "\\:\0"):
            # no Windows name: libfsntfs takes "\" for a separator and "name:x" for the
            # alternate data stream x, which we never read
            return None
        key = "/" + "/".join(parts)
        if key not in self._entries:
            self._entries[key] = self._lookup(parts)
        return self._entries[key]

    def _lookup(self, parts: list[str]) -> NtfsEntry | None:
        if not parts:
            return self._root
        parent = self.get_file_entry_by_path("/" + "/".join(parts[:-1]))
        if parent is None or not parent.is_dir:
            return None
        raw = self._volume.get_file_entry_by_path("\\" + "\\".join(parts))
        return None if raw is None else NtfsEntry(raw)

    def follow(self, path: str) -> str:
        """Refuse to resolve through a reparse point: its target names a drive of the VM."""
        entry = self.get_file_entry_by_path(path)
        target = entry.get_symbolic_link_target() if entry else None
        raise UnreadableError(path, f"ntfs: a junction or symbolic link to {target!r}; "
                                    "not followed", errno.ELOOP)

    def close(self) -> None:
        """Close libfsntfs's volume."""
        self._entries.clear()
        self._volume.close()


def _damaged(path: str, exc: BaseException) -> UnreadableError:
    """libfsntfs's error, first sentence only (the rest is its call stack)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    reason = text.split(". ", 1)[0].rstrip(".")[:200]
    return UnreadableError(path, f"ntfs: cannot be read: {reason}", errno.EIO)
