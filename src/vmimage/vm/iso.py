"""A minimal ISO 9660 (ECMA-119) image writer with Joliet: the provisioning DVD, built in memory.

Azure hands a new VM its provisioning data (``ovf-env.xml``) on a DVD; the Linux agent mounts
``/dev/sr0`` with ``mount -o ro -t udf,iso9660,vfat`` and cloud-init's Azure datasource looks for
``TYPE=iso9660`` devices. To emulate that under qemu we need a small ISO image, and writing one
is simple enough that it is not worth a run-time dependency on genisoimage or xorriso (which the
tests use as the oracles instead).

What is written, and why:

- sectors 0-15: the system area, zeros (nothing boots from this disc);
- sector 16: the primary volume descriptor; 17: a Joliet supplementary volume descriptor (UCS-2
  level 3), so that readers that use Joliet (Linux's isofs does by default, Windows) see the exact
  mixed-case names, ``ovf-env.xml`` rather than ``OVF-ENV.XML;1``; 18: the set terminator;
- the L and M path tables of both hierarchies (one record each: the root);
- the root directory of each hierarchy (a flat root only: nothing here needs subdirectories);
- the file data, shared by both hierarchies, each file starting on a sector boundary;
- 150 sectors of padding at the end, as mkisofs/genisoimage add by default, so a drive's (or the
  guest kernel's) read-ahead near the end of the last file never reads past the medium.

The primary names are the given names in upper case with ``;1``. ECMA-119's d-characters do not
include ``-``: the primary name of ``ovf-env.xml`` is ``OVF-ENV.XML;1`` anyway (what mkisofs's
``-relaxed-filenames`` writes), because a reader that ignores Joliet then still finds the
name the agents open (Linux with ``map=normal`` lower-cases it and drops ``;1``), where the strict
``OVF_ENV.XML;1`` would be a different name. Names that cannot be written the same way in both
hierarchies are refused with a :class:`ValueError` that says why.

The volume identifier defaults to ``rd_rdfe_stable``, the prefix of the label of Azure's own
provisioning DVD (``rd_rdfe_stable.161212-1209`` in cloud-init's notes). cloud-init's
``ds-identify`` explicitly skips ``rd_rdfe_stable*`` in its *OVF* (VMware) datasource check
(``is_cdrom_ovf``: "rd_rdfe is azure"); any other label on a small iso9660 CD holding the OVF
environment namespace, such as ``OVF_ENV``, makes ds-identify report the VMware OVF datasource
(labels ``OVFENV`` and ``OVF ENV`` even on the fast path). The Azure datasource itself does not
read the label outside Hyper-V, and waagent never does. Both descriptors carry the label
byte for byte, as genisoimage writes it (``blkid`` reports it from there), so its case is kept.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmimage.privatefile import write_private

SECTOR = 2048
#: Azure's own DVD label prefix: see the module docstring for why this label and no other.
DEFAULT_VOLUME_ID = "rd_rdfe_stable"
#: Sectors of zeros after the last file, as mkisofs's default ``-pad``.
PAD_SECTORS = 150
#: ISO 9660 level 2 limit on a file name plus extension (ECMA-119 7.5.1), without ``.`` and ``;1``.
MAX_NAME = 30
#: The Joliet volume identifier is 32 bytes of UCS-2: 16 characters, the shorter of the two limits.
MAX_VOLUME_ID = 16
#: Data lengths are 32-bit fields.
MAX_FILE = 2**32 - 1

_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?")
_VOLUME_ID = re.compile(r"[A-Za-z0-9_.-]{1,16}")
_FIRST_DIR = 23  # after the 16 system sectors, 3 descriptors and 4 path tables


def _both16(value: int) -> bytes:
    """A both-endian 16-bit field (ECMA-119 7.2.3): little-endian then big-endian."""
    return struct.pack("<H", value) + struct.pack(">H", value)


def _both32(value: int) -> bytes:
    """A both-endian 32-bit field (ECMA-119 7.3.3)."""
    return struct.pack("<I", value) + struct.pack(">I", value)


def _record_date(when: datetime) -> bytes:
    """The 7-byte date of a directory record (ECMA-119 9.1.5), in UTC (offset 0)."""
    return bytes([when.year - 1900, when.month, when.day, when.hour, when.minute, when.second, 0])


def _volume_date(when: datetime | None) -> bytes:
    """The 17-byte date of a volume descriptor (ECMA-119 8.4.26.1); ``None``: not specified."""
    if when is None:
        return b"0" * 16 + b"\x00"
    text = f"{when:%Y%m%d%H%M%S}{when.microsecond // 10000:02d}"
    return text.encode("ascii") + b"\x00"


def _text(value: str, size: int, joliet: bool) -> bytes:
    """A fixed-size identifier field padded with spaces: ASCII, or UCS-2 big-endian for Joliet
    (an odd size, as the 37-byte file identifier fields, ends in one zero byte)."""
    if joliet:
        raw = value.encode("utf-16-be")
        raw += b"\x00 " * ((size - len(raw)) // 2)
        return raw.ljust(size, b"\x00")
    return value.encode("ascii").ljust(size, b" ")


@dataclass(frozen=True)
class _Entry:
    """One file as both hierarchies record it."""

    primary: bytes  # e.g. b"OVF-ENV.XML;1"
    joliet: bytes  # UCS-2 big-endian, e.g. "ovf-env.xml"
    data: bytes


def _primary_sort_key(entry: _Entry) -> tuple[bytes, bytes]:
    """ECMA-119 9.3: names, then extensions, compared as if padded with spaces (versions are all 1)."""
    name, _, ext = entry.primary[:-2].partition(b".")
    return name.ljust(MAX_NAME, b" "), ext.ljust(MAX_NAME, b" ")


def _entries(files: Mapping[str, bytes]) -> list[_Entry]:
    """Check every name and size; the entries in no particular order.

    Raises:
        ValueError: a name that cannot be written identically in both hierarchies (a path, a
            character outside ``A-Z a-z 0-9 _ -``, more than one dot, a leading or trailing dot,
            more than 30 characters), two names that differ only in case (their primary names collide),
            or a file of 4 GiB or more.
    """
    entries: list[_Entry] = []
    seen: dict[str, str] = {}
    for name, data in files.items():
        if not name or name in (".", ".."):
            raise ValueError(f"file name {name!r}: empty or a directory reference")
        if "/" in name:
            raise ValueError(f"file name {name!r}: only files in the root directory can be written")
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"file name {name!r}: only A-Z, a-z, 0-9, '_' and '-' with at most one "
                             "inner dot can be written the same way in ISO 9660 and Joliet")
        if len(name.replace(".", "")) > MAX_NAME:
            raise ValueError(f"file name {name!r}: longer than the {MAX_NAME} characters ISO 9660 "
                             "allows for a name and its extension")
        upper = name.upper()
        if upper in seen:
            raise ValueError(f"file names {seen[upper]!r} and {name!r} differ only in case: ISO 9660 "
                             "names are upper case, so both would be written as the same name")
        seen[upper] = name
        if len(data) > MAX_FILE:
            raise ValueError(f"file {name!r}: {len(data)} bytes; ISO 9660 extents hold less than 4 GiB")
        # "readme" is "README.;1": ECMA-119 7.5.1 makes the dot mandatory.
        primary = (upper if "." in upper else upper + ".") + ";1"
        entries.append(_Entry(primary.encode("ascii"), name.encode("utf-16-be"), bytes(data)))
    return entries


def _record(identifier: bytes, extent: int, length: int, when: datetime, directory: bool) -> bytes:
    """A directory record (ECMA-119 9.1), padded to an even length."""
    size = 33 + len(identifier) + (1 - len(identifier) % 2)
    return (bytes([size, 0]) + _both32(extent) + _both32(length) + _record_date(when)
            + bytes([0x02 if directory else 0x00, 0, 0]) + _both16(1)
            + bytes([len(identifier)]) + identifier + b"\x00" * (1 - len(identifier) % 2))


def _directory(records: list[bytes]) -> bytes:
    """Records packed into whole sectors: a record never crosses a sector boundary (ECMA-119 6.8.1.1)."""
    out = bytearray()
    for record in records:
        left = SECTOR - len(out) % SECTOR
        if len(record) > left:
            out += b"\x00" * left
        out += record
    return bytes(out.ljust(-(-len(out) // SECTOR) * SECTOR, b"\x00"))


def _directory_size(name_lengths: list[int]) -> int:
    """The size in bytes of a directory holding "." and ".." and files with these identifier
    lengths: known before any extent is placed, since the files come after the directories."""
    probe = [b"\x00" * 34, b"\x00" * 34]
    probe += [b"\x00" * (33 + n + (1 - n % 2)) for n in name_lengths]
    return len(_directory(probe))


def _path_table(root: int, little: bool) -> bytes:
    """A path table holding the root only (ECMA-119 9.4): 10 bytes, its identifier padded."""
    fmt = "<" if little else ">"
    return bytes([1, 0]) + struct.pack(f"{fmt}I", root) + struct.pack(f"{fmt}H", 1) + b"\x00\x00"


def _descriptor(joliet: bool, volume_id: str, space: int, path_l: int, path_m: int, root: bytes,
                when: datetime) -> bytes:
    """A primary (type 1) or Joliet supplementary (type 2) volume descriptor (ECMA-119 8.4, 8.5)."""
    out = bytearray(SECTOR)
    out[0:8] = bytes([2 if joliet else 1]) + b"CD001" + bytes([1, 0])
    out[8:40] = _text("", 32, joliet)  # system identifier: nothing uses the system area
    out[40:72] = _text(volume_id, 32, joliet)
    out[80:88] = _both32(space)
    if joliet:
        out[88:91] = b"%/E"  # escape sequence of UCS-2 level 3
    out[120:124] = _both16(1)  # volume set size
    out[124:128] = _both16(1)  # volume sequence number
    out[128:132] = _both16(SECTOR)
    out[132:140] = _both32(10)  # path table size: the root record only
    out[140:144] = struct.pack("<I", path_l)
    out[148:152] = struct.pack(">I", path_m)
    out[156:190] = root
    out[190:318] = _text("", 128, joliet)  # volume set
    out[318:446] = _text("", 128, joliet)  # publisher
    out[446:574] = _text("", 128, joliet)  # data preparer
    out[574:702] = _text("VMIMAGE", 128, joliet)  # application
    out[702:739] = _text("", 37, joliet)  # copyright file
    out[739:776] = _text("", 37, joliet)  # abstract file
    out[776:813] = _text("", 37, joliet)  # bibliographic file
    out[813:830] = _volume_date(when)  # creation
    out[830:847] = _volume_date(when)  # modification
    out[847:864] = _volume_date(None)  # expiration: never
    out[864:881] = _volume_date(when)  # effective: at once
    out[881] = 1  # file structure version
    return bytes(out)


def _when(created: datetime | None) -> datetime:
    """``created`` in UTC (a naive time is taken as UTC), whole seconds; now by default.

    Raises:
        ValueError: outside the years a directory record can hold (1900-2155).
    """
    when = datetime.now(UTC) if created is None else created
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not 1900 <= when.year <= 2155:
        raise ValueError(f"date {when:%Y-%m-%d}: ISO 9660 directory records hold years 1900-2155")
    return when.replace(microsecond=0)


def iso_image(files: Mapping[str, bytes], volume_id: str = DEFAULT_VOLUME_ID, *,
              created: datetime | None = None) -> bytes:
    """An ISO 9660 image with a Joliet hierarchy holding ``files`` (name -> content) in its root.

    ``created`` dates the volume and every record (default: now); pass it for identical bytes
    from identical input. ``volume_id``: 1-16 characters of ``A-Z a-z 0-9 _ . -`` (Joliet holds
    16), written as given in both descriptors.

    Raises:
        ValueError: a name, size, volume identifier or date that cannot be written; the
            message says which and why.
    """
    if _VOLUME_ID.fullmatch(volume_id) is None:
        raise ValueError(f"volume identifier {volume_id!r}: 1-{MAX_VOLUME_ID} characters of "
                         "A-Z, a-z, 0-9, '_', '.' and '-' (Joliet holds 16)")
    when = _when(created)
    entries = _entries(files)
    primary = sorted(entries, key=_primary_sort_key)
    joliet = sorted(entries, key=lambda e: e.joliet)

    primary_dir = _FIRST_DIR
    primary_size = _directory_size([len(e.primary) for e in primary])
    joliet_dir = primary_dir + primary_size // SECTOR
    joliet_size = _directory_size([len(e.joliet) for e in joliet])
    next_sector = joliet_dir + joliet_size // SECTOR

    # File data in primary order; an empty file points at the next free sector, as genisoimage does.
    extents: dict[bytes, int] = {}
    data = bytearray()
    for entry in primary:
        extents[entry.primary] = next_sector
        padded = entry.data.ljust(-(-len(entry.data) // SECTOR) * SECTOR, b"\x00")
        data += padded
        next_sector += len(padded) // SECTOR
    space = next_sector + PAD_SECTORS

    def directory(own: int, size: int, records: list[tuple[bytes, _Entry]]) -> bytes:
        dots = [_record(b"\x00", own, size, when, True), _record(b"\x01", own, size, when, True)]
        return _directory(dots + [_record(name, extents[e.primary], len(e.data), when, False)
                                  for name, e in records])

    primary_bytes = directory(primary_dir, primary_size, [(e.primary, e) for e in primary])
    joliet_bytes = directory(joliet_dir, joliet_size, [(e.joliet, e) for e in joliet])
    assert len(primary_bytes) == primary_size and len(joliet_bytes) == joliet_size

    image = bytearray(16 * SECTOR)
    image += _descriptor(False, volume_id, space, 19, 20,
                         _record(b"\x00", primary_dir, primary_size, when, True), when)
    image += _descriptor(True, volume_id, space, 21, 22,
                         _record(b"\x00", joliet_dir, joliet_size, when, True), when)
    image += (b"\xffCD001\x01").ljust(SECTOR, b"\x00")  # volume descriptor set terminator
    for root, little in ((primary_dir, True), (primary_dir, False), (joliet_dir, True), (joliet_dir, False)):
        image += _path_table(root, little).ljust(SECTOR, b"\x00")
    image += primary_bytes + joliet_bytes + data
    image += b"\x00" * (space * SECTOR - len(image))
    return bytes(image)


def write_iso(path: str | os.PathLike[str], files: Mapping[str, bytes],
              volume_id: str = DEFAULT_VOLUME_ID, *, created: datetime | None = None) -> Path:
    """Write :func:`iso_image` to ``path`` atomically with mode 0600: the provisioning DVD holds
    the user's password and keys, so it is never readable by others, not even for a moment.

    Raises:
        ValueError: as :func:`iso_image`.
        InputError: ``path`` cannot be written (see :mod:`vmimage.privatefile`).
    """
    return write_private(path, iso_image(files, volume_id, created=created))
