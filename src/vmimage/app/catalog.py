"""Every rule of every family, registered; and the profiles, validated against them.

This is where the rule modules are imported (so the registry, a lower layer, never imports
them): ``vmimage checks list/show`` and docs/checks.md read :func:`all_rules`, and every use
case loads its profile through :func:`profile`, so a profile that names an unknown rule ID is
refused before anything runs.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable

from vmimage.errors import InputError
from vmimage.profiles import PROFILE_NAMES, Profile, load_profile
from vmimage.rules import REGISTRY, RuleMeta, Subject, check_profile

#: The package whose import registers each subject's rules. A use case loads only the families
#: it runs, so ``vmimage check`` never imports the offer or SAS rules (nor what they import).
FAMILIES = {
    Subject.DISK: "vmimage.checks",
    Subject.SYSTEM: "vmimage.checks",
    Subject.MANIFEST: "vmimage.offer.rules",
    Subject.SAS_URI: "vmimage.storage.sas_rules",
}


def _register(subjects: Iterable[Subject] = tuple(Subject)) -> None:
    for module in sorted({FAMILIES[s] for s in subjects}):
        importlib.import_module(module)


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


def profile(name: str | Profile, subjects: Iterable[Subject] = tuple(Subject)) -> Profile:
    """A bundled profile, a custom profile file (``extends`` one), or a profile already loaded,
    checked against the registry.

    Only the families of ``subjects`` are loaded first; if the profile names an ID none of them
    has, every family is loaded before it is judged, so the check stays complete (an unknown
    ID is always refused) while a use case pays only for the rules it runs.

    Raises:
        InputError: no such profile, or it names a rule ID no rule has.
    """
    _register(subjects)
    loaded = name if isinstance(name, Profile) else load_profile(name)
    if (set(loaded.severity) | set(loaded.disabled)) - REGISTRY.keys():
        _register()
    return check_profile(loaded)


def profiles() -> dict[str, Profile]:
    """Every bundled profile, validated."""
    return {name: profile(name) for name in PROFILE_NAMES}


def describe_rule(rule_id: str) -> dict[str, object]:
    """Everything about one rule (``vmimage checks show``, the portal's rule page): its
    metadata, source, rationale, severity under each profile, the requirements it covers
    and the ``vmimage generalize`` operations that fix it.

    Raises:
        InputError: no such rule.
    """
    from vmimage.app.generalize import fixed_by
    from vmimage.report.catalog import check_dict

    meta = find_rule(rule_id)
    return check_dict(meta, detail=True, profiles=profiles(), fixed_by=fixed_by(meta.id))
