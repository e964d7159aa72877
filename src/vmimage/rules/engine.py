"""Run rules on a context and turn their outcomes into findings, the same way for every family.

The engine is where a profile meets a rule: a disabled rule is reported as skipped with the
profile's reason, a violated outcome becomes ``fail`` or ``warning`` at the profile's severity
for the rule (unless the rule pinned one), and a rule the target cannot serve (a missing
capability) or that cannot read what it needs (a :class:`~vmimage.errors.VmimageError`) is
skipped with the reason, never passed silently.

One rule gives one finding per target, carrying every piece of evidence: a rule that found the
same problem on 256 partitions is one failed rule, not 256.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from vmimage.errors import VmimageError
from vmimage.findings import Evidence, Finding, Outcome, Severity, Status
from vmimage.log import debugging, get
from vmimage.profiles import Profile
from vmimage.rules.registry import RuleMeta

#: Why a rule is skipped when the target lacks a capability it needs.
CAPABILITY_MISSING = {
    "disk": "needs a disk image file; this target is not one",
    "filesystem": "needs the image's filesystem; this target has none",
    "live": "needs a running VM (ssh:// or winrm://); this target is offline",
    "network": "needs the network (not tried: --offline)",
    "local-disks": "needs the local disk files (not opened)",
    "at-rest": "judges the image as captured; a running VM has made its own at first boot "
               "(checked offline)",
}
#: Satisfied by every target that is not ``live``: the system as it was captured, not running.
AT_REST = "at-rest"
_log = get("rules")
#: At most this many messages are joined into one finding's message; the evidence keeps all.
MAX_MESSAGES = 8


class RuleContext(Protocol):
    """What the engine needs of any family's context."""

    @property
    def profile(self) -> Profile:
        """The policy the rules are judged by."""

    @property
    def capabilities(self) -> frozenset[str]:
        """What the target can serve: ``disk``, ``filesystem``, ``live``, ``network``..."""


def effective_severity(meta: RuleMeta, profile: Profile) -> Severity:
    """The profile's severity for the rule wins over the decorator's default."""
    return profile.severity.get(meta.id, meta.severity)


def _outcomes(meta: RuleMeta, ctx: RuleContext) -> list[Outcome]:
    served = ctx.capabilities if "live" in ctx.capabilities else ctx.capabilities | {AT_REST}
    missing = sorted(meta.needs - served)
    if missing:
        return [Outcome(Status.SKIP, CAPABILITY_MISSING[missing[0]])]
    try:
        result = meta.fn(ctx)
        # Generator rules run while being listed: keep that inside the try.
        return [result] if isinstance(result, Outcome) else list(result)
    except VmimageError as exc:
        # A rule that cannot read what it needs says so instead of crashing the run.
        return [Outcome(Status.SKIP, f"cannot decide: {exc}")]


def _status(outcome: Outcome, default: Severity) -> Status:
    if outcome.status is not None:
        return outcome.status
    level = outcome.severity or default
    return Status.FAIL if level is Severity.FAIL else Status.WARNING


def _join(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) <= MAX_MESSAGES:
        return "; ".join(unique)
    return "; ".join(unique[:MAX_MESSAGES]) + f" (and {len(unique) - MAX_MESSAGES} more)"


def merge(meta: RuleMeta, outcomes: list[Outcome], default: Severity) -> Finding:
    """One finding from every outcome of one rule on one target.

    The worst status wins (fail, warning, skip, pass: a rule that examined part of what it
    must and skipped the rest has not passed); the message names what decided that status;
    the evidence is all of it.
    """
    if not outcomes:  # a rule that yields no violation holds
        return Finding(meta.id, meta.title, Status.PASS, meta.title, meta.covers, "", (),
                       default)
    statuses = [_status(o, default) for o in outcomes]
    for worst in (Status.FAIL, Status.WARNING, Status.SKIP, Status.PASS):
        if worst in statuses:
            break
    if worst in (Status.FAIL, Status.WARNING):
        # Warnings stay in the message of a failed rule: they are part of what was found.
        deciding = [o.message for o, s in zip(outcomes, statuses, strict=True)
                    if s in (Status.FAIL, Status.WARNING)]
    else:
        deciding = [o.message for o, s in zip(outcomes, statuses, strict=True) if s is worst]
    evidence: list[Evidence] = []
    for o in outcomes:
        evidence.extend(e for e in o.evidence if e not in evidence)
    return Finding(meta.id, meta.title, worst, _join(deciding), meta.covers,
                   meta.remediation if worst is not Status.PASS else "", tuple(evidence), default)


def run_rule(meta: RuleMeta, ctx: RuleContext) -> Finding:
    """Run one rule and attach its metadata and the profile's severity."""
    profile = ctx.profile
    default = effective_severity(meta, profile)
    if meta.id in profile.disabled:
        return Finding(meta.id, meta.title, Status.SKIP,
                       f"disabled in profile {profile.name}: {profile.disabled[meta.id]}",
                       meta.covers, meta.remediation, (), default)
    return merge(meta, _outcomes(meta, ctx), default)


def run_rules(metas: Iterable[RuleMeta], ctx: RuleContext) -> list[Finding]:
    """Run ``metas`` on ``ctx``: one finding per rule, in the order given (``--debug`` shows
    each rule's status and time: where a slow check spends its seconds)."""
    if not debugging(_log):
        return [run_rule(meta, ctx) for meta in metas]
    findings = []
    for meta in metas:
        start = time.perf_counter()
        finding = run_rule(meta, ctx)
        _log.debug("rule %s: %s in %.1f ms", meta.id, finding.status,
                   1000 * (time.perf_counter() - start))
        findings.append(finding)
    return findings
