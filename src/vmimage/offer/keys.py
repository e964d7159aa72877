"""Where a value sits in a manifest: a key path and its dotted name.

A leaf of the offer package with no heavy import, so the offer rules register (and ``vmimage
check`` starts) without loading the manifest model or the YAML reader.
"""

from __future__ import annotations

from typing import Any

#: ``("skus", 0, "versions", 1, "version")``: mapping keys and list indexes from the top.
Key = tuple[str | int, ...]


def dotted(key: tuple[Any, ...]) -> str:
    """``("skus", 0, "id")`` -> ``skus[0].id``, the way the docs name a key."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
