"""Terminal rendering with rich: tables for a person at a terminal, plain lines for the rest.

Every table the CLI prints adapts to where it goes. At a terminal it is a rich table sized to
the window; in a file, a pipe or a CI log it is plain lines (``FAIL  ID  message`` and indented
details), because a box table padded to 160 columns is unreadable in a log viewer, breaks
``grep`` and wraps evidence into a narrow column. The choice is made when the renderable is
printed (:class:`Adaptive`), so commands only print what these functions return.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table

from vmimage.disk.inspect import DiskInfo
from vmimage.findings import Evidence, Finding, Status
from vmimage.report.model import GROUPS, group_of
from vmimage.textsafe import printable
from vmimage.units import format_size

__all__ = ["Adaptive", "console", "describe_evidence", "finding_lines", "findings_table",
           "printable", "render_disk_info", "render_findings", "summary_line"]

STATUS_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.WARNING: "yellow",
                Status.SKIP: "dim"}
#: Styles of the groups of :data:`vmimage.report.model.GROUPS` (a waived failure is no longer
#: red: it blocks nothing).
GROUP_STYLE = {"fail": "bold red", "warning": "yellow", "waived": "magenta", "pass": "green",
               "skip": "dim"}
#: The word at the start of a plain line, padded so the check IDs line up.
_WORD_WIDTH = max(len(g) for g in GROUPS) + 1


def console(stderr: bool = False) -> Console:
    """A console for the CLI: sized to the terminal, or, when output is not a terminal, plain
    (no colour codes, no wrapping: lines stay whole for ``grep`` and log viewers)."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(file=stream, highlight=False, soft_wrap=not tty,
                   width=None if tty else 160)


class Adaptive:
    """A table at a terminal, plain lines anywhere else: decided by the console it is printed
    on (``Console.is_terminal``, which ``force_terminal`` and ``FORCE_COLOR`` set).

    The lines are never read as markup. A console that does not wrap (``soft_wrap``, as
    :func:`console` makes when output is not a terminal) gets them whole; one that wraps and
    crops at its width gets long lines wrapped under their own indentation, never cut off.
    """

    def __init__(self, table: Callable[[], Table], lines: Callable[[], list[str]]) -> None:
        self.table = table
        self.lines = lines

    def plain(self) -> str:
        """The plain lines as one text, for a caller that writes text without a console."""
        return "".join(line + "\n" for line in self.lines())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The table, or the lines as raw segments."""
        if console.is_terminal:
            yield self.table()
            return
        for line in self.lines():
            for part in [line] if options.no_wrap else _wrap(line, options.max_width):
                yield Segment(part + "\n")


def _wrap(line: str, width: int) -> list[str]:
    """``line`` in pieces of at most ``width`` characters, continuations indented four more
    than the line itself (words kept whole where they fit)."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip(" ")) + 4)
    return textwrap.wrap(line, width, subsequent_indent=indent if len(indent) < width // 2
                         else "", break_long_words=True, break_on_hyphens=False) or [line]


def _disk_rows(info: DiskInfo) -> list[tuple[str, str]]:
    """``vhd inspect``'s fields, unescaped: the callers make them safe for where they go."""
    rows = [
        ("format", info.format_name),
        ("virtual size", f"{info.virtual_size} ({format_size(info.virtual_size)})"),
        ("whole MiB", "yes" if info.whole_mib else "no"),
        ("file size", f"{info.file_size} ({format_size(info.file_size)})"),
        ("allocated on disk", f"{info.allocated} ({format_size(info.allocated)})"),
    ]
    if info.footer is not None:
        for key, value in info.footer.to_dict().items():
            if isinstance(value, dict):
                value = " ".join(f"{k}={v}" for k, v in value.items())
            rows.append((f"footer {key}", str(value)))
    if info.dynamic_header is not None:
        for key, value in info.dynamic_header.to_dict().items():
            rows.append((f"dynamic {key}", str(value)))
        rows.append(("allocated blocks", str(info.allocated_blocks)))
    rows.append(("problems", "\n".join(info.problems) if info.problems else "none"))
    return rows


def render_disk_info(info: DiskInfo) -> RenderableType:
    """``vmimage vhd inspect``'s table (plain ``field: value`` lines when not a terminal)."""
    # Every value may come from the image (the footer's creator fields are anyone's bytes):
    # shown escaped, and never read as rich markup.
    return field_view(printable(info.path), _disk_rows(info), _safe, indent="  ")


