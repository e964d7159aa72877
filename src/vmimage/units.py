"""Size arguments and their display.

Azure's "GB" is GiB (rulings: sizes are binary), so every unit here is a power of 1024:
``G``, ``GB`` and ``GiB`` all mean 2**30. A bare number is bytes.
"""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1024 * TiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse ``32GiB``, ``32G``, ``30720M`` or ``1073741824`` into bytes.

    Raises:
        ValueError: the text is not a size, or is not a whole number of bytes.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 30GiB, 512M, 1073741824)")
    number, unit = str(match.group(1)), str(match.group(2))
    factor = _UNITS[unit.upper()]
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        if (int(frac) * factor) % scale:
            raise ValueError(f"not a whole number of bytes: {text!r}")
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
