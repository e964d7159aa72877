"""FAT12, FAT16 and FAT32, read-only, with long file names: the EFI system partition.

A UEFI image keeps its loaders (``shimx64.efi``, ``grubx64.efi``) and GRUB's first
``grub.cfg`` on a vfat ESP that fstab mounts at ``/boot/efi``; checks and facts read
``/boot/efi/EFI/*/grub.cfg`` like any other file, so the image target mounts it. The libyal
binding (libfsfat-python 20260826) was tried and left aside: it converts FAT dates to wrong
days (1999-01-31 reads as 1999-03-03), finds no file by its 8.3 name, and wants ``\\`` as the
separator. FAT is small enough to read here: the boot sector, FAT entries and directories,
each when it is needed, through the image's block cache.

What a Linux ``vfat`` mount shows is the reference. A name is the long name, or the 8.3 name
with the case Windows NT records for it; a lookup ignores ASCII case, ignores trailing dots and
matches the 8.3 name too. Modes come from the mount options (``umask``, ``fmask``, ``dmask``,
``showexec``, ``rodir``; 0022 when none is given, as systemd mounts) and the read-only
attribute; owners from ``uid`` and ``gid``; times are the kernel's conversion of FAT's local
times, read as UTC. Damage (a broken or looping cluster chain, a FAT entry out of range)
raises ``OSError``, as the kernel answers EIO, never anything else.
"""

from __future__ import annotations

import stat as stat_module
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: (offset, length) -> bytes, offsets inside the partition; short at its end.
Read = Callable[[int, int], bytes]

_ATTR_RO, _ATTR_VOLUME, _ATTR_DIR, _ATTR_LFN = 0x01, 0x08, 0x10, 0x0F
_CASE_LOWER_BASE, _CASE_LOWER_EXT = 0x08, 0x10
_MAX_FAT12 = 0xFF4  # Linux: more clusters than this is FAT16 (FAT32 is told by its BPB)
_BAD = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}  # this and above: bad cluster or end of chain
_MAX_DIRECTORY = 65536 * 32  # FAT allows 65536 entries in a directory
_EXECUTABLE = ("EXE", "COM", "BAT")  # showexec keeps x bits on these only
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 0, 0, 0)
_DAYS_1970_TO_1980 = 365 * 10 + 2  # 1972 and 1976 were leap years
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fat_time(date: int, time: int) -> int:
    """Seconds since the epoch of a FAT date and time, as Linux's ``fat_time_fat2unix`` counts
    them (month 0 counts as January, day 0 as the 1st, 2100 is not a leap year)."""
    year = date >> 9
    month = max(1, (date >> 5) & 0xF)
    day = max(1, date & 0x1F) - 1
    leap_days = (year + 3) // 4 - (1 if year > 120 else 0)
    if year & 3 == 0 and year != 120 and month > 2:
        leap_days += 1
    seconds = (time & 0x1F) * 2 + ((time >> 5) & 0x3F) * 60 + (time >> 11) * 3600
    days = year * 365 + leap_days + _DAYS_BEFORE_MONTH[month] + day + _DAYS_1970_TO_1980
    return seconds + days * 86400


def _fold(name: str) -> str:
    """A name as a vfat lookup compares it: ASCII case ignored, trailing dots dropped."""
    return name.rstrip(".").translate(_ASCII_LOWER)


def _lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


@dataclass(frozen=True, slots=True)
class _Record:
    """One directory entry: what a vfat mount shows of a file or directory."""

    name: str  # the long name, else the 8.3 name as Linux shows it
    short: str  # the 8.3 name
    attr: int
    first: int  # first cluster
    size: int
    mtime: int  # seconds since the epoch

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & _ATTR_DIR)


