"""``/etc/fstab`` read as util-linux's libmount reads it: what is mounted where, which swap.

It lives with the targets because mounting does: the image target reads the root's fstab to
know what to put at ``/boot`` or ``/boot/efi`` before any fact is read, and the facts read the
same entries. An fstab is image content, so anything may be in it: every line becomes an entry
or is skipped, and nothing here raises.

libmount ignores a line holding a NUL byte (the last line, when no newline ends it, stops at
the NUL instead), drops a final carriage return, takes a line whose first non-blank character
is ``#`` as a comment, splits it at spaces and tabs, needs a
source, a target and a type, and ignores the line when the dump or pass field is not a number.
In each field it decodes a backslash followed by exactly three octal digits into one byte
(``\\040`` is a space, ``\\303\\251`` the UTF-8 of ``é``); any other backslash stays as it
is, so ``\\089`` and ``\\0`` are literal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANKS = re.compile(r"[ \t]+")
_NUMBER = re.compile(r"[\n\v\f\r]*[+-]?[0-9]+")  # what strtol takes, up to a separator
_OCTAL = re.compile(rb"\\([0-7]{3})")
_DEFAULT_OPTIONS = ("defaults",)


@dataclass(frozen=True, slots=True)
class FstabEntry:
    """One fstab line, with its line number for evidence."""

    spec: str  # UUID=..., LABEL=..., /dev/..., PARTUUID=..., a file for swap files
    file: str  # the mount point, or "none"/"swap" for swap
    vfstype: str
    options: tuple[str, ...]
    line: int

    @property
    def is_swap(self) -> bool:
        """A swap entry (partition or file)."""
        return self.vfstype == "swap"


def unmangle(field: str) -> str:
    """A field with libmount's octal escapes decoded.

    The escapes stand for bytes, so they are decoded as bytes and the result read as UTF-8
    (undecodable bytes replaced); a value above 0o377 keeps its low byte, as C's ``char`` does,
    and ``\\000`` ends the field, as a NUL ends a C string.
    """
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogatepass")
    decoded = _OCTAL.sub(lambda m: bytes((int(m.group(1), 8) & 0xFF,)), raw)
    return decoded.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_fstab(text: str) -> list[FstabEntry]:
    """Every entry of fstab text, numbered by line; comments and blank lines are skipped, and
    so are the lines libmount ignores with a parse error (fewer than 3 fields, a dump or pass
    field that is not a number)."""
    entries = []
    lines = text.split("\n")
    for number, raw in enumerate(lines, start=1):
        if "\0" in raw:
            if number < len(lines):
                continue  # libmount finds no newline before the NUL: a parse error
            raw = raw.split("\0", 1)[0]
        line = raw.removesuffix("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        fields = _BLANKS.split(line)
        if len(fields) < 3 or not all(_NUMBER.fullmatch(f) for f in fields[4:6]):
            continue
        options = unmangle(fields[3]) if len(fields) > 3 else ""
        options_tuple = tuple(options.split(",")) if options else _DEFAULT_OPTIONS
        entries.append(FstabEntry(unmangle(fields[0]), unmangle(fields[1]),
                                  unmangle(fields[2]), options_tuple, number))
    return entries
