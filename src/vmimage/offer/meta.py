"""Offer rules as data: an ID, a title, the requirements it covers, and how to fix it.

Offer rules judge a manifest, not a target, so they have their own small table rather than the
check registry (which selects by OS and target capability); they produce the same
:class:`~vmimage.findings.Finding` objects, so every report format renders them, and a
profile's ``[severity]`` table overrides their default severity by rule ID as it does a check's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmimage.findings import Evidence, Finding, Severity, Status
from vmimage.profiles import Profile

if TYPE_CHECKING:
    from vmimage.offer.rules.context import OfferContext


@dataclass(frozen=True, slots=True)
class Problem:
    """One violation a rule found (or, with ``skip``, why it could not decide)."""

    message: str
    evidence: tuple[Evidence, ...] = ()
    severity: Severity | None = None  # pins the level; None: the profile or the rule decides
    skip: bool = False


RuleFn = Callable[["OfferContext"], Iterable[Problem]]


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What a report needs to know about an offer rule."""

    id: str
    title: str
    severity: Severity
    covers: tuple[str, ...]
    remediation: str
    fn: RuleFn | None = None


RULES: dict[str, RuleMeta] = {}


def rule(*, id: str, title: str, covers: Iterable[str], remediation: str,
         severity: Severity = Severity.FAIL) -> Callable[[RuleFn], RuleFn]:
    """Register ``fn`` as the offer rule ``id`` (IDs start with ``OFFER-``).

    Raises:
        ValueError: a duplicate or malformed ID, or no requirement covered.
    """
    if not id.startswith("OFFER-") or id in RULES or not tuple(covers):
        raise ValueError(f"offer rule {id!r}: malformed, duplicate, or covering nothing")

    def register(fn: RuleFn) -> RuleFn:
        RULES[id] = RuleMeta(id, title, severity, tuple(covers), remediation, fn)
        return fn

    return register


#: Not a function: the loader reports what makes a manifest unreadable under this ID.
MANIFEST = RuleMeta(
    id="OFFER-MANIFEST",
    title="The manifest is well-formed: known keys, right types, files that exist",
    severity=Severity.FAIL,
    covers=("OFR-PARENT",),
    remediation="Fix the key at the line shown; docs/offer.md lists every key.",
)
RULES[MANIFEST.id] = MANIFEST


def to_finding(meta: RuleMeta, problem: Problem, profile: Profile | None) -> Finding:
    """A violation (or skip) as a finding, at the severity the profile gives the rule."""
    if problem.skip:
        status = Status.SKIP
    else:
        level = problem.severity
        if level is None:
            level = profile.severity.get(meta.id, meta.severity) if profile else meta.severity
        status = Status.FAIL if level is Severity.FAIL else Status.WARNING
    return Finding(meta.id, meta.title, status, problem.message, meta.covers,
                   meta.remediation, problem.evidence)


def passed_finding(meta: RuleMeta) -> Finding:
    """The rule holds for the whole manifest."""
    return Finding(meta.id, meta.title, Status.PASS, meta.title, meta.covers, meta.remediation)