@dataclass(frozen=True, slots=True)
class _MountOptions:
    """The vfat options that change what ``stat`` shows."""

    fmask: int = 0o022
    dmask: int = 0o022
    uid: int = 0
    gid: int = 0
    showexec: bool = False
    rodir: bool = False

    @classmethod
    def parse(cls, options: Iterable[str]) -> _MountOptions:
        """fstab's options; values the kernel would refuse are ignored."""
        values: dict[str, int] = {}
        flags: set[str] = set()
        for option in options:
            key, sep, value = option.partition("=")
            try:
                if sep and key in ("umask", "fmask", "dmask"):
                    values[key] = int(value, 8) & 0o777
                elif sep and key in ("uid", "gid"):
                    values[key] = int(value, 10)
                elif not sep:
                    flags.add(key)
            except ValueError:
                continue
        umask = values.get("umask", 0o022)
        return cls(values.get("fmask", umask), values.get("dmask", umask), values.get("uid", 0),
                   values.get("gid", 0), "showexec" in flags, "rodir" in flags)

    def mode(self, attr: int, short: str) -> int:
        """``fat_make_mode``: 0777 less the read-only bits and the mask, then showexec."""
        mode = 0o777
        if attr & _ATTR_RO and not (attr & _ATTR_DIR and not self.rodir):
            mode &= ~0o222
        if attr & _ATTR_DIR:
            return stat_module.S_IFDIR | (mode & ~self.dmask)
        mode &= ~self.fmask
        if self.showexec and short.rpartition(".")[2].upper() not in _EXECUTABLE:
            mode &= ~0o111
        return stat_module.S_IFREG | mode


