"""Run registered checks on a context and turn their outcomes into findings."""

from __future__ import annotations

from collections.abc import Iterable

from vmimage.checks.context import CheckContext
from vmimage.checks.registry import REGISTRY, CheckMeta
from vmimage.errors import VmimageError
from vmimage.findings import Finding, Outcome, Severity, Status

_CAPABILITY_MISSING = {
    "disk": "needs a disk image file; this target is not one",
    "filesystem": "needs the image's filesystem; this target has none",
    "live": "needs a running VM (ssh:// or winrm://); this target is offline",
}


def effective_severity(meta: CheckMeta, ctx: CheckContext, pinned: Severity | None) -> Severity:
    """The profile's severity for the check wins over the decorator's default."""
    if pinned is not None:
        return pinned
    return ctx.profile.severity.get(meta.id, meta.severity)


def _outcomes(meta: CheckMeta, ctx: CheckContext) -> list[Outcome]:
    missing = sorted(meta.needs - ctx.capabilities)
    if missing:
        return [Outcome(Status.SKIP, _CAPABILITY_MISSING[missing[0]])]
    try:
        result = meta.fn(ctx)
        # Generator checks run while being listed: keep that inside the try.
        return [result] if isinstance(result, Outcome) else list(result)
    except VmimageError as exc:
        # A check that cannot read what it needs says so instead of crashing the run.
        return [Outcome(Status.SKIP, f"cannot decide: {exc}")]


def run_check(meta: CheckMeta, ctx: CheckContext) -> list[Finding]:
    """Run one check and attach its metadata and the profile's severity."""
    if meta.id in ctx.profile.disabled:
        return [Finding(meta.id, meta.title, Status.SKIP,
                        f"disabled in profile {ctx.profile.name}: {ctx.profile.disabled[meta.id]}",
                        meta.covers, meta.remediation)]
    findings = []
    for outcome in _outcomes(meta, ctx):
        status = outcome.status
        if status is None:
            sev = effective_severity(meta, ctx, outcome.severity)
            status = Status.FAIL if sev is Severity.FAIL else Status.WARNING
        findings.append(Finding(meta.id, meta.title, status, outcome.message, meta.covers,
                                meta.remediation if status is not Status.PASS else "",
                                outcome.evidence))
    return findings


def select(ids: Iterable[str] | None = None, os: str | None = None) -> list[CheckMeta]:
    """The checks to run, in ID order: all, or those named, or those for one OS family."""
    import vmimage.checks  # noqa: F401 - registers every check module

    metas = sorted(REGISTRY.values(), key=lambda m: m.id)
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - REGISTRY.keys()
        if unknown:
            raise VmimageError(f"unknown check ID(s): {', '.join(sorted(unknown))}")
        metas = [m for m in metas if m.id in wanted]
    if os is not None:
        metas = [m for m in metas if m.os in (os, "any")]
    return metas


def run_checks(metas: Iterable[CheckMeta], ctx: CheckContext) -> list[Finding]:
    """Run ``metas`` on ``ctx``; findings come back in a stable order."""
    findings: list[Finding] = []
    for meta in metas:
        findings.extend(run_check(meta, ctx))
    return findings
