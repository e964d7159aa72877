"""JUnit XML, so a CI system shows each check as a test and the run fails with the image.

One ``testsuite`` per run and one ``testcase`` per finding: ``classname`` is the check ID (CI
groups by it) and ``name`` the check's title, with the message added when a check produced
several findings, so names stay stable from run to run but never collide.

JUnit knows only pass, failure, error and skipped. A warning does not block certification
(CRT-RESULTS), so it must not turn a CI run red: it is a *passing* testcase whose
``system-out`` starts with ``WARNING:``. Marking it skipped would hide that the rule was checked;
marking it failed would fail builds that certification accepts. Nothing is an ``error``: a check
that could not decide is a skip with its reason.

A waived failure or warning is a *skipped* testcase whose message starts with ``WAIVED:`` and
gives the waiver (its reason and expiry). It must not fail the build (the publisher accepted
it), and a pass would hide it in ``system-out``, which most CI pages fold away; Jenkins,
GitLab and GitHub's test reporters list skipped cases with their message, so the waiver stays
in sight until it expires.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from vmimage.findings import Finding, Status
from vmimage.report.console import describe_evidence
from vmimage.report.model import TOOL_NAME, Report
from vmimage.textsafe import printable


def render_junit(report: Report, *, only_failed: bool = False) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration).

    With ``only_failed`` the testcases are the failures and warnings only (waived or not);
    the suite's ``tests``, ``failures`` and ``skipped`` count the testcases written, as JUnit
    readers expect, and the ``summary`` property counts every finding.
    """
    findings = report.listed(only_failed)
    failures = str(sum(1 for f in findings if f.failing))
    skipped = str(sum(1 for f in findings if f.status is Status.SKIP or f.waived))
    root = ET.Element("testsuites", name=TOOL_NAME, tests=str(len(findings)),
                      failures=failures, errors="0", skipped=skipped,
                      time=f"{report.duration_s:.3f}")
    suite = ET.SubElement(root, "testsuite", {
        "name": printable(f"{TOOL_NAME} check {report.target}"),
        "tests": str(len(findings)),
        "failures": failures,
        "errors": "0",
        "skipped": skipped,
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
             ("verdict", report.verdict), ("role", report.role), ("mode", report.mode),
             ("summary", report.counts_line)]
    props += [(f"identity.{k}", v) for k, v in sorted(report.identity.items())]
    props += [(f"system.{k}", v) for k, v in sorted(report.system.items())]
    return props


def _testcase(suite: ET.Element, f: Finding) -> None:
    case = ET.SubElement(suite, "testcase", classname=f.check_id, name=printable(f.title),
                         time="0")
    details = _details(f)
    if f.waived:
        ET.SubElement(case, "skipped", message=printable(f"WAIVED: {f.waiver}"))
    elif f.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=printable(f.message), type="fail")
        failure.text = printable(details)
    elif f.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=printable(f.message))
    out = ET.SubElement(case, "system-out")
    prefix = {Status.WARNING: "WARNING: "}.get(f.status, "")
    if f.waived:
        prefix = f"WAIVED {str(f.status).upper()}: "
    out.text = printable(f"{prefix}{f.message}\n{details}")


def _details(f: Finding) -> str:
    lines = [f"requirements: {', '.join(f.covers)}"]
    lines += [f"evidence: {describe_evidence(e)}" for e in f.evidence]
    if f.remediation and f.status in (Status.FAIL, Status.WARNING):
        lines.append(f"fix: {f.remediation}")
    if f.waiver is not None:
        lines.append(f"waiver: {f.waiver}")
    return "\n".join(lines)
