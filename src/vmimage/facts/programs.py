"""Which programs an image has: the first of some alternative paths that exists.

A network stack needs ``ifup`` or ``nmcli``, the agent needs ``eject`` and ``useradd``; where
they live differs by distribution and by whether ``/usr`` is merged, so each is looked up as a
group of alternative paths.
"""

from __future__ import annotations

from vmimage.targets.base import Target


def first_existing(target: Target, *paths: str) -> str | None:
    """The first of ``paths`` that exists on the target (links followed), or None."""
    return next((p for p in paths if target.exists(p)), None)


def find_tools(target: Target, *groups: tuple[str, ...]) -> tuple[tuple[str, ...],
                                                                   tuple[str, ...]]:
    """(found, missing): for each group of alternatives, the first that exists, or the first
    name when none does."""
    found: list[str] = []
    missing: list[str] = []
    for group in groups:
        path = first_existing(target, *group)
        if path is None:
            missing.append(group[0])
        else:
            found.append(path)
    return tuple(found), tuple(missing)
