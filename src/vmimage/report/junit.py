"""JUnit XML, so a CI system shows each check as a test and the run fails with the image.

One ``testsuite`` per run and one ``testcase`` per finding: ``classname`` is the check ID (CI
groups by it) and ``name`` the check's title, with the message added when a check produced
several findings, so names stay stable from run to run but never collide.

JUnit knows only pass, failure, error and skipped. A warning does not block certification
(CRT-RESULTS), so it must not turn a CI run red: it is a *passing* testcase whose
``system-out`` starts with ``WARNING:``. Marking it skipped would hide that the rule was checked;
marking it failed would fail builds that certification accepts. Nothing is an ``error``: a check
that could not decide is a skip with its reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from vmimage.findings import Finding, Status
from vmimage.report.console import describe_evidence, printable
from vmimage.report.model import TOOL_NAME, Report


def render_junit(report: Report) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration)."""
    findings = report.sorted_findings()
    counts = report.counts
    root = ET.Element("testsuites", name=TOOL_NAME, tests=str(len(findings)),
                      failures=str(counts["fail"]), errors="0", skipped=str(counts["skip"]),
                      time=f"{report.duration_s:.3f}")
    suite = ET.SubElement(root, "testsuite", {
        "name": printable(f"{TOOL_NAME} check {report.target}"),
        "tests": str(len(findings)),
        "failures": str(counts["fail"]),
        "errors": "0",
        "skipped": str(counts["skip"]),
        "time": f"{report.duration_s:.3f}",
        "timestamp": report.started.isoformat(timespec="seconds"),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(report):
        ET.SubElement(props, "property", name=name, value=printable(value))
    for f in findings:  # one finding per rule: one test case per rule
        _testcase(suite, f)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _properties(report: Report) -> list[tuple[str, str]]:
    props = [("tool_version", report.tool_version), ("target", report.target),
             ("target_kind", report.target_kind), ("profile", report.profile),
             ("certified", "true" if report.certified else "false"),
             ("verdict", report.verdict), ("role", report.role), ("mode", report.mode)]
    props += [(f"system.{k}", v) for k, v in sorted(report.system.items())]
    return props


def _testcase(suite: ET.Element, f: Finding) -> None:
    case = ET.SubElement(suite, "testcase", classname=f.check_id, name=printable(f.title),
                         time="0")
    details = _details(f)
    if f.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=printable(f.message), type="fail")
        failure.text = printable(details)
    elif f.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=printable(f.message))
    out = ET.SubElement(case, "system-out")
    prefix = "WARNING: " if f.status is Status.WARNING else ""
    out.text = printable(f"{prefix}{f.message}\n{details}")


def _details(f: Finding) -> str:
    lines = [f"requirements: {', '.join(f.covers)}"]
    lines += [f"evidence: {describe_evidence(e)}" for e in f.evidence]
    if f.remediation and f.status in (Status.FAIL, Status.WARNING):
        lines.append(f"fix: {f.remediation}")
    return "\n".join(lines)
