"""One self-contained HTML page a publisher reads and attaches to the request (CRT-ARTIFACTS).

Inline CSS, no scripts, no external assets: the page must open the same from an e-mail, a
support ticket or a storage container years later. Everything is autoescaped, because messages
and evidence quote files from the image, which anyone may have written.
"""

from __future__ import annotations

import json

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from vmimage.report.console import describe_evidence, printable
from vmimage.report.model import TOOL_URL, Report
from vmimage.requirements import REQUIREMENTS
from vmimage.units import format_size

_HEADINGS = {"fail": "Failed", "warning": "Warnings", "pass": "Passed", "skip": "Skipped"}
_LABELS = (("fail", "failed"), ("warning", "warnings"), ("pass", "passed"), ("skip", "skipped"))


def _finalize(value: object) -> object:
    # Control characters from file content are not allowed in HTML text; show them as \xNN.
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


_ENV = Environment(loader=PackageLoader("vmimage.report", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   finalize=_finalize, trim_blocks=False, lstrip_blocks=False,
                   keep_trailing_newline=True)


def render_html(report: Report) -> str:
    """The report as a complete HTML5 document."""
    disk = [(k, v if isinstance(v, str) else json.dumps(v, default=str))
            for k, v in (report.disk or {}).items() if v is not None]
    return _ENV.get_template("report.html.j2").render(
        r=report,
        counts=report.counts,
        groups=[(str(s), fs) for s, fs in report.by_status()],
        headings=_HEADINGS,
        labels=_LABELS,
        requirements={rid: REQUIREMENTS[rid] for rid in report.covered() if rid in REQUIREMENTS},
        describe=describe_evidence,
        disk=disk,
        bytes_read=format_size(report.bytes_read) if report.bytes_read is not None else None,
        tool_url=TOOL_URL,
    )
