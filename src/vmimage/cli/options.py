"""Argument types shared by several commands."""

from __future__ import annotations

from vmimage.errors import InputError
from vmimage.profiles import DEFAULT_PROFILE, PROFILE_NAMES
from vmimage.units import parse_size

URL_ARG_HELP = ("Blob URL (a SAS may ride in its query), or @FILE to read it from a file, which "
                "keeps a SAS out of the process list.")
PROFILE_HELP = f"Policy profile: {' or '.join(PROFILE_NAMES)}."
DEFAULT = DEFAULT_PROFILE


def size_option(text: str, option: str = "--size") -> int:
    """Parse a size argument or fail with the option's name."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InputError(option, str(exc)) from None


def choice(option: str, what: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``; otherwise the one-line error every option gives."""
    if value not in allowed:
        raise InputError(option, f"unknown {what} {value!r} (choose {', '.join(allowed)})")
    return value


def profile_option(name: str) -> str:
    """The profile's name when it is a bundled one (one-line error otherwise); the use case
    loads it and validates it against the rules it runs."""
    return choice("--profile", "profile", name, PROFILE_NAMES)
