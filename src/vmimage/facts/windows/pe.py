"""The version of a Windows binary, from its VS_VERSIONINFO resource, read without running it.

Patch level is judged from file versions of system binaries (``ntoskrnl.exe``, ``srv.sys``...)
as Windows Update and security advisories name them (certification-research.md §2). The path
to the version is DOS header → PE header → optional header → resource data directory →
section mapping → resource tree (``RT_VERSION`` = 16, its first name, first language) →
``VS_VERSIONINFO`` → ``VS_FIXEDFILEINFO`` (signature ``0xFEEF04BD``) and the
``StringFileInfo`` strings.

The file is untrusted: every offset is checked against the data before it is read, each of the
three resource levels is walked at most :data:`ENTRY_MAX` entries (the walk cannot loop: it
only ever descends), and version blocks nest at most three deep. Anything malformed gives None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.targets.base import MiB

if TYPE_CHECKING:
    from vmimage.targets.base import Target

#: What is read of a binary: ``ntoskrnl.exe`` is about 12 MiB; a larger "system file" is refused.
PE_MAX = 128 * MiB
#: Entries tried per resource directory level, and version-info blocks per parent block.
ENTRY_MAX = 64
FIXED_SIGNATURE = 0xFEEF04BD
RT_VERSION = 16

Version = tuple[int, int, int, int]


class _Malformed(Exception):
    """An offset or size that does not fit the data: the walk stops with None."""


@dataclass(frozen=True)
class VersionInfo:
    """What a binary's version resource says: the fixed numeric versions, and the
    ``StringFileInfo`` strings of its first string table (``FileVersion``, ``OriginalFilename``,
    ``ProductVersion``...), which Windows shows in file properties."""

    file_version: Version
    product_version: Version
    strings: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def u16(self, offset: int) -> int:
        return int.from_bytes(self.bytes(offset, 2), "little")

    def u32(self, offset: int) -> int:
        return int.from_bytes(self.bytes(offset, 4), "little")

    def bytes(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise _Malformed
        return self.data[offset:offset + size]


@dataclass(frozen=True)
class _Section:
    address: int
    size: int  # the larger of virtual and raw size, as the loader maps it
    raw_offset: int
    raw_size: int


def _sections(reader: _Reader) -> tuple[list[_Section], int, int]:
    """The section table and the resource directory's RVA and size."""
    if reader.bytes(0, 2) != b"MZ":
        raise _Malformed
    pe = reader.u32(0x3C)
    if reader.bytes(pe, 4) != b"PE\0\0":
        raise _Malformed
    count, optional_size = reader.u16(pe + 6), reader.u16(pe + 20)
    optional = pe + 24
    magic = reader.u16(optional)
    if magic not in (0x10B, 0x20B):
        raise _Malformed
    directories = optional + (96 if magic == 0x10B else 112)
    if reader.u32(directories - 4) <= 2 or directories + 24 > optional + optional_size:
        raise _Malformed  # no resource directory entry
    rva, size = reader.u32(directories + 16), reader.u32(directories + 20)
    table = optional + optional_size
    sections = []
    for index in range(min(count, 96)):  # the PE format allows 96 sections
        entry = table + 40 * index
        virtual_size, address = reader.u32(entry + 8), reader.u32(entry + 12)
        raw_size, raw_offset = reader.u32(entry + 16), reader.u32(entry + 20)
        sections.append(_Section(address, max(virtual_size, raw_size), raw_offset, raw_size))
    return sections, rva, size


def _offset(sections: list[_Section], rva: int, size: int) -> int:
    """The file offset of ``size`` bytes at ``rva``, which must lie in one section's raw data."""
    for section in sections:
        if section.address <= rva and rva + size <= section.address + section.size:
            relative = rva - section.address
            if relative + size > section.raw_size:
                raise _Malformed  # in the zero-filled tail: not in the file
            return section.raw_offset + relative
    raise _Malformed


def _entries(reader: _Reader, base: int, directory: int) -> list[tuple[int, int]]:
    """(name or id, offset to data) of the first :data:`ENTRY_MAX` entries of a directory;
    a name (high bit set) is kept with its high bit so that it never equals an id."""
    named, ids = reader.u16(base + directory + 12), reader.u16(base + directory + 14)
    first = base + directory + 16
    return [(reader.u32(first + 8 * i), reader.u32(first + 8 * i + 4))
            for i in range(min(named + ids, ENTRY_MAX))]