class FatVolume:
    """One FAT filesystem, looked up by absolute ``/`` paths; the shape of a libyal volume."""

    def __init__(self, read: Read, options: Iterable[str] = ()) -> None:
        self._read = read
        self.options = _MountOptions.parse(options)
        boot = read(0, 512)
        if len(boot) < 512:
            raise OSError("FAT: the boot sector is cut short")
        bpb: tuple[int, ...] = struct.unpack_from("<HBHBHHBHxxxxxxxxII", boot, 11)
        self.sector, per_cluster, reserved, fats, root_entries, total16, _, fat16 = bpb[:8]
        total32, fat32 = bpb[8:]
        if self.sector not in (512, 1024, 2048, 4096) or per_cluster not in (
                1, 2, 4, 8, 16, 32, 64, 128) or not reserved or not fats:
            raise OSError("FAT: the boot sector's geometry is not valid")
        fat_sectors, total = fat16 or fat32, total16 or total32
        self.bits = 32 if fat16 == 0 else 16
        if self.bits == 32:
            root_entries = 0
        elif not root_entries:
            raise OSError("FAT: no root directory entries")
        root_sectors = (root_entries * 32 + self.sector - 1) // self.sector
        first_data = reserved + fats * fat_sectors + root_sectors
        if not fat_sectors or total <= first_data:
            raise OSError("FAT: the boot sector's sizes leave no data area")
        self.cluster_bytes = self.sector * per_cluster
        clusters = (total - first_data) // per_cluster
        if self.bits != 32:
            self.bits = 12 if clusters <= _MAX_FAT12 else 16
        # the FAT itself may hold fewer entries than the data area has clusters (Linux too)
        self.clusters = min(clusters, fat_sectors * self.sector * 8 // self.bits - 2)
        self.fat_offset = reserved * self.sector
        self.root_offset = (reserved + fats * fat_sectors) * self.sector
        self.root_bytes = root_entries * 32
        self.data_offset = first_data * self.sector
        label_at = 0x47 if self.bits == 32 else 0x2B
        self.label = boot[label_at:label_at + 11].decode("cp437").strip()
        self.root_cluster = struct.unpack_from("<I", boot, 44)[0] if self.bits == 32 else 0
        if self.bits == 32 and not self._valid(self.root_cluster):
            raise OSError("FAT: the root directory cluster is out of range")
        self._listings: dict[int, list[_Record]] = {}

    # ---- clusters --------------------------------------------------------------------------

    def _valid(self, cluster: int) -> bool:
        return 2 <= cluster < self.clusters + 2

    def _next(self, cluster: int) -> int | None:
        """The cluster after ``cluster`` in its chain, or None at the end of the chain."""
        if self.bits == 32:
            raw = self._read(self.fat_offset + cluster * 4, 4)
            value = struct.unpack("<I", raw)[0] & 0x0FFFFFFF if len(raw) == 4 else -1
        else:
            at = cluster * 2 if self.bits == 16 else cluster + cluster // 2
            raw = self._read(self.fat_offset + at, 2)
            value = struct.unpack("<H", raw)[0] if len(raw) == 2 else -1
            if self.bits == 12 and value >= 0:
                value = value >> 4 if cluster & 1 else value & 0x0FFF
        if value >= _BAD[self.bits]:
            return None
        if not self._valid(value):
            raise OSError(f"FAT: cluster {cluster} points to {value}, outside the volume")
        return value

    def _chain(self, first: int, length: int | None = None) -> list[int]:
        """The first ``length`` clusters of the chain from ``first`` (all when None)."""
        if not self._valid(first):
            raise OSError(f"FAT: first cluster {first} is outside the volume")
        chain, seen = [first], {first}
        while length is None or len(chain) < length:
            following = self._next(chain[-1])
            if following is None:
                break
            if following in seen:  # Linux notices only past max_cluster steps; we at once
                raise OSError(f"FAT: the cluster chain from {first} loops")
            chain.append(following)
            seen.add(following)
        return chain

    def _read_clusters(self, chain: list[int]) -> bytes:
        """The content of the clusters, one read per run of consecutive clusters."""
        out = bytearray()
        start = 0
        for index in range(1, len(chain) + 1):
            if index == len(chain) or chain[index] != chain[index - 1] + 1:
                offset = self.data_offset + (chain[start] - 2) * self.cluster_bytes
                length = (index - start) * self.cluster_bytes
                data = self._read(offset, length)
                if len(data) != length:
                    raise OSError("FAT: a cluster lies past the end of the partition")
                out += data
                start = index
        return bytes(out)

    # ---- directories -----------------------------------------------------------------------

    def _directory_bytes(self, first: int) -> bytes:
        if first == 0:
            if self.bits == 32:
                first = self.root_cluster
            else:
                return self._read(self.root_offset, self.root_bytes)
        return self._read_clusters(self._chain(first, _MAX_DIRECTORY // self.cluster_bytes))

    def _listing(self, first: int) -> list[_Record]:
        """The entries of the directory starting at ``first`` (0: the root), in disk order."""
        if first not in self._listings:
            self._listings[first] = list(_parse_directory(self._directory_bytes(first),
                                                          self.bits))
        return self._listings[first]

    def _lookup(self, path: str) -> _Record | None:
        """The record at ``path``; None for the root itself."""
        record: _Record | None = None
        for part in [p for p in path.split("/") if p]:
            if record is not None and not record.is_dir:
                raise FileNotFoundError(2, "No such file or directory", path)
            if record is None:
                entries = self._listing(0)
            else:  # a directory with no cluster (damage) holds nothing, not the root
                entries = self._listing(record.first) if record.first else []
            wanted = _fold(part)
            record = next((r for r in entries
                           if _fold(r.name) == wanted or _fold(r.short) == wanted), None)
            if record is None:
                raise FileNotFoundError(2, "No such file or directory", path)
        return record

    # ---- the libyal-shaped interface ---------------------------------------------------------

    def get_label(self) -> str | None:
        """The boot sector's volume label."""
        return self.label or None

    def get_file_entry_by_path(self, path: str) -> FatEntry | None:
        """The entry at an absolute path, or None when nothing is there."""
        try:
            record = self._lookup(path)
        except FileNotFoundError:
            return None
        return FatEntry(self, record)

    def read_file(self, record: _Record, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes of a file from ``offset``; a chain shorter than the file's size
        is an error."""
        end = min(record.size, offset + size)
        if offset >= end or offset < 0:
            return b""
        skip, last = offset // self.cluster_bytes, (end - 1) // self.cluster_bytes
        chain = self._chain(record.first, last + 1)
        if len(chain) <= last:
            raise OSError(f"FAT: {record.name} is longer than its cluster chain")
        data = self._read_clusters(chain[skip:])
        start = offset - skip * self.cluster_bytes
        return data[start:start + end - offset]

    def directory_size(self, first: int) -> int:
        """A directory's size as Linux gives it: its clusters' bytes."""
        if first == 0 and self.bits != 32:
            return self.root_bytes
        start = self.root_cluster if first == 0 else first
        return len(self._chain(start, _MAX_DIRECTORY // self.cluster_bytes)) * self.cluster_bytes

    def close(self) -> None:
        """Forget what was read."""
        self._listings.clear()


class FatEntry:
    """A file or directory of a :class:`FatVolume`, shaped as a libyal file entry."""

    def __init__(self, volume: FatVolume, record: _Record | None) -> None:
        self._volume, self._record = volume, record  # record None: the root directory

    def get_name(self) -> str | None:
        """The name Linux shows."""
        return self._record.name if self._record else None

    def get_file_mode(self) -> int:
        """Type and permission bits as the mount options make them."""
        if self._record is None:
            return self._volume.options.mode(_ATTR_DIR, "")
        return self._volume.options.mode(self._record.attr, self._record.short)

    def get_size(self) -> int:
        """A file's size, or a directory's clusters in bytes."""
        record = self._record
        if record is None or record.is_dir:
            first = record.first if record else 0
            return self._volume.directory_size(first) if first or record is None else 0
        return record.size

    def get_owner_identifier(self) -> int:
        """``uid=`` of the mount."""
        return self._volume.options.uid

    def get_group_identifier(self) -> int:
        """``gid=`` of the mount."""
        return self._volume.options.gid

    def get_modification_time_as_integer(self) -> int | None:
        """Nanoseconds since the epoch (the root directory has no time: 0)."""
        return self._record.mtime * 1_000_000_000 if self._record else 0

    def get_symbolic_link_target(self) -> str | None:
        """FAT has no symbolic links."""
        return None

    def _children(self) -> list[_Record]:
        record = self._record
        if record is not None and (not record.is_dir or record.first == 0):
            return []  # a file, or a directory with no cluster: nothing inside
        return self._volume._listing(record.first if record else 0)

    def get_number_of_sub_file_entries(self) -> int:
        """How many entries the directory holds (0 for a file)."""
        return len(self._children())

    def get_sub_file_entry(self, sub_file_entry_index: int) -> FatEntry:
        """The directory's entry at an index, in disk order."""
        return FatEntry(self._volume, self._children()[sub_file_entry_index])

    def read_buffer_at_offset(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes of the file from ``offset``."""
        if self._record is None or self._record.is_dir:
            raise OSError("FAT: not a file")
        return self._volume.read_file(self._record, size, offset)


def _short_name(entry: bytes) -> tuple[str, bytes]:
    """The 8.3 name as Linux shows it (NT's lower-case flags applied) and its 11 raw bytes."""
    raw = bytes([0xE5]) + entry[1:11] if entry[0] == 0x05 else entry[0:11]
    base = raw[:8].decode("cp437").rstrip(" ")
    ext = raw[8:11].decode("cp437").rstrip(" ")
    if entry[12] & _CASE_LOWER_BASE:
        base = base.translate(_ASCII_LOWER)
    if entry[12] & _CASE_LOWER_EXT:
        ext = ext.translate(_ASCII_LOWER)
    return (f"{base}.{ext}" if ext else base), entry[0:11]


def _long_name(parts: list[bytes | None]) -> str | None:
    """The long name from its LFN slots (in order), up to the first NUL; None when a slot is
    missing or the name is empty."""
    if any(p is None for p in parts):
        return None
    units = b"".join(p for p in parts if p is not None)
    for at in range(0, len(units), 2):
        if units[at:at + 2] == b"\0\0":
            units = units[:at]
            break
    return units.decode("utf-16-le", "replace") or None


def _parse_directory(raw: bytes, bits: int) -> Iterable[_Record]:
    """The entries of a directory's bytes. As Linux does, free and deleted slots are skipped
    (not taken as the end), and a long name counts only when its slots are complete, in order,
    and carry the checksum of the 8.3 entry they precede."""
    parts: list[bytes | None] = []
    expected, checksum = 0, -1
    for at in range(0, len(raw) - 31, 32):
        entry = raw[at:at + 32]
        first, attr = entry[0], entry[11]
        if first in (0x00, 0xE5):
            parts, expected = [], 0
            continue
        if attr == _ATTR_LFN:
            order = first & 0x3F
            if first & 0x40 and 1 <= order <= 20:
                parts, expected, checksum = [None] * order, order, entry[13]
            elif order == 0 or order != expected or entry[13] != checksum or not parts:
                parts, expected = [], 0
                continue
            parts[order - 1] = entry[1:11] + entry[14:26] + entry[28:32]
            expected = order - 1
            continue
        long_parts, complete = parts, bool(parts) and expected == 0
        parts, expected = [], 0
        if attr & _ATTR_VOLUME:
            continue
        short, raw_short = _short_name(entry)
        if raw_short in (b".          ", b"..         "):
            continue
        name = None
        if complete and _lfn_checksum(raw_short) == checksum:
            name = _long_name(long_parts)
        high = struct.unpack_from("<H", entry, 20)[0] if bits == 32 else 0
        time, date, low, size = struct.unpack_from("<HHHI", entry, 22)
        yield _Record(name or short, short, attr, high << 16 | low, size, fat_time(date, time))
