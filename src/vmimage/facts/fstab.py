"""``/etc/fstab``: which filesystem is mounted where, and which swap is named."""

from __future__ import annotations

from dataclasses import dataclass


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


def _unescape(field: str) -> str:
    """fstab escapes spaces and tabs as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_fstab(text: str) -> list[FstabEntry]:
    """Parse fstab text; comments and malformed lines (fewer than 3 fields) are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 3:
            continue
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ("defaults",)
        entries.append(FstabEntry(_unescape(fields[0]), _unescape(fields[1]), fields[2],
                                  options, number))
    return entries
