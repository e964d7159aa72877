"""What the Windows rules share: the hives, read once per target, and how evidence names them."""

from __future__ import annotations

from contextlib import suppress
from weakref import WeakKeyDictionary

from vmimage.checks.context import CheckContext
from vmimage.errors import InputError
from vmimage.facts.windows.registry import Hive
from vmimage.facts.windows.system import SOFTWARE_HIVE, SYSTEM_HIVE, read_system_hives
from vmimage.targets.base import Target

_HIVES: WeakKeyDictionary[Target, tuple[Hive, Hive]] = WeakKeyDictionary()

#: Paths as evidence shows them (the volume is ``/``, read case-insensitively).
SYSTEM_PATH, SOFTWARE_PATH = SYSTEM_HIVE, SOFTWARE_HIVE


def hives(ctx: CheckContext) -> tuple[Hive, Hive]:
    """The SYSTEM and SOFTWARE hives of the target, read once per target.

    Raises:
        InputError: a hive is absent, damaged or too large (``UnreadableError``); the engine
            skips the rule with that reason.
    """
    assert ctx.target is not None
    target = ctx.target
    try:
        return _HIVES[target]
    except (KeyError, TypeError):
        pass
    try:
        pair = read_system_hives(target)
    except FileNotFoundError as exc:
        raise InputError(exc.filename or SYSTEM_HIVE, "absent: the registry hives of the "
                                                      "Windows volume cannot be read") from None
    with suppress(TypeError):  # a target that cannot be weakly referenced is read each time
        _HIVES[target] = pair
    return pair


def software_hive(ctx: CheckContext) -> Hive:
    """The SOFTWARE hive."""
    return hives(ctx)[1]


def system_hive(ctx: CheckContext) -> Hive:
    """The SYSTEM hive."""
    return hives(ctx)[0]


def decode_text(data: bytes) -> str:
    """A Windows text file: UTF-16 with a BOM (or NULs every other byte), UTF-8 with or
    without a BOM, else ANSI (cp1252), never failing."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if len(data) >= 4 and data[1] == 0 and data[3] == 0:
        return data.decode("utf-16-le", "replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")
