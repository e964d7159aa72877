"""The Windows registry, read offline from its hive files (``/Windows/System32/config``).

Most Windows checks are registry values: whether Remote Desktop is on, the product and build,
the pagefile (certification-research.md §2). The hives are read through libregf
(``pyregf``) from bytes read through the Target protocol, so an image, an extracted root and
a live system read alike. A hive is untrusted: it is read up to :data:`HIVE_MAX` bytes, every
libregf failure becomes an :class:`UnreadableError` with libregf's own short reason, and values
are typed here from their raw bytes so that damaged data gives ``bytes`` or None, never an
exception.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pyregf

from vmimage.targets.base import MiB, UnreadableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vmimage.targets.base import Target

#: A SOFTWARE hive of a fully patched Server with roles is about 100 MiB; a larger hive file is
#: damaged or hostile, and is refused rather than read into memory.
HIVE_MAX = 256 * MiB
#: Subkeys or values listed from one key: real keys have thousands at most (``Classes``).
LIST_MAX = 100_000

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 0, 1, 2, 3, 4
REG_DWORD_BIG_ENDIAN, REG_LINK, REG_MULTI_SZ, REG_QWORD = 5, 6, 7, 11

RegValue = int | str | list[str] | bytes
T = TypeVar("T")


def _reason(exc: BaseException) -> str:
    """libregf's innermost useful clause (``mismatch in file header checksum ...``), short."""
    clauses = [c.strip() for c in str(exc).split(". ") if c.strip()]
    inner = clauses[1] if len(clauses) > 1 else (clauses[0] if clauses else type(exc).__name__)
    text = inner.split(": ", 1)[-1] if inner.startswith("libregf_") else inner
    return text.splitlines()[0][:160] if text else type(exc).__name__


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

    def __init__(self, hive: Hive, key: pyregf.key, parent: str | None) -> None:
        self._hive = hive
        self._key = key
        #: The key's name as stored (the root's is whatever the hive says).
        self.name = hive.call(key.get_name) or ""
        #: The key's path from the hive's root, names as stored, ``""`` for the root.
        self.path = "" if parent is None else f"{parent}\\{self.name}" if parent else self.name

    def _child(self, key: pyregf.key) -> Key:
        return Key(self._hive, key, self.path)

    def subkey(self, name: str) -> Key | None:
        """The direct subkey called ``name`` (case-insensitive), or None."""
        found = self._hive.call(self._key.get_sub_key_by_name, name)
        return self._child(found) if found is not None else None

    def subkeys(self) -> list[Key]:
        """The direct subkeys, in stored order (at most :data:`LIST_MAX`)."""
        count = min(self._hive.call(self._key.get_number_of_sub_keys), LIST_MAX)
        return [self._child(self._hive.call(self._key.get_sub_key, i)) for i in range(count)]

    def raw_values(self) -> list[RawValue]:
        """Every value with its type and raw data, in stored order (at most :data:`LIST_MAX`)."""
        count = min(self._hive.call(self._key.get_number_of_values), LIST_MAX)
        return [self._raw(self._hive.call(self._key.get_value, i)) for i in range(count)]

    def _raw(self, value: pyregf.value) -> RawValue:
        call = self._hive.call
        data = call(value.get_data) or b""
        if 0 < len(data) < 4:
            data = self._hive.inline_data(call(value.get_offset), len(data))
        return RawValue(call(value.get_name) or "", call(value.get_type), data)

    def raw_value(self, name: str) -> RawValue | None:
        """The value called ``name`` (case-insensitive; ``""`` is the default value), or None."""
        found = self._hive.call(self._key.get_value_by_name, name)
        return self._raw(found) if found is not None else None

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


class Hive:
    """One hive file, opened read-only from its bytes.

    ``source`` names the file in errors (``/Windows/System32/config/SYSTEM``). Opening checks
    the base block (signature, checksum) and the root key; a failure later, on a damaged cell,
    raises :class:`UnreadableError` from the method that met it.
    """

    def __init__(self, data: bytes, source: str) -> None:
        self.source = source
        self._data = data
        self._file = pyregf.file()
        self.call(self._file.open_file_object, io.BytesIO(data))
        root = self.call(self._file.get_root_key)
        if root is None:
            raise UnreadableError(source, "not a registry hive: it has no root key")
        self.root = Key(self, root, None)

    def call(self, action: Callable[..., T], *args: object) -> T:
        """One libregf call, its failures as :class:`UnreadableError` naming the hive."""
        try:
            return action(*args)
        except (OSError, ValueError, TypeError, OverflowError, MemoryError) as exc:
            raise UnreadableError(self.source, f"damaged registry hive: {_reason(exc)}") from None

    def inline_data(self, offset: int, size: int) -> bytes:
        """The data of 1 to 3 bytes that a value cell holds in its data-offset field: libregf
        (20260526) returns the field's last bytes, Windows and hivex use its first. ``offset``
        is the file offset of the cell's ``vk`` signature."""
        field = self._data[offset + 8:offset + 12] if offset >= 0 else b""
        if self._data[offset:offset + 2] != b"vk" or len(field) < 4:
            raise UnreadableError(self.source, "damaged registry hive: a value cell is misplaced")
        return field[:size]

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
    """The hive file at ``path`` in the target; ``FileNotFoundError`` when it is absent,
    :class:`UnreadableError` when it is too large or damaged."""
    return Hive(target.read_bytes(path, max_size=HIVE_MAX), path)


def current_control_set(system: Hive) -> str:
    """The name of the control set Windows boots with, ``ControlSet00N`` from
    ``Select\\Current`` (offline there is no ``CurrentControlSet`` link). Without a usable
    ``Current`` it is ``Default``'s set, then ``ControlSet001``: what Windows would load."""
    for name in ("Current", "Default"):
        number = system.value("Select", name)
        if isinstance(number, int) and 0 < number < 1000:
            return f"ControlSet{number:03d}"
    return "ControlSet001"