def field_view(title: str, rows: list[tuple[str, str]], escape_value: Callable[[str], str],
               indent: str = "") -> Adaptive:
    """A titled two-column ``field | value`` table at a terminal, ``field: value`` lines
    elsewhere (a multi-line value indented under its field); ``escape_value`` makes a value
    safe for rich (markup inert, control characters shown)."""

    def table() -> Table:
        out = Table(title=escape(title), show_header=False, title_justify="left")
        out.add_column("field", style="bold")
        out.add_column("value")
        for field, value in rows:
            out.add_row(field, escape_value(value))
        return out

    def lines() -> list[str]:
        return [title] + [line for field, value in rows
                          for line in f"{indent}{field}: {_indent(printable(value), indent + '  ')}"
                          .split("\n")]

    return Adaptive(table, lines)


def render_findings(findings: list[Finding], title: str) -> RenderableType:
    """Failures first, then warnings, waived, passes and skips; under a failure, warning or
    waived finding its evidence, the fix and its waiver. A table at a terminal, plain lines
    (:func:`finding_lines`) elsewhere."""
    return Adaptive(lambda: findings_table(findings, title),
                    lambda: [*printable(title).split("\n"), *finding_lines(findings)])


def grouped(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in the human order: by group (:data:`GROUPS`), then by check ID and message."""
    rank = {g: i for i, g in enumerate(GROUPS)}
    return sorted(findings, key=lambda f: (rank[group_of(f)], f.sort_key))


def finding_lines(findings: Iterable[Finding]) -> list[str]:
    """One line per finding, ``FAIL     CHECK-ID  message``, with the details of what did not
    pass indented under it: evidence (``at ...``), ``fix:``, the waiver, the requirements.

    Plain text: control and bidi characters escaped, nothing interpreted as markup.
    """
    ordered = grouped(findings)
    width = max((len(f.check_id) for f in ordered), default=0)
    lines: list[str] = []
    for f in ordered:
        group = group_of(f)
        message = _indent(printable(f.message), "    ")
        lines += f"{group.upper():<{_WORD_WIDTH}} {printable(f.check_id):<{width}}  " \
                 f"{message}".rstrip().split("\n")
        for detail in _details(f):
            lines += f"  {_indent(printable(detail), '    ')}".split("\n")
    return lines


def findings_table(findings: Iterable[Finding], title: str) -> Table:
    """The terminal's table: status and check ID kept on one line each, so the last column,
    the finding with its evidence and fix, gets the rest of the width."""
    table = Table(title=_safe(title), title_justify="left", expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("finding", ratio=1, overflow="fold")
    for f in grouped(findings):
        group = group_of(f)
        # Messages quote file content: escape it, or "[Service]" would be read as markup.
        text = escape(printable(f.message))
        for detail in _details(f):
            text += f"\n[dim]{_safe(detail)}[/dim]"
        table.add_row(f"[{GROUP_STYLE[group]}]{group}[/]", escape(printable(f.check_id)), text)
    return table


def _details(f: Finding) -> list[str]:
    """What is shown under a finding: for a violation (waived or not) the waiver, evidence,
    the fix and the requirements; for a pass or a skip nothing, unless a waiver names it."""
    out: list[str] = []
    if f.waiver is not None:
        out.append(f"waived ({f.status}): {f.waiver}" if f.waived else f"waiver: {f.waiver}")
    if f.status in (Status.FAIL, Status.WARNING):
        for e in f.evidence:
            out.append(("at " if e.path else "") + describe_evidence(e))
        if f.remediation:
            out.append(f"fix: {f.remediation}")
        if f.covers:
            out.append(f"requirements: {', '.join(f.covers)}")
    return out


def summary_line(findings: list[Finding]) -> str:
    """``3 passed, 1 failed, 0 warnings, 2 skipped`` (``, 1 waived`` when a waiver applied),
    then ``; failed: ID, ID`` naming the rules that failed: the last line of a command."""
    count = {s: sum(1 for f in findings if f.status is s and not f.waived) for s in Status}
    waived = sum(1 for f in findings if f.waived)
    failed = sorted({f.check_id for f in findings if f.failing})
    return (f"{count[Status.PASS]} passed, {count[Status.FAIL]} failed, "
            f"{count[Status.WARNING]} warnings, {count[Status.SKIP]} skipped"
            + (f", {waived} waived" if waived else "")
            + (f"; failed: {', '.join(failed)}" if failed else ""))


def _indent(text: str, prefix: str) -> str:
    """Continuation lines of a multi-line value indented under their first line."""
    return text.replace("\n", "\n" + prefix)


def describe_evidence(e: Evidence) -> str:
    """``/etc/ssh/sshd_config:12: seen '0', required '180'``, with the parts that are known."""
    where = e.path or ""
    if e.path and e.line is not None:
        where += f":{e.line}"
    what = [f"{label} {value!r}" for label, value in (("seen", e.seen), ("required", e.required))
            if value is not None]
    return ": ".join(p for p in (where, ", ".join(what)) if p)


def _safe(text: str) -> str:
    """Text for a rich table cell: control and bidi characters escaped, markup inert."""
    return escape(printable(text))
