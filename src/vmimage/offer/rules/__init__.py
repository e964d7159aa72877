"""Validate a loaded manifest: every offer rule, one finding each, naming its requirement IDs.

The offer family only builds its context and runs the manifest rules of the one registry
(:mod:`vmimage.rules`); rules live in small modules by subject and register on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmimage.findings import Finding
from vmimage.offer.probe import probe_disk
from vmimage.offer.rules import identity, images, local, shape, versions
from vmimage.offer.rules.context import OfferContext, ProbeFn
from vmimage.profiles import Profile
from vmimage.rules import Subject, rules_for, run_rules

if TYPE_CHECKING:
    from vmimage.offer.manifest import LoadedManifest

__all__ = ["OfferContext", "rule_modules", "validate_offer"]

rule_modules = (shape, identity, versions, images, local)


def validate_offer(loaded: LoadedManifest, profile: Profile,
                   previous: LoadedManifest | None = None,
                   probe: ProbeFn | None = probe_disk) -> list[Finding]:
    """One finding per manifest rule.

    ``previous`` is what was published before (its own shape problems fail OFFER-MANIFEST and
    the comparison is skipped). ``probe=None`` leaves local disk files unopened (those rules
    skip). On a manifest that could not be read every other rule is skipped, not passed.
    """
    ctx = OfferContext(loaded, profile, previous, probe)
    return run_rules(rules_for(Subject.MANIFEST), ctx)
