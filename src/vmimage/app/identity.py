"""Which disk a report is about: the partition table's own ID, for the report's header.

A report gets attached to a certification request and read months later, next to other
reports of other builds of "the same" image. The file name and size do not tell two builds
apart; the identifiers written inside the disk do. The VHD footer's unique ID is already in
the report's ``disk`` metadata; this module adds the partition table's ID, the value
``blkid -s PTUUID`` and ``lsblk -o PTUUID`` print: the MBR disk signature as 8 hex digits, or
the GPT disk GUID.

It is decoration, never a verdict: it reads two sectors through the target's own reader (the
block cache the partition table was read through, so they cost nothing more, and a blob read
by ranges gets the same identity as the file it was uploaded from), and anything it cannot
read is left out rather than failing the check.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable

from vmimage.disk.gpt import GptHeader
from vmimage.errors import VmimageError
from vmimage.targets.base import Target
from vmimage.targets.blockio import BlockCache

SECTOR = 512


def disk_identity(target: Target) -> dict[str, str]:
    """``{"partition_table": "gpt", "partition_table_id": "<disk GUID>"}`` (or ``mbr`` and the
    disk signature) for a disk image target; empty for a directory, a disk without a partition
    table, or anything that cannot be read.

    The scheme is the one the target itself decided (a GPT disk also holds a protective MBR,
    whose signature is usually zero and means nothing), so the header and the rules agree.
    """
    reader = getattr(target, "reader", None)
    if "disk" not in target.capabilities or not isinstance(reader, BlockCache):
        return {}
    try:
        layout = target.layout()
        if layout is None or layout.scheme not in ("mbr", "gpt"):
            return {}
        if layout.scheme == "mbr":
            ident = _mbr_signature(reader.read(0, SECTOR))
        else:
            ident = _gpt_guid(reader.read, reader.size)
    except (VmimageError, OSError, ValueError, struct.error):
        return {}
    return {"partition_table": layout.scheme, "partition_table_id": ident} if ident else {}


def _mbr_signature(sector: bytes) -> str | None:
    """The 32-bit disk signature at byte 440, little-endian, as ``blkid`` prints it."""
    if len(sector) < SECTOR:
        return None
    (signature,) = struct.unpack_from("<I", sector, 440)
    return f"{signature:08x}"


def _gpt_guid(read: Callable[[int, int], bytes], size: int) -> str | None:
    """The disk GUID of the primary GPT header, or of the backup when the primary is damaged
    (the same choice the partition reader makes)."""
    last = size // SECTOR - 1
    for lba in (1, last):
        if lba < 1:
            continue
        header = GptHeader.unpack(read(lba * SECTOR, SECTOR).ljust(SECTOR, b"\0"))
        if header is not None and header.crc_ok and header.my_lba == lba:
            return str(uuid.UUID(bytes_le=header.disk_guid))
    return None

