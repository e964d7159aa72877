"""The Windows registry, read offline from its hive files (``/Windows/System32/config``).

Most Windows checks are registry values: whether Remote Desktop is on, the product and build,
the pagefile (certification-research.md §2). The hives are read through the Target protocol
by parts (:mod:`~vmimage.facts.windows.regf`: a lookup reads the cells on its way, a few
hundred KiB of a 100 MiB ``SOFTWARE``), so an image, an extracted root and a live system read
alike. A hive is untrusted: files over :data:`HIVE_MAX` are refused, every damaged cell
becomes an :class:`UnreadableError` with a short reason, and values are typed here from their
raw bytes so that damaged data gives ``bytes`` or None, never an exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from vmimage.facts.windows.regf import (
    BytesFile,
    HiveError,
    KeyCell,
    RangeFile,
    Regf,
    ValueCell,
    upcase,
)
from vmimage.targets.base import MiB, UnreadableError, too_large

if TYPE_CHECKING:
    from collections.abc import Callable

    from vmimage.targets.base import Target

#: A SOFTWARE hive of a fully patched Server with roles is about 100 MiB; a larger hive file is
#: damaged or hostile, and is refused.
HIVE_MAX = 256 * MiB
#: Subkeys or values listed from one key: real keys have thousands at most (``Classes``).
LIST_MAX = 100_000
#: A value's data read at most: the largest real ones (certificates, policies) are a few MiB.
DATA_MAX = 16 * MiB

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 0, 1, 2, 3, 4
REG_DWORD_BIG_ENDIAN, REG_LINK, REG_MULTI_SZ, REG_QWORD = 5, 6, 7, 11

RegValue = int | str | list[str] | bytes
T = TypeVar("T")


def _utf16(data: bytes) -> str:
    """A UTF-16LE string up to its first NUL (Windows stores most with one, some without)."""
    text = data[: len(data) // 2 * 2].decode("utf-16-le", "replace")
    return text.split("\0", 1)[0]


def decode(kind: int, data: bytes) -> RegValue:
    """A value's data as Python: numbers for DWORD and QWORD, text for the string types, a list
    for MULTI_SZ, and the bytes themselves for everything else and for data too short for its
    type (Windows keeps such values; a check must not trust them as numbers)."""
    if kind == REG_DWORD and len(data) >= 4:
        return int(struct.unpack_from("<I", data)[0])
    if kind == REG_DWORD_BIG_ENDIAN and len(data) >= 4:
        return int(struct.unpack_from(">I", data)[0])
    if kind == REG_QWORD and len(data) >= 8:
        return int(struct.unpack_from("<Q", data)[0])
    if kind in (REG_SZ, REG_EXPAND_SZ, REG_LINK):
        return _utf16(data)
    if kind == REG_MULTI_SZ:
        text = data[: len(data) // 2 * 2].decode("utf-16-le", "replace")
        items = text.split("\0")
        end = items.index("") if "" in items else len(items)  # an empty string ends the list
        return items[:end]
    return data


@dataclass(frozen=True)
class RawValue:
    """One value as stored: its name (``""`` for the default value), type number and data."""

    name: str
    type: int
    data: bytes

    @property
    def value(self) -> RegValue:
        """The data typed by the value's registry type (see :func:`decode`)."""
        return decode(self.type, self.data)


