"""What a BitLocker volume says about itself without a key: its FVE metadata, read by pybde
(libbde).

The boot sector's ``-FVE-FS-`` OEM ID only says *that* a volume is BitLocker's; the metadata
says *how*: the cipher, when and on which machine BitLocker was turned on (Windows writes a
description such as ``DESKTOP-X C: 10/8/2021``, which names the drive), and what can unlock it
(TPM, PIN, startup key, recovery password, password). A *clear key* protector means
protection is suspended (``manage-bde -protectors -disable``): the data is still encrypted,
with its key stored in the clear beside it, and Azure still cannot use the volume. That is
what a reviewer needs to turn BitLocker off on the right machine and volume.

The volume is opened read-only and never unlocked: no key, password or recovery password is
given to libbde. Its metadata is whatever anyone wrote: every failure of the binding becomes
data (a None field, or ``readable`` False with one line of reason), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pybde

from vmimage.disk.sources import FileWindow
from vmimage.targets.base import UnreadableError

#: The FVE ``encryption method`` values (libbde ``encryption_methods``), as Windows names them.
ENCRYPTION_METHODS = {
    0x0000: "none",
    0x8000: "AES-CBC 128 with Elephant diffuser",
    0x8001: "AES-CBC 256 with Elephant diffuser",
    0x8002: "AES-CBC 128",
    0x8003: "AES-CBC 256",
    0x8004: "AES-XTS 128",
    0x8005: "AES-XTS 256",
}
#: The key protector types of a volume master key (libbde ``key_protection_types``, and
#: cryptsetup's for the smart card).
PROTECTOR_TYPES = {
    0x0000: "clear key",
    0x0100: "TPM",
    0x0200: "startup key",
    0x0500: "TPM and PIN",
    0x0800: "recovery password",
    0x1000: "smart card",
    0x2000: "password",
}
CLEAR_KEY = "clear key"
#: At most this many protectors are read (Windows allows a handful; the count is the image's).
PROTECTORS_MAX = 32
#: The longest description kept (Windows writes about 40 characters).
DESCRIPTION_MAX = 200
T = TypeVar("T")
_UNREADABLE = "bitlocker: cannot be read: "
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
#: What damaged metadata makes pybde raise, besides OSError.
_ERRORS = (OSError, OverflowError, MemoryError, IndexError, ValueError, TypeError,
           UnicodeError, RecursionError)


@dataclass(frozen=True, slots=True)
class KeyProtector:
    """One way to unlock the volume master key."""

    kind: str  # a PROTECTOR_TYPES value, or "unknown (0x0300)"
    identifier: str | None  # the protector's GUID, as manage-bde -protectors -get lists it


@dataclass(frozen=True, slots=True)
class BitLocker:
    """A BitLocker volume's metadata. ``readable`` False: libbde could not parse it (every
    other field None or empty, ``reason`` says why); a volume with the signature is still
    BitLocker's to Windows."""

    readable: bool
    reason: str | None = None
    encryption: str | None = None  # an ENCRYPTION_METHODS value, or "unknown (0x....)"
    created: datetime | None = None  # UTC
    description: str | None = None  # "DESKTOP-X C: 10/8/2021": machine, drive or label, date
    identifier: str | None = None  # the BitLocker volume GUID
    protectors: tuple[KeyProtector, ...] = ()
    #: Whether the data needs a key to read. False with a clear key (suspended) or when
    #: decrypted; None when unknown.
    locked: bool | None = None

    @property
    def suspended(self) -> bool:
        """Protection suspended: a clear key unlocks the volume, which stays encrypted."""
        return any(p.kind == CLEAR_KEY for p in self.protectors)

    def summary(self) -> str:
        """One line for a finding's evidence, e.g. ``BitLocker, AES-XTS 128, protectors:
        TPM, recovery password; created 2024-01-01 10:00 UTC; "DESKTOP-X C: 1/1/2024"``."""
        if not self.readable:
            return f"BitLocker metadata unreadable ({self.reason})"
        kinds = ", ".join(p.kind for p in self.protectors) or "none"
        parts = [f"BitLocker, {self.encryption or 'unknown encryption'}, protectors: {kinds}"]
        if self.suspended:
            parts.append("protection SUSPENDED (clear key): still encrypted, and Azure "
                         "cannot use it")
        elif self.encryption == "none":
            parts = [f"BitLocker metadata without encryption (decrypted), protectors: {kinds}; "
                     "the volume is still in BitLocker's format"]
        if self.created is not None:
            parts.append(f"created {self.created:%Y-%m-%d %H:%M} UTC")
        if self.description:
            parts.append(f'"{self.description}"')
        if self.identifier:
            parts.append(f"volume ID {self.identifier}")
        return "; ".join(parts)


