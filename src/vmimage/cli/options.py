"""Argument conversions shared by several commands."""

from __future__ import annotations

from vmimage.errors import InputError
from vmimage.units import parse_size

URL_ARG_HELP = ("blob URL (a SAS may ride in its query), or @FILE to read it from a file, which "
                "keeps a SAS out of the process list")


def size_option(text: str, option: str = "--size") -> int:
    """Parse a size argument or fail with the option's name."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InputError(option, str(exc)) from None
