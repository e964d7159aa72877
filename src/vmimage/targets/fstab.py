"""``/etc/fstab`` read as util-linux's libmount reads it: what is mounted where, which swap.

It lives with the targets because mounting does: the image target reads the root's fstab to
know what to put at ``/boot`` or ``/boot/efi`` before any fact is read, and the facts read the
same entries. An fstab is image content, so anything may be in it: every line becomes an entry
or is skipped, and nothing here raises.

libmount splits a line at spaces and tabs, takes a line whose first non-blank character is
``#`` as a comment, needs at least a source, a target and a type, and decodes in each field a
backslash followed by exactly three octal digits into one byte (``\\040`` is a space,
``\\303\\251`` the UTF-8 of ``é``). Any other backslash is kept as it is: ``\\089`` and
``\\0`` stay literal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANKS = re.compile(r"[ \t]+")
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
    (undecodable bytes replaced); a value above 0o377 keeps its low byte, as C's ``char`` does.
    """
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogatepass")
    decoded = _OCTAL.sub(lambda m: bytes((int(m.group(1), 8) & 0xFF,)), raw)
    return decoded.decode("utf-8", "replace")


def parse_fstab(text: str) -> list[FstabEntry]:
    """Every entry of fstab text; comments, blank lines and lines of fewer than 3 fields are
    skipped (libmount ignores them with a parse error)."""
    entries = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        fields = _BLANKS.split(line)
        if len(fields) < 3:
            continue
        options = (tuple(unmangle(fields[3]).split(",")) if len(fields) > 3
                   else _DEFAULT_OPTIONS)
        entries.append(FstabEntry(unmangle(fields[0]), unmangle(fields[1]),
                                  unmangle(fields[2]), options, number))
    return entries
