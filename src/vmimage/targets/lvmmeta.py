"""LVM2's on-disk metadata, read from one physical volume: where each logical volume's bytes lie.

``generalize`` loop-mounts a root filesystem at an offset of the disk file
(``mount -o loop,offset=N,sizelimit=M``) so that no device-mapper table and no host LVM state
is ever created: a killed run leaves nothing activated. For a root on a logical volume that
needs the LV's segments, which pyvslvm (:mod:`vmimage.targets.lvm`) does not expose, so this
module reads them itself: the label, the PV header, the metadata area header and the
metadata text, in LVM2's format (``lib/format_text/layout.h`` and ``libdm-config.c`` of lvm2).

The PV is untrusted input: every offset is checked against the partition before it is read,
every checksum LVM writes is verified, the text is at most :data:`TEXT_MAX` bytes and is parsed
in one linear pass with bounded nesting and counts. Damage raises
:class:`~vmimage.targets.base.UnreadableError` with a short reason, never a traceback's worth.
"""

from __future__ import annotations

import errno
import itertools
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

from vmimage.targets.base import UnreadableError

SECTOR = 512
#: LVM looks for its label in the first four sectors of the device (``LABEL_SCAN_SECTORS``).
LABEL_SCAN_SECTORS = 4
LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_HEADER_SIZE = 512
MDA_MAGIC = b"\x20LVM2 x[5A%r0N*>"
#: The seed of LVM's CRC-32 (``INITIAL_CRC`` in ``lib/misc/crc.h``).
INITIAL_CRC = 0xF597A6CF
#: A raw_locn flag: the metadata area is kept but ignored (``pvchange --metadataignore y``).
RAW_LOCN_IGNORED = 0x1
#: Bounds on what a hostile PV can make us read or build. Real metadata is a few KiB (LVM's
#: own default metadata area is about 1 MiB and must hold two copies of the text).
TEXT_MAX = 1024 * 1024
DEPTH_MAX = 32
LV_MAX = 4096
SEGMENT_MAX = 4096
#: LVM stores numbers as 64-bit integers; a longer token is damage, not a number to build.
_NUMBER_MAX_CHARS = 24
_U64 = 1 << 64

_LABEL = struct.Struct("<8sQII8s")  # id, sector_xl, crc_xl, offset_xl, type
_DISK_LOCN = struct.Struct("<QQ")  # offset, size (bytes from the start of the PV)
_MDA_HEADER = struct.Struct("<I16sIQQ")  # checksum_xl, magic, version, start, size
_RAW_LOCN = struct.Struct("<QQII")  # offset (from mda start), size, checksum, flags
_UUID_LEN = 32


class ByteReader(Protocol):
    """What the PV is read through: the disk (:class:`~vmimage.targets.blockio.BlockCache`,
    ``FdReader``...), addressed in bytes from the start of the disk."""

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``; reads past the end are cut short."""
        ...


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a logical volume, as the metadata text states it.

    ``stripes`` holds ``(pv name, first extent on that PV)`` for a ``striped`` segment (a linear
    one is ``striped`` with one stripe) and is empty for every other type (thin, raid, mirror,
    cache...), whose areas name other LVs rather than PVs.
    """

    start_extent: int  # first extent of the LV this segment maps
    extent_count: int
    type: str
    stripes: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class LogicalVolume:
    """A logical volume of the VG and its segments, in LV extent order.

    ``in_snapshot`` marks the origin and the copy-on-write store of an old-style snapshot
    (whose ``snapshot`` segment sits in a hidden LV of its own): the store's bytes are not the
    snapshot's content, and writing the origin's bytes behind LVM's back would corrupt the
    snapshot, so neither can be mounted at an offset.
    """

    name: str
    segments: tuple[Segment, ...]
    in_snapshot: bool = False


@dataclass(frozen=True, slots=True)
class PvLayout:
    """What one PV's metadata says about its volume group, sizes in bytes.

    ``pe_start`` is where extent 0 of this PV begins, from the start of the PV partition;
    ``pv_name`` is the name the metadata gives this PV inside the VG (``pv0``...), which is
    what segments' stripes refer to.
    """

    vg_name: str
    vg_uuid: str
    seqno: int
    extent_size: int
    pv_name: str
    pv_uuid: str  # as LVM prints it, with dashes
    pe_start: int
    pe_count: int
    device_size: int  # from the PV header
    size: int  # the partition's size, as given to read_layout
    lvs: tuple[LogicalVolume, ...]

    def lv(self, name: str) -> LogicalVolume:
        """The logical volume called ``name``; ``KeyError`` when the VG has none."""
        for lv in self.lvs:
            if lv.name == name:
                return lv
        raise KeyError(name)


