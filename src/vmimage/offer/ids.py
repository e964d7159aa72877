"""Identifier rules: what an offer, plan, SKU or publisher ID may be, and why.

Offer and SKU identifiers appear in public URLs (OFR-URL), so they must be URL-safe; the
Cloud Partner Portal stated the SKU rule as "at most 50 characters, lowercase alphanumeric or
``-``, not ending with ``-``" (research §3.4); Partner Center also allows ``_`` in SKU IDs and
takes plan and offer IDs of 3 to 50 characters (its ``externalId`` pattern) (rulings). Each
function returns the reasons an ID breaks its rule, empty when it holds.
"""

from __future__ import annotations

import re

MAX_ID = 50
#: Partner Center's externalId (product and plan references): 3-50, starts alphanumeric.
EXTERNAL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{2,49}$")
_LOWER_ALNUM = re.compile(r"[a-z0-9]")
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
#: Gallery image versions are three 32-bit integers; Partner Center allows 32 characters.
MAX_VERSION_PART = 2**31 - 1


def _bad_chars(value: str, allowed: str) -> list[str]:
    return sorted({c for c in value if not (c in allowed or _LOWER_ALNUM.fullmatch(c))})


def _chars_problem(value: str, allowed: str) -> list[str]:
    bad = _bad_chars(value, allowed)
    if not bad:
        return []
    shown = " ".join(repr(c) for c in bad[:5])
    what = "lowercase letters, digits" + "".join(f", {c!r}" for c in allowed)
    return [f"holds {shown}: only {what} are allowed"]


def external_id_problems(value: str, what: str) -> list[str]:
    """An offer or plan ID (also a publisher namespace): 3-50, ``[a-z0-9_-]``, alnum first."""
    problems = _chars_problem(value, "-_")
    if not 3 <= len(value) <= MAX_ID:
        problems.append(f"{what} is {len(value)} characters: 3 to {MAX_ID} are allowed")
    if value[:1] in ("-", "_"):
        problems.append(f"{what} must start with a lowercase letter or a digit")
    return problems


def sku_id_problems(value: str, allow_underscore: bool) -> list[str]:
    """A SKU ID: 1-50, lowercase alphanumeric or ``-`` (and ``_`` in Partner Center)."""
    problems = _chars_problem(value, "-_" if allow_underscore else "-")
    if not value:
        problems.append("the SKU ID is empty")
    elif len(value) > MAX_ID:
        problems.append(f"the SKU ID is {len(value)} characters: at most {MAX_ID}")
    if value.endswith("-"):
        problems.append("a SKU ID must not end with '-'")
    if value.startswith(("-", "_")):
        problems.append("a SKU ID must start with a lowercase letter or a digit")
    return problems


def version_problems(value: str) -> list[str]:
    """``X.Y.Z``, three integers without leading zeros, each at most 2^31-1 (PUB-VERSION)."""
    match = VERSION.fullmatch(value)
    if not match:
        return [f"{value!r} is not X.Y.Z of integers (e.g. 1.0.0)"]
    if any(int(p) > MAX_VERSION_PART for p in match.groups()):
        return [f"{value!r}: each number must be at most {MAX_VERSION_PART}"]
    return []


def version_key(value: str) -> tuple[int, int, int] | None:
    """``"1.2.3"`` -> ``(1, 2, 3)``; None when not a valid version."""
    match = VERSION.fullmatch(value)
    if not match:
        return None
    major, minor, patch = (int(p) for p in match.groups())
    return major, minor, patch


def version_order(value: str) -> tuple[int, int, int]:
    """A sort key of versions: by number (``1.10.0`` after ``1.9.0``), one that is not
    X.Y.Z before every valid one."""
    return version_key(value) or (-1, -1, -1)
