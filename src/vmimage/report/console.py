"""Terminal rendering with rich: tables people read, no logic."""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vmimage.disk.inspect import DiskInfo
from vmimage.findings import Evidence, Finding, Status
from vmimage.units import format_size

# Control characters (C0 but tab and newline, DEL, C1), what XML 1.0 cannot hold at all, and
# the bidirectional controls (embeddings, overrides, isolates, marks) that make a terminal show
# text in another order than it is written ("Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff\ufffe\uffff]")

STATUS_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.WARNING: "yellow",
                Status.SKIP: "dim"}


def console(stderr: bool = False) -> Console:
    """A console that stays plain (no colour codes) when output is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=False, width=None
                   if stream.isatty() else 160)


def render_disk_info(info: DiskInfo) -> Table:
    """``vmimage vhd inspect``'s table."""
    # Every value may come from the image (the footer's creator fields are anyone's bytes):
    # shown escaped, and never read as rich markup.
    table = Table(title=_safe(info.path), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("format", info.format_name)
    table.add_row("virtual size", f"{info.virtual_size} ({format_size(info.virtual_size)})")
    table.add_row("whole MiB", "yes" if info.whole_mib else "no")
    table.add_row("file size", f"{info.file_size} ({format_size(info.file_size)})")
    table.add_row("allocated on disk", f"{info.allocated} ({format_size(info.allocated)})")
    if info.footer is not None:
        for key, value in info.footer.to_dict().items():
            if isinstance(value, dict):
                value = " ".join(f"{k}={v}" for k, v in value.items())
            table.add_row(f"footer {key}", _safe(str(value)))
    if info.dynamic_header is not None:
        for key, value in info.dynamic_header.to_dict().items():
            table.add_row(f"dynamic {key}", _safe(str(value)))
        table.add_row("allocated blocks", str(info.allocated_blocks))
    table.add_row("problems", "\n".join(_safe(p) for p in info.problems) if info.problems
                  else "none")
    return table


def render_findings(findings: list[Finding], title: str) -> Table:
    """One row per finding: status, check, message and, when it did not pass, the fix."""
    table = Table(title=_safe(title), title_justify="left")
    table.add_column("status")
    table.add_column("check")
    table.add_column("requirements")
    table.add_column("finding")
    for f in sorted(findings, key=lambda f: f.sort_key):
        # Messages quote file content: escape it, or "[Service]" would be read as markup.
        text = escape(printable(f.message))
        if f.status in (Status.FAIL, Status.WARNING):
            for e in f.evidence:
                where = "at " if e.path else ""
                text += f"\n[dim]{where}{escape(printable(describe_evidence(e)))}[/dim]"
            if f.remediation:
                text += f"\n[dim]fix: {escape(f.remediation)}[/dim]"
        table.add_row(f"[{STATUS_STYLE[f.status]}]{f.status}[/]", escape(f.check_id),
                      escape(", ".join(f.covers)), text)
    return table


def summary_line(findings: list[Finding]) -> str:
    """``3 passed, 1 failed, 0 warnings, 2 skipped``."""
    count = {s: sum(1 for f in findings if f.status is s) for s in Status}
    return (f"{count[Status.PASS]} passed, {count[Status.FAIL]} failed, "
            f"{count[Status.WARNING]} warnings, {count[Status.SKIP]} skipped")


def describe_evidence(e: Evidence) -> str:
    """``/etc/ssh/sshd_config:12: seen '0', required '180'``, with the parts that are known."""
    where = e.path or ""
    if e.path and e.line is not None:
        where += f":{e.line}"
    what = [f"{label} {value!r}" for label, value in (("seen", e.seen), ("required", e.required))
            if value is not None]
    return ": ".join(p for p in (where, ", ".join(what)) if p)


def printable(text: str) -> str:
    r"""``text`` with control and bidi characters shown as ``\xNN`` (``\uNNNN`` above 0xFF).

    Messages and evidence quote files from the image, which anyone may have written: an escape
    sequence must not reach a terminal (it can hide text, set the title, write the clipboard
    with OSC 52), a bidi override must not reorder what the reader sees, and XML 1.0 (JUnit)
    cannot hold most controls at all. JSON output keeps the exact value instead.
    """
    return _UNPRINTABLE.sub(_escape_char, text)


def _safe(text: str) -> str:
    """Text for a rich table cell: control and bidi characters escaped, markup inert."""
    return escape(printable(text))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
