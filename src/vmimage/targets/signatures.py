"""What a partition holds, told by its content's magic bytes, never by its type byte.

A partition typed "Linux" may hold swap, an LVM physical volume or nothing; a swap partition
that fstab does not name is still swap. The names follow blkid's ``TYPE`` values so that they
read as people expect, and labels and UUIDs come along where they sit in the same few
kilobytes (blkid is the oracle in the tests).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from vmimage.disk.sources import FileWindow

EXT_TYPES = ("ext2", "ext3", "ext4")
READABLE = frozenset({*EXT_TYPES, "xfs", "vfat"})  # pyfsext, pyfsxfs and targets.fat open them
ROOT_TYPES = frozenset({*EXT_TYPES, "xfs"})  # where a Linux root can be that we read

# ext feature sets blkid uses to tell ext2, ext3 and ext4 apart
_EXT_COMPAT_HAS_JOURNAL = 0x4
_EXT_INCOMPAT_JOURNAL_DEV = 0x8
_EXT3_INCOMPAT_SUPP = 0x2 | 0x4 | 0x10  # filetype, recover, meta_bg
_EXT3_RO_COMPAT_SUPP = 0x1 | 0x2 | 0x4  # sparse_super, large_file, btree_dir
SWAP_PAGES = (4096, 8192, 16384, 65536)
_HEAD = 8192  # covers LVM labels (sectors 0-3), ext, XFS, FAT, NTFS and 4 KiB-page swap


@dataclass(frozen=True, slots=True)
class Signature:
    """The content type of a partition or volume, with its label and UUID when cheap."""

    fs_type: str
    label: str = ""
    uuid: str = ""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _uuid(raw: bytes) -> str:
    return "" if not any(raw) else str(uuid.UUID(bytes=raw))


def _ext(head: bytes) -> Signature | None:
    sb = head[1024:2048]
    if len(sb) < 0x88 or sb[0x38:0x3A] != b"\x53\xef":
        return None
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    if incompat & _EXT_INCOMPAT_JOURNAL_DEV:
        fs = "jbd"
    elif incompat & ~_EXT3_INCOMPAT_SUPP or ro_compat & ~_EXT3_RO_COMPAT_SUPP:
        fs = "ext4"
    elif compat & _EXT_COMPAT_HAS_JOURNAL:
        fs = "ext3"
    else:
        fs = "ext2"
    return Signature(fs, _text(sb[0x78:0x88]), _uuid(sb[0x68:0x78]))


def _xfs(head: bytes) -> Signature | None:
    if head[:4] != b"XFSB":
        return None
    return Signature("xfs", _text(head[108:120]), _uuid(head[32:48]))


def _lvm(head: bytes) -> Signature | None:
    for sector in range(4):
        label = head[sector * 512:(sector + 1) * 512]
        if label[:8] == b"LABELONE" and label[24:32] == b"LVM2 001":
            (offset,) = struct.unpack_from("<I", label, 20)
            raw = label[offset:offset + 32].decode("ascii", "replace")
            parts = (raw[:6], raw[6:10], raw[10:14], raw[14:18], raw[18:22], raw[22:26], raw[26:])
            return Signature("LVM2_member", "", "-".join(parts))
    return None


def _swap_magic(tail: bytes) -> bool:
    """mkswap's magic: the last 10 bytes of the first page, for the page size it ran with."""
    return tail in (b"SWAPSPACE2", b"SWAP-SPACE")


def is_swap_area(head: bytes) -> bool:
    """``head`` (at least the largest page size long) starts a swap area."""
    return any(_swap_magic(head[page - 10:page]) for page in SWAP_PAGES)


def _swap(head: bytes, window: FileWindow) -> Signature | None:
    for page in SWAP_PAGES:
        tail = head[page - 10:page] if page <= len(head) else window.read_at(page - 10, 10)
        if _swap_magic(tail):
            return Signature("swap", _text(head[1052:1068]), _uuid(head[1036:1052]))
    return None