def read_bitlocker(window: FileWindow, path: str = "/") -> BitLocker:
    """The metadata of the BitLocker volume in ``window``, read without a key; damaged or
    foreign metadata gives ``readable`` False and the reason, not an exception."""
    try:
        volume = open_bitlocker(window, path)
    except UnreadableError as exc:
        return BitLocker(readable=False, reason=exc.problem.removeprefix(_UNREADABLE))
    try:
        return BitLocker(
            readable=True,
            encryption=_get(lambda: _name(ENCRYPTION_METHODS, volume.get_encryption_method())),
            created=_get(lambda: _filetime(volume.get_creation_time_as_integer())),
            description=_get(lambda: _text(volume.get_description(), DESCRIPTION_MAX)),
            identifier=_get(lambda: _text(volume.get_volume_identifier(), 64)),
            protectors=_protectors(volume),
            locked=_get(lambda: bool(volume.is_locked())),
        )
    finally:
        with contextlib.suppress(*_ERRORS):
            volume.close()


def open_bitlocker(window: FileWindow, path: str = "/") -> pybde.volume:
    """libbde's volume over ``window``, opened read-only without a key; unreadable
    metadata is an :class:`UnreadableError` whose reason is libbde's own, one line."""
    volume = pybde.volume()
    try:
        volume.open_file_object(window)
    except _ERRORS as exc:
        raise UnreadableError(path, f"{_UNREADABLE}{_reason(exc)}",
                              errno.EIO) from None
    return volume


def _get(read: Callable[[], T]) -> T | None:
    """One field: None when libbde cannot read it."""
    try:
        return read()
    except _ERRORS:
        return None


def _protectors(volume: pybde.volume) -> tuple[KeyProtector, ...]:
    count = _get(volume.get_number_of_key_protectors) or 0
    found = []
    for index in range(min(max(count, 0), PROTECTORS_MAX)):
        try:
            protector = volume.get_key_protector(index)
        except _ERRORS:
            continue
        found.append(_protector(protector))
    return tuple(found)


def _protector(protector: pybde.key_protector) -> KeyProtector:
    kind = _get(lambda: _name(PROTECTOR_TYPES, protector.get_type()))
    return KeyProtector(kind=kind or "unknown",
                        identifier=_get(lambda: _text(protector.get_identifier(), 64)))


def _name(names: dict[int, str], value: int) -> str:
    return names.get(value, f"unknown (0x{value:04x})")


def _filetime(ticks: int) -> datetime | None:
    """FILETIME (100-ns ticks since 1601) as a UTC datetime; None for 0 or out of range."""
    if ticks <= 0:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def _text(value: str | None, limit: int) -> str | None:
    """A string from the metadata, cut to ``limit`` (formatters escape what they show)."""
    if not value:
        return None
    return value.replace("\0", "").strip()[:limit] or None


def _reason(exc: BaseException) -> str:
    """libbde's error in one line: the sentence naming the problem (the first only says which
    call failed), without the C function's name."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    sentences = [s.strip().rstrip(".") for s in text.split(". ") if s.strip()]
    if not sentences:
        return type(exc).__name__
    chosen = sentences[1] if len(sentences) > 1 else sentences[0]
    return chosen.split(": ", 1)[-1][:200]