def _version_resource(data: bytes) -> bytes:
    """The raw bytes of the first RT_VERSION resource."""
    reader = _Reader(data)
    sections, rva, _ = _sections(reader)
    base = _offset(sections, rva, 16)
    tail = len(data) - base  # the resource tree's offsets are relative to its start

    def subdirectory(target: int) -> int:
        if not target & 0x8000_0000 or (target & 0x7FFF_FFFF) + 16 > tail:
            raise _Malformed
        return target & 0x7FFF_FFFF

    types = [t for n, t in _entries(reader, base, 0) if n == RT_VERSION]
    if not types:
        raise _Malformed
    names = _entries(reader, base, subdirectory(types[0]))
    if not names:
        raise _Malformed
    languages = _entries(reader, base, subdirectory(names[0][1]))
    if not languages or languages[0][1] & 0x8000_0000:
        raise _Malformed
    entry = base + languages[0][1]
    data_rva, size = reader.u32(entry), reader.u32(entry + 4)
    return reader.bytes(_offset(sections, data_rva, size), size)


def _align(offset: int) -> int:
    return (offset + 3) & ~3


@dataclass(frozen=True)
class _Block:
    key: str
    value: bytes
    kind: int  # 1 = text, 0 = binary
    children: list[_Block]


def _block(reader: _Reader, start: int, end: int, depth: int) -> tuple[_Block, int]:
    """One version-info block at ``start`` (wLength, wValueLength, wType, szKey, Value,
    Children), and the offset of the next one; ``depth`` bounds the nesting."""
    length, value_length, kind = reader.u16(start), reader.u16(start + 2), reader.u16(start + 4)
    stop = start + length
    if length < 6 or stop > end:
        raise _Malformed
    key_end = start + 6
    while reader.u16(key_end) != 0:  # bounded by ``stop`` through the check below
        key_end += 2
        if key_end >= stop:
            raise _Malformed
    key = reader.bytes(start + 6, key_end - start - 6).decode("utf-16-le", "replace")
    value_at = _align(key_end + 2)
    value_size = value_length * 2 if kind == 1 else value_length  # text: in characters
    value = reader.bytes(value_at, max(0, min(value_size, stop - value_at)))
    children: list[_Block] = []
    at = _align(value_at + len(value))
    while depth > 0 and at + 6 <= stop and len(children) < ENTRY_MAX:
        child, at = _block(reader, at, stop, depth - 1)
        children.append(child)
    return _Block(key, value, kind, children), _align(stop)


def _strings(root: _Block) -> dict[str, str]:
    """The first string table of ``StringFileInfo``: name → text up to its NUL."""
    for child in root.children:
        if child.key == "StringFileInfo" and child.children:
            return {s.key: s.value.decode("utf-16-le", "replace").split("\0", 1)[0]
                    for s in child.children[0].children}
    return {}


def parse_version_info(data: bytes) -> VersionInfo | None:
    """The version resource of the PE file ``data``, or None when it has none or the file is
    malformed anywhere on the way to it."""
    try:
        resource = _version_resource(data)
        reader = _Reader(resource)
        root, _ = _block(reader, 0, len(resource), 3)
        if root.key != "VS_VERSION_INFO" or len(root.value) < 52:
            return None
        signature, _, file_ms, file_ls, product_ms, product_ls = struct.unpack_from(
            "<6I", root.value)
    except _Malformed:
        return None
    if signature != FIXED_SIGNATURE:
        return None
    return VersionInfo(_split(file_ms, file_ls), _split(product_ms, product_ls), _strings(root))


def _split(high: int, low: int) -> Version:
    return high >> 16, high & 0xFFFF, low >> 16, low & 0xFFFF


def file_version(data: bytes) -> Version | None:
    """``(major, minor, build, revision)`` from the binary's VS_FIXEDFILEINFO, or None."""
    info = parse_version_info(data)
    return info.file_version if info is not None else None


def read_version_info(target: Target, path: str) -> VersionInfo | None:
    """The version resource of the binary at ``path`` in the target; ``FileNotFoundError``
    when absent, :class:`~vmimage.targets.base.UnreadableError` when over :data:`PE_MAX`."""
    return parse_version_info(target.read_bytes(path, max_size=PE_MAX))