def lvm_crc(data: bytes, seed: int = INITIAL_CRC) -> int:
    """LVM's checksum: the CRC-32 of zlib's polynomial, seeded with :data:`INITIAL_CRC` and with
    neither zlib's initial nor its final inversion."""
    return zlib.crc32(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def read_layout(reader: ByteReader, offset: int, size: int, *,
                name: str = "LVM physical volume") -> PvLayout:
    """The volume group as the PV at ``offset`` (``size`` bytes) of the disk records it.

    ``name`` only labels the errors. Every metadata area of the PV is tried and the newest
    readable copy (highest ``seqno``) is used, as LVM does, so one damaged copy is survivable
    on a PV made with ``--pvmetadatacopies 2``.
    """
    if offset < 0 or size <= 0:
        raise ValueError(f"read_layout: offset {offset} and size {size} locate no partition")
    pv = _Pv(reader, offset, size, name)
    uuid, device_size, mdas = pv.header()
    if not mdas:
        raise pv.damage("holds no metadata area (made with --metadatacopies 0?): its volume "
                        "group must be read from another PV")
    best: PvLayout | None = None
    first_error: UnreadableError | None = None
    for mda_start, mda_size in mdas:
        try:
            text = pv.metadata_text(mda_start, mda_size)
            layout = _layout(parse_config(text, name), pv, uuid, device_size)
        except UnreadableError as exc:
            first_error = first_error or exc
            continue
        if best is None or layout.seqno > best.seqno:
            best = layout
    if best is None:
        assert first_error is not None
        raise first_error
    return best


def linear_extent(layout: PvLayout, lv_name: str) -> tuple[int, int] | None:
    """Where the LV ``lv_name`` lies on this PV, as ``(offset from the start of the PV
    partition, size)`` in bytes, when its bytes are one contiguous run there.

    That is: every segment is ``striped`` with one stripe on this PV, the segments follow each
    other in the LV and their extents follow each other on the PV. Anything else (thin, raid,
    mirror, an old-style snapshot or its origin, several PVs, a gap or a reordering on the
    PV) gives None: such an LV cannot be mounted at an offset of the disk file. ``KeyError``
    when there is no such LV.
    """
    lv = layout.lv(lv_name)
    segments = sorted(lv.segments, key=lambda s: s.start_extent)
    if not segments or lv.in_snapshot:
        return None
    first_pv = segments[0].stripes[0][1] if segments[0].stripes else 0
    next_lv, next_pv = 0, first_pv
    for seg in segments:
        if seg.type != "striped" or len(seg.stripes) != 1:
            return None
        pv_name, pv_extent = seg.stripes[0]
        if pv_name != layout.pv_name or seg.start_extent != next_lv or pv_extent != next_pv:
            return None
        next_lv += seg.extent_count
        next_pv += seg.extent_count
    start = layout.pe_start + first_pv * layout.extent_size
    length = next_lv * layout.extent_size
    if start + length > layout.size:  # _layout checks this; a hand-made layout may not
        return None
    return start, length


# ---- the binary structures -------------------------------------------------------------------

class _Pv:
    """Bounded reads of the PV partition, and the label, PV header and metadata area headers."""

    def __init__(self, reader: ByteReader, offset: int, size: int, name: str) -> None:
        self.reader, self.offset, self.size, self.name = reader, offset, size, name

    def damage(self, problem: str, code: int = errno.EIO) -> UnreadableError:
        """The error for a damaged or hostile PV."""
        return UnreadableError(self.name, problem, code)

    def read(self, at: int, length: int, what: str) -> bytes:
        """``length`` bytes at ``at`` in the PV, refused when they are not all inside it."""
        if at < 0 or length < 0 or at + length > self.size:
            raise self.damage(f"{what} (bytes {at}-{at + length}) lies outside the "
                              f"{self.size}-byte partition")
        data = self.reader.read(self.offset + at, length) if length else b""
        if len(data) != length:
            raise self.damage(f"{what}: cut short, the disk ends at byte "
                              f"{self.offset + at + len(data)}")
        return data

    def header(self) -> tuple[str, int, list[tuple[int, int]]]:
        """The PV's UUID (32 characters, no dashes), device size, and metadata areas.

        The label is the first of sectors 0-3 that starts with ``LABELONE``, names its own
        sector, has the ``LVM2 001`` type and a good checksum; the PV header follows it in the
        same sector: UUID, size, then two lists of (offset, size), the data areas and the
        metadata areas, each ended by a zero entry.
        """
        scan = min(LABEL_SCAN_SECTORS * SECTOR, self.size - self.size % SECTOR)
        if scan < SECTOR:
            raise self.damage(f"{self.size} bytes: too small for an LVM label")
        sectors = self.read(0, scan, "the LVM label sectors")
        problem = "no LVM label (LABELONE) in its first four sectors"
        for index in range(scan // SECTOR):
            sector = sectors[index * SECTOR:(index + 1) * SECTOR]
            if not sector.startswith(LABEL_ID):
                continue
            _, sector_xl, crc, pvh_offset, label_type = _LABEL.unpack_from(sector)
            if label_type != LABEL_TYPE:
                problem = f"LVM label of unknown type {label_type!r} in sector {index}"
            elif sector_xl != index:
                problem = f"LVM label in sector {index} says it is in sector {sector_xl}"
            elif lvm_crc(sector[20:]) != crc:
                problem = f"LVM label in sector {index} fails its checksum"
            elif not _LABEL.size <= pvh_offset <= SECTOR - _UUID_LEN - 8 - 2 * _DISK_LOCN.size:
                problem = f"LVM label in sector {index}: PV header at offset {pvh_offset}"
            else:
                return self._pv_header(sector, pvh_offset)
        raise self.damage(problem)

    def _pv_header(self, sector: bytes, at: int) -> tuple[str, int, list[tuple[int, int]]]:
        raw_uuid = sector[at:at + _UUID_LEN]
        if not re.fullmatch(rb"[0-9A-Za-z!#]{32}", raw_uuid):
            raise self.damage("the PV header's UUID is not one LVM writes")
        (device_size,) = struct.unpack_from("<Q", sector, at + _UUID_LEN)
        at += _UUID_LEN + 8
        lists: list[list[tuple[int, int]]] = []
        for what in ("data", "metadata"):
            areas: list[tuple[int, int]] = []
            while True:
                if at + _DISK_LOCN.size > SECTOR:
                    raise self.damage(f"the PV header's list of {what} areas has no end")
                area_offset, area_size = _DISK_LOCN.unpack_from(sector, at)
                at += _DISK_LOCN.size
                if not area_offset:
                    break
                areas.append((area_offset, area_size))
            lists.append(areas)
        return raw_uuid.decode("ascii"), device_size, lists[1]

    def metadata_text(self, start: int, size: int) -> str:
        """The committed metadata text of the metadata area at ``start`` (``size`` bytes).

        The area is a circular buffer after its 512-byte header: the text begins at the first
        raw_locn's offset and, when it runs past the area's end, continues right after the
        header (what LVM calls the wrap).
        """
        where = f"metadata area at byte {start}"
        if size < MDA_HEADER_SIZE or start + size > self.size:
            raise self.damage(f"{where} of {size} bytes does not fit in the "
                              f"{self.size}-byte partition")
        header = self.read(start, MDA_HEADER_SIZE, f"the header of the {where}")
        crc, magic, version, mda_start, mda_size = _MDA_HEADER.unpack_from(header)
        if magic != MDA_MAGIC or version != 1:
            raise self.damage(f"{where}: no LVM2 metadata header (magic or version)")
        if lvm_crc(header[4:]) != crc:
            raise self.damage(f"{where}: the header fails its checksum")
        if mda_start != start or not MDA_HEADER_SIZE < mda_size <= size:
            raise self.damage(f"{where}: its header says it starts at {mda_start} and holds "
                              f"{mda_size} bytes")
        text_offset, text_size, text_crc, flags = _RAW_LOCN.unpack_from(
            header, _MDA_HEADER.size)
        if not text_offset and not text_size:
            raise self.damage(f"{where}: no metadata (a PV in no volume group)")
        if flags & RAW_LOCN_IGNORED:
            raise self.damage(f"{where}: marked ignored (pvchange --metadataignore)")
        if text_size > TEXT_MAX:
            raise self.damage(f"{where}: {text_size} bytes of metadata text, over the "
                              f"{TEXT_MAX}-byte limit", errno.EFBIG)
        if not MDA_HEADER_SIZE <= text_offset < mda_size or \
                not 0 < text_size <= mda_size - MDA_HEADER_SIZE:
            raise self.damage(f"{where}: metadata text of {text_size} bytes at offset "
                              f"{text_offset} lies outside the area")
        wrap = max(0, text_offset + text_size - mda_size)
        text = self.read(start + text_offset, text_size - wrap, f"the text of the {where}")
        if wrap:
            text += self.read(start + MDA_HEADER_SIZE, wrap, f"the text of the {where}")
        if lvm_crc(text) != text_crc:
            raise self.damage(f"{where}: the metadata text fails its checksum")
        return text.split(b"\0", 1)[0].decode("utf-8", "replace")


# ---- the text format -------------------------------------------------------------------------

Scalar = int | float | str
Value = Scalar | list[Scalar]
Section = dict[str, "Value | Section"]

#: One token, after the blanks and comments before it: punctuation, a double-quoted string
#: (escapes undone later), a single-quoted one, or a word (a name, or a number where a value
#: is expected). None of the groups matches at a string that is never closed, or at the end.
_TOKEN = re.compile(r"""(?:\s+|\#[^\n]*)*
    (?:(?P<p>[{}\[\]=,])
      |"(?P<d>(?:[^"\\]|\\.)*)"
      |'(?P<s>[^']*)'
      |(?P<w>[^\s\#={}\[\],"']+))?""", re.VERBOSE | re.DOTALL)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class ConfigError(UnreadableError):
    """The metadata text does not follow LVM's config format, or breaks one of our bounds."""


def parse_config(text: str, name: str = "LVM metadata") -> Section:
    """LVM's config text (``libdm-config.c``) as nested dicts, in one pass over the text.

    Sections are ``name { ... }``, settings ``key = value``; a value is an integer, a float,
    a double-quoted string with backslash escapes, a single-quoted string, or a flat list of
    those in brackets; ``#`` starts a comment. A repeated key, a section deeper than
    :data:`DEPTH_MAX`, unbalanced braces or a text over :data:`TEXT_MAX` characters raise
    :class:`ConfigError`, which says on which line.
    """
    if len(text) > TEXT_MAX:
        raise ConfigError(name, f"metadata text of {len(text)} characters, over the "
                                f"{TEXT_MAX} limit", errno.EFBIG)
    return _Parser(text, name).section(0)


class _Parser:
    """A recursive-descent parser over tokens, its recursion bounded by :data:`DEPTH_MAX`;
    one regular-expression match per token, so a MiB of text costs about a second at most."""

    def __init__(self, text: str, name: str) -> None:
        self.text, self.name, self.pos, self.start = text, name, 0, 0

    def error(self, problem: str) -> ConfigError:
        line = self.text.count("\n", 0, self.start) + 1
        return ConfigError(self.name, f"metadata text, line {line}: {problem}")

    def token(self) -> tuple[str, str]:
        """The next token as (kind, text): kind ``p``, ``d``, ``s`` or ``w`` as in
        :data:`_TOKEN`, or ``""`` at the end of the text."""
        match = _TOKEN.match(self.text, self.pos)
        assert match is not None  # every part of the pattern may match the empty string
        kind = match.lastgroup
        self.start, self.pos = match.end(), match.end()
        if kind is None:
            if self.pos < len(self.text):
                raise self.error("a string is never closed")
            return "", ""
        self.start = match.start(kind)
        return kind, match.group(kind)

    def section(self, depth: int) -> Section:
        """Settings and subsections up to the closing brace (or the end, at depth 0)."""
        found: Section = {}
        while True:
            kind, text = self.token()
            if not kind or (kind, text) == ("p", "}"):
                if bool(kind) != bool(depth):
                    raise self.error("unbalanced braces: " + (
                        "a '}' closes no section" if kind else "a section is never closed"))
                return found
            if kind != "w":
                raise self.error(f"expected a name, found {_describe(kind, text)}")
            key = text
            kind, text = self.token()
            if key in found:
                raise self.error(f"{key!r} appears twice")
            if (kind, text) == ("p", "{"):
                if depth + 1 > DEPTH_MAX:
                    raise self.error(f"sections nested deeper than {DEPTH_MAX}")
                found[key] = self.section(depth + 1)
            elif (kind, text) == ("p", "="):
                found[key] = self.value()
            else:
                raise self.error(f"expected '=' or '{{' after {key!r}")

    def value(self) -> Value:
        """A scalar, or a flat list of scalars: ``[ "pv0", 0 ]`` (possibly empty)."""
        kind, text = self.token()
        if (kind, text) != ("p", "["):
            return self.scalar(kind, text)
        items: list[Scalar] = []
        kind, text = self.token()
        if (kind, text) == ("p", "]"):
            return items
        while True:
            items.append(self.scalar(kind, text))
            kind, text = self.token()
            if (kind, text) == ("p", "]"):
                return items
            if (kind, text) != ("p", ","):
                raise self.error("expected ',' or ']' in a list")
            kind, text = self.token()

    def scalar(self, kind: str, text: str) -> Scalar:
        """A string, or a word that is a number (64-bit, as LVM stores them)."""
        if kind == "d":
            return _ESCAPE.sub(r"\1", text) if "\\" in text else text
        if kind == "s":
            return text
        if kind != "w" or not _NUMBER.fullmatch(text):
            raise self.error(f"expected a value, found {_describe(kind, text)}")
        if len(text) > _NUMBER_MAX_CHARS:
            raise self.error(f"a number of {len(text)} characters")
        if "." in text:
            return float(text)
        number = int(text)
        if not -_U64 < number < _U64:
            raise self.error(f"{text} does not fit in 64 bits")
        return number


def _describe(kind: str, text: str) -> str:
    """A token as an error message names it."""
    if not kind:
        return "the end of the text"
    if kind in "ds":
        return "a string"
    return repr(text if len(text) <= 20 else text[:20] + "...")


# ---- what the text means ---------------------------------------------------------------------

def _dashed(uuid: str) -> str:
    """An LVM UUID as LVM prints it: 6-4-4-4-4-4-6 characters."""
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(uuid[a:b] for a, b in itertools.pairwise(cuts))


class _Meta:
    """Typed access to parsed sections, with errors that say which setting is wrong."""

    def __init__(self, name: str) -> None:
        self.name = name

    def damage(self, problem: str) -> UnreadableError:
        return UnreadableError(self.name, f"metadata: {problem}")

    def section(self, parent: Section, key: str, where: str, *,
                optional: bool = False) -> Section:
        value = parent.get(key)
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.damage(f"{where}: no section {key!r}")
        return value

    def integer(self, parent: Section, key: str, where: str, low: int = 0,
                high: int = _U64 - 1) -> int:
        value = parent.get(key)
        if not isinstance(value, int) or not low <= value <= high:
            raise self.damage(f"{where}: {key} is {value!r}, not an integer in "
                              f"{low}..{high}")
        return value

    def string(self, parent: Section, key: str, where: str) -> str:
        value = parent.get(key)
        if not isinstance(value, str):
            raise self.damage(f"{where}: {key} is {value!r}, not a string")
        return value


def _layout(doc: Section, pv: _Pv, uuid: str, device_size: int) -> PvLayout:
    """The :class:`PvLayout` the parsed text describes, from this PV's point of view.

    Sizes in the text are in 512-byte sectors. Every extent of this PV that a segment uses
    must lie inside the partition, so that :func:`linear_extent`'s answer can be mounted.
    """
    meta = _Meta(pv.name)
    groups = [(key, value) for key, value in doc.items() if isinstance(value, dict)]
    if len(groups) != 1:
        raise meta.damage(f"{len(groups)} volume groups in the text, not one")
    vg_name, vg = groups[0]
    where = f"volume group {vg_name}"
    seqno = meta.integer(vg, "seqno", where)
    extent = meta.integer(vg, "extent_size", where, 1, 1 << 32) * SECTOR
    pvs = meta.section(vg, "physical_volumes", where)
    dashed = _dashed(uuid)
    pv_name, pv_meta = next(((key, value) for key, value in pvs.items()
                             if isinstance(value, dict) and value.get("id") == dashed),
                            ("", {}))
    if not pv_name:
        raise meta.damage(f"{where} does not list this PV ({dashed}) among its PVs")
    pv_where = f"{where}, {pv_name}"
    pe_start = meta.integer(pv_meta, "pe_start", pv_where, 0, pv.size // SECTOR) * SECTOR
    pe_count = meta.integer(pv_meta, "pe_count", pv_where)
    if pe_start + pe_count * extent > pv.size:
        raise meta.damage(f"{pv_where}: {pe_count} extents of {extent} bytes from byte "
                          f"{pe_start} run past the {pv.size}-byte partition")
    lvs_section = meta.section(vg, "logical_volumes", where, optional=True)
    if len(lvs_section) > LV_MAX:
        raise meta.damage(f"{where}: {len(lvs_section)} logical volumes (at most {LV_MAX})")
    by_name: dict[str, tuple[Segment, ...]] = {}
    in_snapshot: set[str] = set()
    for lv_name, lv in lvs_section.items():
        if not isinstance(lv, dict):
            raise meta.damage(f"{where}: logical volume {lv_name!r} is not a section")
        lv_where = f"{where}, LV {lv_name}"
        segments, snapshot_of = _segments(meta, lv, lv_where, pvs)
        in_snapshot.update(snapshot_of)
        for seg in segments:
            per_stripe = seg.extent_count // max(1, len(seg.stripes))
            for stripe_pv, first in seg.stripes:
                if stripe_pv == pv_name and first + per_stripe > pe_count:
                    raise meta.damage(f"{where}, LV {lv_name}: extents {first}-"
                                      f"{first + per_stripe - 1} of {pv_name}, which has "
                                      f"{pe_count}")
        by_name[lv_name] = segments
    missing = sorted(in_snapshot - set(by_name))
    if missing:
        raise meta.damage(f"{where}: a snapshot names LV {missing[0]!r}, which is not there")
    lvs = tuple(LogicalVolume(name, segments, name in in_snapshot)
                for name, segments in by_name.items())
    return PvLayout(vg_name, meta.string(vg, "id", where), seqno, extent, pv_name, dashed,
                    pe_start, pe_count, device_size, pv.size, lvs)


def _segments(meta: _Meta, lv: Section, where: str,
              pvs: Section) -> tuple[tuple[Segment, ...], list[str]]:
    """``segment1`` .. ``segmentN`` of an LV, N its ``segment_count``; and the LVs its
    ``snapshot`` segments name (the origin and the copy-on-write store)."""
    count = meta.integer(lv, "segment_count", where, 0, SEGMENT_MAX)
    segments, snapshot_of = [], []
    for index in range(1, count + 1):
        seg_where = f"{where}, segment{index}"
        seg = meta.section(lv, f"segment{index}", where)
        start = meta.integer(seg, "start_extent", seg_where, 0, 1 << 62)
        extents = meta.integer(seg, "extent_count", seg_where, 1, 1 << 62)
        seg_type = meta.string(seg, "type", seg_where)
        stripes: tuple[tuple[str, int], ...] = ()
        if seg_type == "striped":
            stripes = _stripes(meta, seg, seg_where, pvs, extents)
        elif seg_type == "snapshot":
            snapshot_of += [meta.string(seg, "origin", seg_where),
                            meta.string(seg, "cow_store", seg_where)]
        segments.append(Segment(start, extents, seg_type, stripes))
    return tuple(sorted(segments, key=lambda s: s.start_extent)), snapshot_of


def _stripes(meta: _Meta, seg: Section, where: str, pvs: Section,
             extents: int) -> tuple[tuple[str, int], ...]:
    """A striped segment's ``stripes = [ "pv0", 0, "pv1", 0 ]``: each PV and its first extent."""
    count = meta.integer(seg, "stripe_count", where, 1, SEGMENT_MAX)
    raw = seg.get("stripes")
    if not isinstance(raw, list) or len(raw) != 2 * count:
        raise meta.damage(f"{where}: stripes is not a list of {count} (PV, extent) pairs")
    if extents % count:
        raise meta.damage(f"{where}: {extents} extents do not divide into {count} stripes")
    stripes = []
    for pv_name, first in zip(raw[::2], raw[1::2], strict=True):
        if not isinstance(pv_name, str) or not isinstance(pvs.get(pv_name), dict) or \
                not isinstance(first, int) or not 0 <= first < 1 << 62:
            raise meta.damage(f"{where}: stripe ({pv_name!r}, {first!r}) names no PV of "
                              "the group or no extent")
        stripes.append((pv_name, first))
    return tuple(stripes)