class Key:
    """One registry key of a :class:`Hive`: its subkeys and values, read on demand."""

    def __init__(self, hive: Hive, cell: KeyCell, parent: str | None) -> None:
        self._hive = hive
        self._cell = cell
        #: The key's name as stored (the root's is whatever the hive says).
        self.name = cell.name
        #: The key's path from the hive's root, names as stored, ``""`` for the root.
        self.path = "" if parent is None else f"{parent}\\{self.name}" if parent else self.name

    @property
    def last_written(self) -> int:
        """When the key last changed, as a FILETIME (100-ns ticks since 1601)."""
        return self._cell.last_written

    def _child(self, cell: KeyCell) -> Key:
        return Key(self._hive, cell, self.path)

    def subkey(self, name: str) -> Key | None:
        """The direct subkey called ``name`` (case-insensitive), or None."""
        found = self._hive.call(self._hive.regf.subkey, self._cell, name)
        return self._child(found) if found is not None else None

    def subkeys(self) -> list[Key]:
        """The direct subkeys, in stored order (at most :data:`LIST_MAX`)."""
        cells = self._hive.call(self._hive.regf.subkeys, self._cell, LIST_MAX)
        return [self._child(cell) for cell in cells]

    def raw_values(self) -> list[RawValue]:
        """Every value with its type and raw data, in stored order (at most :data:`LIST_MAX`)."""
        cells = self._hive.call(self._hive.regf.values, self._cell, LIST_MAX)
        return [self._raw(cell) for cell in cells]

    def _raw(self, cell: ValueCell) -> RawValue:
        return RawValue(cell.name, cell.type, self._hive.call(self._hive.regf.data, cell, DATA_MAX))

    def raw_value(self, name: str) -> RawValue | None:
        """The value called ``name`` (case-insensitive; ``""`` is the default value), or None."""
        wanted = upcase(name)
        for cell in self._hive.call(self._hive.regf.values, self._cell, LIST_MAX):
            if upcase(cell.name) == wanted:
                return self._raw(cell)
        return None

    def value(self, name: str) -> RegValue | None:
        """The value called ``name`` typed by its registry type, or None when absent."""
        raw = self.raw_value(name)
        return raw.value if raw is not None else None

    def values(self) -> dict[str, RegValue]:
        """Every value by its stored name, typed (the first of two names that differ in case)."""
        out: dict[str, RegValue] = {}
        for raw in self.raw_values():
            out.setdefault(raw.name, raw.value)
        return out

    def __repr__(self) -> str:
        return f"Key({self._hive.source}:{self.path or '<root>'})"


class _TargetFile:
    """A file of a target read by parts (what :class:`~.regf.Regf` reads through)."""

    def __init__(self, target: Target, path: str) -> None:
        self._target, self._path = target, path

    def read_at(self, offset: int, size: int) -> bytes:
        return self._target.read_at(self._path, offset, size)


class Hive:
    """One hive file, opened read-only from its bytes or from a file read by parts.

    ``source`` names the file in errors (``/Windows/System32/config/SYSTEM``). Opening checks
    the base block (signature, checksum, sizes) and the root key; a failure later, on a damaged
    cell, raises :class:`UnreadableError` from the method that met it.
    """

    def __init__(self, data: bytes | RangeFile, source: str, size: int | None = None) -> None:
        self.source = source
        file = BytesFile(data) if isinstance(data, bytes) else data
        length = len(data) if isinstance(data, bytes) else size
        if length is None:
            raise ValueError("a hive read by parts needs its size")
        self.regf = self.call(Regf, file, length)
        self.root = Key(self, self.regf.root, None)

    @property
    def dirty(self) -> bool:
        """Whether the hive's last write did not finish (Windows would replay its logs)."""
        return self.regf.dirty

    def call(self, action: Callable[..., T], *args: object) -> T:
        """One read of the hive, its failures as :class:`UnreadableError` naming the hive."""
        try:
            return action(*args)
        except HiveError as exc:
            raise UnreadableError(self.source, f"damaged registry hive: {exc}") from None

    def key(self, path: str) -> Key | None:
        """The key at ``path`` below the root (backslash-separated, case-insensitive; ``""``
        is the root), or None when a part of it is missing."""
        key: Key | None = self.root
        for part in (p for p in path.split("\\") if p):
            if key is None:
                return None
            key = key.subkey(part)
        return key

    def value(self, path: str, name: str) -> RegValue | None:
        """The typed value ``name`` of the key at ``path``, or None when either is missing."""
        key = self.key(path)
        return key.value(name) if key is not None else None


def read_hive(target: Target, path: str) -> Hive:
    """The hive file at ``path`` in the target, read by parts (a lookup reads only the cells
    on its way); ``FileNotFoundError`` when it is absent, :class:`UnreadableError` when it is
    not a regular file, too large or damaged."""
    info = target.stat(path)
    if not info.is_file:
        raise UnreadableError(path, "not a regular file")
    if info.size > HIVE_MAX:
        raise too_large(path, info.size, HIVE_MAX)
    return Hive(_TargetFile(target, path), path, info.size)


def current_control_set(system: Hive) -> str:
    """The name of the control set Windows boots with, ``ControlSet00N`` from
    ``Select\\Current`` (offline there is no ``CurrentControlSet`` link). Without a usable
    ``Current`` it is ``Default``'s set, then ``ControlSet001``: what Windows would load."""
    for name in ("Current", "Default"):
        number = system.value("Select", name)
        if isinstance(number, int) and 0 < number < 1000:
            return f"ControlSet{number:03d}"
    return "ControlSet001"
