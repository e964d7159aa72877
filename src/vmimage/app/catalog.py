"""Every rule of every family, registered; and the profiles, validated against them.

This is where the rule modules are imported (so the registry, a lower layer, never imports
them): ``vmimage checks list/show`` and docs/checks.md read :func:`all_rules`, and every use
case loads its profile through :func:`profile`, so a profile that names an unknown rule ID is
refused before anything runs.
"""

from __future__ import annotations

import difflib
from functools import cache

from vmimage.errors import InputError
from vmimage.profiles import PROFILE_NAMES, Profile, load_profile
from vmimage.rules import REGISTRY, RuleMeta, check_profile


@cache
def _register() -> None:
    import vmimage.checks
    import vmimage.offer.rules
    import vmimage.storage.sas_rules  # noqa: F401 - SAS URI rules


def all_rules() -> list[RuleMeta]:
    """Every registered rule of every family, in ID order."""
    _register()
    return sorted(REGISTRY.values(), key=lambda m: m.id)


def find_rule(rule_id: str) -> RuleMeta:
    """The rule with this ID (any family, any case).

    Raises:
        InputError: no such rule (with the closest IDs as a hint).
    """
    _register()
    meta = REGISTRY.get(rule_id.upper())
    if meta is None:
        close = difflib.get_close_matches(rule_id.upper(), list(REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see vmimage checks list)"
        raise InputError(rule_id, f"no such check{hint}")
    return meta


def profile(name: str) -> Profile:
    """A bundled profile, checked against the registry.

    Raises:
        InputError: no such profile, or it names a rule ID no rule has.
    """
    _register()
    return check_profile(load_profile(name))


def profiles() -> dict[str, Profile]:
    """Every bundled profile, validated."""
    return {name: profile(name) for name in PROFILE_NAMES}