def _ntfs_label(head: bytes, window: FileWindow) -> str:
    """The volume name: attribute 0x60 of MFT record 3 (``$Volume``), after its fixups."""
    sector, cluster = struct.unpack_from("<HB", head, 0x0B)
    (mft_cluster,) = struct.unpack_from("<Q", head, 0x30)
    (per_record,) = struct.unpack_from("<b", head, 0x40)
    size = 2 ** -per_record if per_record < 0 else per_record * sector * cluster
    if not sector or not cluster or not 512 <= size <= 65536:
        return ""
    record = bytearray(window.read_at(mft_cluster * sector * cluster + 3 * size, size))
    if record[:4] != b"FILE":
        return ""
    usa_offset, usa_count = struct.unpack_from("<HH", record, 4)
    for i in range(1, usa_count):  # each sector's last two bytes were moved to the array
        at, saved = i * sector - 2, usa_offset + 2 * i
        if at + 2 <= len(record) and saved + 2 <= len(record):
            record[at:at + 2] = record[saved:saved + 2]
    (offset,) = struct.unpack_from("<H", record, 0x14)
    while offset + 24 <= len(record):
        kind, length = struct.unpack_from("<II", record, offset)
        if kind == 0xFFFFFFFF or length == 0:
            break
        if kind == 0x60 and record[offset + 8] == 0:  # VOLUME_NAME, resident
            value_length, value_offset = struct.unpack_from("<IH", record, offset + 0x10)
            start = offset + value_offset
            return bytes(record[start:start + value_length]).decode("utf-16-le", "replace")
        offset += length
    return ""


def _ntfs(head: bytes, window: FileWindow) -> Signature | None:
    if head[510:512] != b"\x55\xaa" or head[3:11] != b"NTFS    ":
        return None
    (serial,) = struct.unpack_from("<Q", head, 0x48)
    try:
        label = _ntfs_label(head, window)
    except struct.error:  # a damaged $Volume record: the type and serial still stand
        label = ""
    return Signature("ntfs", label, f"{serial:016X}")


def _fat(head: bytes) -> Signature | None:
    """A FAT boot sector: a sane BPB and the FAT type string where FAT12/16 or FAT32 keep it."""
    if head[510:512] != b"\x55\xaa":
        return None
    (bytes_per_sector,) = struct.unpack_from("<H", head, 11)
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        return None
    if head[0x52:0x57] == b"FAT32":
        id_at, label_at = 0x43, 0x47
    elif head[0x36:0x39] == b"FAT":
        id_at, label_at = 0x27, 0x2B
    else:
        return None
    (volume_id,) = struct.unpack_from("<I", head, id_at)
    label = _text(head[label_at:label_at + 11])
    return Signature("vfat", "" if label == "NO NAME" else label,
                     f"{volume_id >> 16:04X}-{volume_id & 0xFFFF:04X}")


def _luks(head: bytes) -> Signature | None:
    if head[:6] != b"LUKS\xba\xbe":
        return None
    return Signature("crypto_LUKS", "", _text(head[168:208]))


def _btrfs(window: FileWindow) -> Signature | None:
    sb = window.read_at(0x10000, 0x1000)
    if sb[64:72] != b"_BHRfS_M":
        return None
    return Signature("btrfs", _text(sb[0x12B:0x22B]), _uuid(sb[32:48]))


def probe(window: FileWindow) -> Signature:
    """Identify the content of a partition or logical volume; ``unknown`` when nothing fits."""
    head = window.read_at(0, _HEAD)
    for test in (_luks, _xfs, _lvm, _ext):
        found = test(head)
        if found:
            return found
    found = _fat(head) or _ntfs(head, window) or _swap(head, window) or _btrfs(window)
    return found or Signature("unknown")


def whole_disk_boot_sector(head: bytes) -> bool:
    """Whether sector 0 is a FAT or NTFS boot sector rather than an MBR (both end in 55 AA)."""
    return _fat(head) is not None or (head[510:512] == b"\x55\xaa"
                                      and head[3:11] == b"NTFS    ")
