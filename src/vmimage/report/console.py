"""Terminal rendering with rich: tables people read, no logic."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from vmimage.disk.inspect import DiskInfo
from vmimage.findings import Finding, Status
from vmimage.units import format_size

STATUS_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.WARNING: "yellow",
                Status.SKIP: "dim"}


def console(stderr: bool = False) -> Console:
    """A console that stays plain (no colour codes) when output is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=False, width=None
                   if stream.isatty() else 160)


def render_disk_info(info: DiskInfo) -> Table:
    """``vmimage vhd inspect``'s table."""
    table = Table(title=info.path, show_header=False, title_justify="left")
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
            table.add_row(f"footer {key}", str(value))
    if info.dynamic_header is not None:
        for key, value in info.dynamic_header.to_dict().items():
            table.add_row(f"dynamic {key}", str(value))
        table.add_row("allocated blocks", str(info.allocated_blocks))
    table.add_row("problems", "\n".join(info.problems) if info.problems else "none")
    return table


def render_findings(findings: list[Finding], title: str) -> Table:
    """One row per finding: status, check, message and, when it did not pass, the fix."""
    table = Table(title=title, title_justify="left")
    table.add_column("status")
    table.add_column("check")
    table.add_column("requirements")
    table.add_column("finding")
    for f in sorted(findings, key=lambda f: f.sort_key):
        text = f.message
        if f.status in (Status.FAIL, Status.WARNING) and f.remediation:
            text += f"\n[dim]fix: {f.remediation}[/dim]"
        table.add_row(f"[{STATUS_STYLE[f.status]}]{f.status}[/]", f.check_id,
                      ", ".join(f.covers), text)
    return table


def summary_line(findings: list[Finding]) -> str:
    """``3 passed, 1 failed, 0 warnings, 2 skipped``."""
    count = {s: sum(1 for f in findings if f.status is s) for s in Status}
    return (f"{count[Status.PASS]} passed, {count[Status.FAIL]} failed, "
            f"{count[Status.WARNING]} warnings, {count[Status.SKIP]} skipped")
