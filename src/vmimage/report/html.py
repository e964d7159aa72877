"""One self-contained HTML page a publisher reads and attaches to the request (CRT-ARTIFACTS).

Inline CSS, no scripts, no external assets: the page must open the same from an e-mail, a
support ticket or a storage container years later. Everything is autoescaped, because messages
and evidence quote files from the image, which anyone may have written.
"""

from __future__ import annotations

import json
import os
import re

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from vmimage.report import compare
from vmimage.report.model import TOOL_URL, Report, identity_rows
from vmimage.requirements import REQUIREMENTS
from vmimage.textsafe import printable
from vmimage.units import format_size

_HEADINGS = {"fail": "Failed", "warning": "Warnings", "waived": "Waived", "pass": "Passed",
             "skip": "Skipped"}
_LABELS = (("fail", "failed"), ("warning", "warnings"), ("waived", "waived"),
           ("pass", "passed"), ("skip", "skipped"))
#: Header values shown as code: identifiers a reader compares or copies.
_MONO = frozenset({"file", "target", "VHD unique ID", "partition table ID"})
#: A Markdown code span, as rule titles, messages and remediations write commands and values.
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _finalize(value: object) -> object:
    # Control characters from file content are not allowed in HTML text; show them as \xNN.
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


def code_spans(value: object) -> Markup:
    """Text with its Markdown code spans (`like this`) as ``<code>``, everything escaped.

    Rules write commands and settings between backticks; a reader should see code, not
    backticks. The text around and inside the spans is escaped like any other: a message
    quoting ``<script>`` between backticks stays text.
    """
    text = printable(str(value))
    parts: list[Markup] = []
    pos = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(escape(text[pos:match.start()]))
        parts.append(Markup("<code>%s</code>") % match.group(1))
        pos = match.end()
    parts.append(escape(text[pos:]))
    return Markup("").join(parts)


_ENV = Environment(loader=PackageLoader("vmimage.report", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   finalize=_finalize, trim_blocks=False, lstrip_blocks=False,
                   keep_trailing_newline=True)
_ENV.filters["code_spans"] = code_spans


def render_html(report: Report, *, only_failed: bool = False) -> str:
    """The report as a complete HTML5 document.

    The layout is fixed-width tables, so that long evidence wraps instead of squeezing a
    column: each finding is one row (rule, finding) with its waiver, evidence and fix on rows
    of their own across the whole table. Failures, warnings and waived findings are open;
    passes, skips (unless a blocking rule was skipped), the requirements and the disk's
    metadata are collapsed ``<details>``: a reader sees what to fix first.
    """
    disk = [(k, v if isinstance(v, str) else json.dumps(v, default=str))
            for k, v in (report.disk or {}).items() if v is not None]
    return _ENV.get_template("report.html.j2").render(
        r=report,
        file_name=os.path.basename(report.target) or report.target,
        identity=_identity(report),
        mono=_MONO,
        counts=report.counts,
        groups=report.groups(only_failed),
        headings=_HEADINGS,
        labels=_LABELS,
        only_failed=only_failed,
        left_out=len(report.findings) - len(report.listed(only_failed)),
        requirements={rid: REQUIREMENTS[rid] for rid in report.covered(only_failed)
                      if rid in REQUIREMENTS},
        disk=disk,
        tool_url=TOOL_URL,
        **_first_boot(report),
    )


def _first_boot(report: Report) -> dict[str, object]:
    """``check --boot``: the side-by-side rows, how many changed, and the first-boot findings
    of the changed checks."""
    if report.first_boot is None:
        return {"boot_rows": [], "boot_changed": 0, "boot_findings": []}
    table = compare.rows(report.findings, report.first_boot.findings)
    changed = {r.check_id for r in table if r.changed}
    return {"boot_rows": table, "boot_changed": len(changed),
            "boot_findings": [f for f in report.first_boot.listed() if f.check_id in changed]}


def _identity(report: Report) -> list[tuple[str, str]]:
    """The header: which disk (:func:`identity_rows`), then the target as given, the role and
    mode, what the run cost, and what was learnt about the system."""
    rows = identity_rows(report)
    if os.path.basename(report.target) != report.target and report.target_kind == "image":
        rows.append(("target", report.target))
    rows.append(("role" if report.role else "kind", ", ".join(
        p for p in (report.role, report.target_kind, report.mode) if p)))
    cost = f"{report.duration_s:.2f} s"
    if report.bytes_read is not None:
        cost += f", {format_size(report.bytes_read)} of the image read"
    rows.append(("duration", cost))
    if report.system:
        rows.append(("system", report.system.get("os") or ", ".join(
            f"{k}={v}" for k, v in sorted(report.system.items()))))
    return rows
