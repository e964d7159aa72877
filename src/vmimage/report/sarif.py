"""SARIF 2.1.0, for code-scanning dashboards and any tool that reads static-analysis logs.

The rules block is built from the check registry (as ansible-lint does), and every finding is a
result, passes and skips included, because SARIF can say so (``kind``, §3.27.9):

- fail -> ``kind: fail``, ``level: error``; warning -> ``kind: fail``, ``level: warning``;
- pass -> ``kind: pass``; skip -> ``kind: notApplicable``; both with ``level: none``, which the
  spec requires for any kind but ``fail`` (§3.27.10).

A skip is "cannot be decided on this target"; SARIF's ``open`` says that more exactly, but
consumers treat ``open`` like ``fail`` and would raise alerts for what never blocks
certification. The skip's reason is the message, and ``properties.status`` keeps vmimage's own
status on every result.

A waived finding keeps its kind and level and carries a suppression (§3.35):
``{"kind": "external", "status": "accepted", "justification": <the waiver>}``, external because
the waiver lives in the publisher's waiver file, not in the image. Code-scanning dashboards list
suppressed results as dismissed, which is what a waiver is: seen, and accepted.

Evidence paths are absolute paths inside the image: they become URIs relative to the base
``IMAGEROOT`` (``/etc/fstab`` -> ``etc/fstab``). Evidence naming the target itself (a disk
image file) points at the analysis target as given.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from vmimage.findings import Evidence, Finding, Status
from vmimage.report.model import TOOL_NAME, TOOL_URL, Report
from vmimage.rules import REGISTRY

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
ROOT_BASE = "IMAGEROOT"

_KIND_LEVEL = {
    Status.FAIL: ("fail", "error"),
    Status.WARNING: ("fail", "warning"),
    Status.PASS: ("pass", "none"),
    Status.SKIP: ("notApplicable", "none"),
}


def sarif_log(report: Report, *, only_failed: bool = False) -> dict[str, object]:
    """The report as a SARIF log object with one run; with ``only_failed``, results (and
    rules) for the failures and warnings only, while the run's properties count everything."""
    findings = report.listed(only_failed)
    rule_ids = sorted({f.check_id for f in findings})
    index = {rid: i for i, rid in enumerate(rule_ids)}
    run: dict[str, object] = {
        "tool": {"driver": {
            "name": TOOL_NAME,
            "version": report.tool_version,
            "semanticVersion": report.tool_version,
            "informationUri": TOOL_URL,
            "rules": [_rule(rid, findings) for rid in rule_ids],
        }},
        "invocations": [{
            "executionSuccessful": True,
            "exitCode": report.exit_code,
            "startTimeUtc": _utc(report.started),
            "endTimeUtc": _utc(report.started + timedelta(seconds=report.duration_s)),
        }],
        "originalUriBaseIds": {ROOT_BASE: {"description": {
            "text": f"The root filesystem of {report.target}"}}},
        "results": [_result(f, index[f.check_id], report.target) for f in findings],
        "properties": {
            "target": report.target,
            "targetKind": report.target_kind,
            "profile": report.profile,
            "certified": report.certified,
            "verdict": report.verdict,
            "skippedBlocking": report.skipped_blocking,
            "counts": report.counts,
            "onlyFailed": only_failed,
            "identity": dict(report.identity),
            "system": dict(report.system),
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: Report, *, only_failed: bool = False) -> str:
    """The SARIF log as indented JSON text."""
    return json.dumps(sarif_log(report, only_failed=only_failed), indent=2,
                      ensure_ascii=False) + "\n"


def _rule(check_id: str, findings: list[Finding]) -> dict[str, object]:
    """A reportingDescriptor from the registry (or, for an unknown check, from its finding)."""
    meta = REGISTRY.get(check_id)
    if meta is None:
        first = next(f for f in findings if f.check_id == check_id)
        return {"id": check_id, "shortDescription": {"text": first.title},
                "help": {"text": first.remediation or first.title},
                "properties": {"covers": list(first.covers)}}
    return {
        "id": meta.id,
        "shortDescription": {"text": meta.title},
        "fullDescription": {"text": f"{meta.title}. Covers {', '.join(meta.covers)}."},
        "help": {"text": meta.remediation},
        "defaultConfiguration": {"level": "error" if meta.severity == "fail" else "warning"},
        "properties": {"covers": list(meta.covers), "os": meta.os, "subject": str(meta.subject),
                       "needs": sorted(meta.needs), "module": meta.module,
                       "tags": sorted(meta.covers)},
    }


def _result(f: Finding, rule_index: int, target: str) -> dict[str, object]:
    kind, level = _KIND_LEVEL[f.status]
    result: dict[str, object] = {
        "ruleId": f.check_id,
        "ruleIndex": rule_index,
        "kind": kind,
        "level": level,
        "message": {"text": f.message or f.title},
    }
    locations = [_location(e, target) for e in f.evidence if e.path]
    if locations:
        result["locations"] = locations[:1]
    if len(locations) > 1:
        # SARIF: one location unless every one must change; the rest are related.
        result["relatedLocations"] = [dict(loc, id=i) for i, loc in enumerate(locations[1:])]
    if f.waived and f.waiver is not None:
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": f.waiver}]
    properties: dict[str, object] = {"status": str(f.status), "covers": list(f.covers),
                                     "evidence": [e.to_dict() for e in f.evidence]}
    if f.waiver is not None:
        properties["waiver"] = f.waiver
    result["properties"] = properties
    return result


def _location(e: Evidence, target: str) -> dict[str, object]:
    assert e.path is not None
    if e.path == target:
        artifact: dict[str, object] = {"uri": quote(e.path, safe="/:")}
    else:
        artifact = {"uri": quote(e.path.lstrip("/"), safe="/"), "uriBaseId": ROOT_BASE}
    physical: dict[str, object] = {"artifactLocation": artifact}
    if e.line is not None and e.line >= 1:
        physical["region"] = {"startLine": e.line}
    return {"physicalLocation": physical}


def _utc(moment: datetime) -> str:
    """SARIF times are UTC with a ``Z`` (§3.9); a naive time is taken as local time."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
