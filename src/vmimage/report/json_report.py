"""The JSON report: versioned, documented in docs/report-format.md, checked by a JSON Schema.

Programs depend on this format, so it changes only by adding optional keys; anything else
raises :data:`SCHEMA_VERSION` and gets a new schema file (``schemas/report-v2.json``).
"""

from __future__ import annotations

import json
from importlib import resources

from vmimage.findings import Finding
from vmimage.report.compare import rows
from vmimage.report.model import TOOL_NAME, Report, severity_of
from vmimage.requirements import REQUIREMENTS

SCHEMA_VERSION = 1
SCHEMA_ID = "https://vmimage.dev/schemas/report-v1.json"


def to_dict(report: Report, *, only_failed: bool = False) -> dict[str, object]:
    """The report as plain data, in the shape ``schemas/report-v1.json`` describes.

    With ``only_failed`` the findings (and the requirements they cover) are the failures and
    warnings only, waived or not; ``summary`` still counts every finding and says
    ``only_failed``, so a program never takes the short list for the whole run.
    """
    data = _base(report, only_failed)
    if report.notes:
        data["notes"] = list(report.notes)
    if report.provisioning is not None:
        data["provisioning"] = report.provisioning
    if report.first_boot is not None:
        live = _base(report.first_boot, only_failed)
        data["first_boot"] = {k: live[k] for k in _FIRST_BOOT_KEYS}
        data["changed_after_first_boot"] = [r.to_dict() for r in
                                            rows(report.findings, report.first_boot.findings)]
    return data


#: What the first-boot run adds (its tool, profile and requirements are the report's own).
_FIRST_BOOT_KEYS = ("target", "mode", "started", "duration_s", "system", "summary", "findings")


def _base(report: Report, only_failed: bool) -> dict[str, object]:
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": TOOL_NAME, "version": report.tool_version},
        "target": {"path": report.target, "kind": report.target_kind, "role": report.role,
                   "identity": dict(report.identity)},
        "mode": report.mode,
        "profile": report.profile,
        "started": report.started.isoformat(),
        "duration_s": round(report.duration_s, 6),
        "bytes_read": report.bytes_read,
        "system": dict(report.system),
        "disk": report.disk,
        "summary": {
            "certified": report.certified,
            "verdict": report.verdict,
            "verdict_line": report.verdict_line,
            "skipped_blocking": report.skipped_blocking,
            "exit_code": report.exit_code,
            "counts": report.counts,
            "total": len(report.findings),
            "only_failed": only_failed,
        },
        "findings": [finding_dict(f) for f in report.listed(only_failed)],
        "requirements": {rid: {"source": r.source, "area": r.area, "section": r.section,
                               "text": r.text}
                         for rid in report.covered(only_failed) if (r := REQUIREMENTS.get(rid))},
    }


def finding_dict(finding: Finding) -> dict[str, object]:
    """One finding with the severity its rule has under the run's profile."""
    data = finding.to_dict()
    data["severity"] = severity_of(finding)
    return data


def render_json(report: Report, *, only_failed: bool = False) -> str:
    """The report as indented JSON text (UTF-8 kept readable, not escaped)."""
    return json.dumps(to_dict(report, only_failed=only_failed), indent=2, ensure_ascii=False,
                      default=str) + "\n"


def schema() -> dict[str, object]:
    """The bundled JSON Schema of this format (draft 2020-12)."""
    text = resources.files("vmimage").joinpath("schemas/report-v1.json").read_text("utf-8")
    loaded: dict[str, object] = json.loads(text)
    return loaded
