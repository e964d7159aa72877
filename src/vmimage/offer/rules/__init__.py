"""Validate a loaded manifest: every offer rule, each finding naming its requirement IDs.

``vmimage offer validate`` is :func:`validate_offer` plus printing. Rules live in small
modules by subject and register themselves with :func:`vmimage.offer.meta.rule` on import.
"""

from __future__ import annotations

from vmimage.findings import Finding
from vmimage.offer.manifest import LoadedManifest
from vmimage.offer.meta import RULES, Problem, passed_finding, to_finding
from vmimage.offer.probe import probe_disk
from vmimage.offer.rules import identity, images, local, versions
from vmimage.offer.rules.context import OfferContext, ProbeFn
from vmimage.profiles import Profile

__all__ = ["OfferContext", "rule_modules", "validate_offer"]

rule_modules = (identity, versions, images, local)


def validate_offer(loaded: LoadedManifest, profile: Profile,
                   previous: LoadedManifest | None = None,
                   probe: ProbeFn | None = probe_disk) -> list[Finding]:
    """Every finding on the manifest: its shape first; the rules when it could be read.

    ``previous`` is what was published before (its own shape problems are reported and the
    comparison is skipped). ``probe=None`` leaves local disk files unopened (those rules skip).
    """
    findings = list(loaded.findings)
    if previous is not None and not previous.ok:
        findings += previous.findings
        previous = None
    if not loaded.ok:
        return findings
    ctx = OfferContext(loaded, profile, previous, probe)
    for meta in RULES.values():
        if meta.fn is None:
            continue
        problems: list[Problem] = list(meta.fn(ctx))
        if problems:
            findings += [to_finding(meta, p, profile) for p in problems]
        else:
            findings.append(passed_finding(meta))
    if not loaded.findings:
        findings.insert(0, passed_finding(RULES["OFFER-MANIFEST"]))
    return findings
