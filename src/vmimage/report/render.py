"""Pick a format and turn a :class:`Report` into text: the one entry point of the CLI.

Every format is a pure function of the report, so a format is added by one module and one line
in :data:`_RENDERERS`; the CLI only chooses by name and writes the string.
"""

from __future__ import annotations

import importlib
import io
import shutil

from rich.console import Console
from rich.markup import escape

from vmimage.errors import InputError
from vmimage.report import FORMATS
from vmimage.report.console import printable, render_findings, summary_line
from vmimage.report.model import Report
from vmimage.units import format_size


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """The report in format ``fmt``, as one string ending in a newline.

    ``color`` and ``width`` apply to ``text`` only: the CLI passes
    ``color=sys.stdout.isatty()`` when it prints (never when it writes ``--output``), so a file
    or a pipe gets plain text without escape codes.

    Raises:
        InputError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "text":
        return render_text(report, color=color, width=width)
    if fmt not in _RENDERERS:
        raise InputError("--format", f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    module, function = _RENDERERS[fmt]
    text: str = getattr(importlib.import_module(module), function)(report)
    return text


def render_text(report: Report, *, color: bool = False, width: int | None = None) -> str:
    """The terminal report: header, the findings table, counts, and the verdict last."""
    if width is None:
        # A terminal gets its own width; a file or a pipe a fixed one, so output is stable.
        width = shutil.get_terminal_size((160, 24)).columns if color else 160
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=color, color_system="standard" if color else None,
                  width=width, highlight=False, soft_wrap=False)
    read = "" if report.bytes_read is None else f", {format_size(report.bytes_read)} read"
    out.print(f"{printable(report.target)} ({report.target_kind}, {report.role}, "
              f"{report.mode}), profile {report.profile}, vmimage {report.tool_version}",
              markup=False)
    out.print(f"started {report.started.isoformat(timespec='seconds')}, "
              f"took {report.duration_s:.2f} s{read}", markup=False)
    if report.system:
        out.print("system: " + printable(", ".join(f"{k}={v}"
                                                   for k, v in sorted(report.system.items()))),
                  markup=False)
    out.print(render_findings(report.findings, "findings"))
    out.print(summary_line(report.findings), markup=False)
    out.print(verdict(report))
    return buffer.getvalue()


def verdict(report: Report) -> str:
    """The last line a publisher reads, in rich markup."""
    style = {"pass": "bold green", "incomplete": "bold yellow", "fail": "bold red"}
    word, _, rest = report.verdict_line.partition(" ")
    return f"[{style[report.verdict]}]{escape(word)}[/] {escape(rest)}"


#: format -> (module, function): imported when chosen, so a JSON report never loads jinja2.
_RENDERERS: dict[str, tuple[str, str]] = {
    "json": ("vmimage.report.json_report", "render_json"),
    "junit": ("vmimage.report.junit", "render_junit"),
    "sarif": ("vmimage.report.sarif", "render_sarif"),
    "html": ("vmimage.report.html", "render_html"),
}
