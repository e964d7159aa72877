"""Size arguments and their display.

Azure's "GB" is GiB (rulings: sizes are binary), so every unit here is a power of 1024:
``G``, ``GB`` and ``GiB`` all mean 2**30. A bare number is bytes.

Only ASCII digits count: Python's ``\\d`` and ``int()`` also take Arabic-Indic, Devanagari or
full-width digits, so ``٣GiB`` would silently be 3 GiB, a size nobody can read back from the
command line that set it. Numbers are at most 30 digits, far above any disk, and far below
the 4,300 digits at which ``int()`` raises its own ValueError.
"""

from __future__ import annotations

import re

from vmimage.errors import InputError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1024 * TiB}
_SIZE_RE = re.compile(r"^\s*([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([KMGTP]?)(?:I?B)?\s*$",
                      re.IGNORECASE | re.ASCII)


class SizeError(InputError, ValueError):
    """A text that is not a size. An InputError for the CLI (one line, exit 2) and a ValueError
    for pydantic validators, which turn only ValueErrors into manifest problems; it reads as
    the problem alone, since each caller names the input itself."""

    def __init__(self, problem: str) -> None:
        super().__init__("size", problem)

    def __str__(self) -> str:
        return self.problem


def parse_size(text: str) -> int:
    """Parse ``32GiB``, ``32G``, ``30720M`` or ``1073741824`` into bytes.

    Raises:
        SizeError: (a ValueError) the text is not a size, or not a whole number of bytes.
    """
    match = _SIZE_RE.match(text)
    if not match:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise SizeError(f"not a size: {shown!r} (examples: 30GiB, 512M, 1073741824)")
    number, unit = str(match.group(1)), str(match.group(2))
    factor = _UNITS[unit.upper()]
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        if (int(frac) * factor) % scale:
            raise SizeError(f"not a whole number of bytes: {text!r}")
        return int(whole) * factor + (int(frac) * factor) // scale
    return int(number) * factor


def format_size(n: int) -> str:
    """Show a byte count the way Azure's rules state sizes: exact binary units where possible."""
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            if n % factor == 0:
                return f"{n // factor} {unit}"
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"
