"""Pick a format and turn a :class:`Report` into text: the one entry point of the CLI.

Every format is a pure function of the report, so a format is added by one module and one line
in :data:`_RENDERERS`; the CLI only chooses by name and writes the string.
"""

from __future__ import annotations

import importlib
import io
import shutil
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.markup import escape

from vmimage.errors import InputError
from vmimage.report import FORMATS
from vmimage.report.compare import rows
from vmimage.report.console import finding_lines, findings_table
from vmimage.report.model import Report, identity_rows
from vmimage.textsafe import printable
from vmimage.units import format_size

#: Header rows the first two lines of the text report already say.
_SAID = {"file", "target", "vmimage", "profile", "time"}


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
           only_failed: bool = False) -> str:
    """The report in format ``fmt``, as one string ending in a newline.

    ``color`` and ``width`` apply to ``text`` only: the CLI passes
    ``color=sys.stdout.isatty()`` when it prints (never when it writes ``--output``), so a file
    or a pipe gets plain lines without escape codes or table borders. ``only_failed`` lists
    only the failures and warnings (waived or not) in every format; the counts, the verdict
    and the exit code are still those of every finding.

    Raises:
        InputError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "text":
        return render_text(report, color=color, width=width, only_failed=only_failed)
    if fmt not in _RENDERERS:
        raise InputError("--format", f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    module, function = _RENDERERS[fmt]
    text: str = getattr(importlib.import_module(module), function)(report,
                                                                    only_failed=only_failed)
    return text


def render_text(report: Report, *, color: bool = False, width: int | None = None,
                only_failed: bool = False) -> str:
    """The text report: header, the findings failures first, counts, and the verdict last.

    Without ``color`` (a file, a pipe, a CI log) every finding is a plain line, its evidence
    and fix indented under it; with ``color`` (a terminal) the findings are a table as wide
    as the terminal, or ``width``.
    """
    listed = report.listed(only_failed)
    head = _header(report)
    if only_failed:
        left = len(report.findings) - len(listed)
        head.append(f"only failures and warnings listed; {left} other finding"
                    f"{'s' if left != 1 else ''} left out")
    boot = first_boot_lines(report, only_failed)
    if not color:
        lines = [*head, "", *finding_lines(listed), *boot, "", report.counts_line,
                 report.verdict_line]
        return "\n".join(lines) + "\n"
    if width is None:
        width = shutil.get_terminal_size((160, 24)).columns
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=True, color_system="standard", width=width,
                  highlight=False, soft_wrap=False)
    for line in head:
        out.print(line, markup=False)
    out.print(findings_table(listed, "findings"))
    for line in boot:
        out.print(line, markup=False)
    out.print(report.counts_line, markup=False)
    out.print(verdict(report))
    return buffer.getvalue()


def first_boot_lines(report: Report, only_failed: bool = False) -> list[str]:
    """``check --boot``: every check offline and after the first boot side by side, the
    changed ones first and marked ``*``, then the first-boot findings of the changed checks
    (with ``only_failed``, the table keeps the changed checks and the failures only)."""
    live = report.first_boot
    prov = provisioning_lines(report)
    if live is None:
        return prov
    table = rows(report.findings, live.findings)
    shown = [r for r in table if not only_failed or r.changed or "fail" in (r.offline, r.live)]
    width = max([len(r.check_id) for r in shown] + [5])
    changed = [r for r in table if r.changed]
    lines = [*prov, "",
             f"first boot: {printable(live.target)}, checked in {live.duration_s:.2f} s",
             *(f"  {printable(n)}" for n in report.notes),
             f"  {'check':{width}}  {'offline':8} after first boot"]
    lines += [f"{'*' if r.changed else ' '} {r.check_id:{width}}  {r.offline:8} {r.live}"
              for r in shown]
    if not changed:
        lines.append("no check changed after the first boot")
        return lines
    lines += ["", f"changed after the first boot ({len(changed)}):"]
    ids = {r.check_id for r in changed}
    lines += finding_lines([f for f in live.listed() if f.check_id in ids])
    return lines


def provisioning_lines(report: Report) -> list[str]:
    """``check --boot``'s provisioning verdict (:func:`verdict_lines`); the notes go with it
    when the VM did not provision, as there is then no first-boot section to carry them."""
    if report.provisioning is None:
        return []
    notes = report.notes if report.first_boot is None else ()
    return ["", *verdict_lines(report.provisioning, "provisioning", notes)]


def verdict_lines(prov: Mapping[str, object], head: str, notes: Sequence[str] = ()) -> list[str]:
    """A provisioning verdict (its JSON form) as text, for ``check --boot`` and ``vm boot
    --provision`` alike: one line, what was overridden, what the image says, and on a failure
    what was seen (health reports, DHCP, requests, console lines)."""
    ok = bool(prov.get("provisioned"))
    took = prov.get("seconds_login") or prov.get("seconds_ready")
    lines = [f"{head}: {'provisioned' if ok else 'NOT PROVISIONED'}"
             f"{f' in {took} s' if ok and took else ''} (by {prov.get('by')}): "
             f"{printable(str(prov.get('reason')))}"]
    lines += [f"  override: {printable(str(o))} (on the private copy, needed under QEMU only)"
              for o in _strings(prov.get("overrides"))]
    lines += [f"  image: {printable(s)}" for s in _strings(prov.get("image_says"))]
    if not ok:
        lines += [f"  {printable(n)}" for n in notes]
        for label in ("health", "dhcp", "requests", "console"):
            seen = _strings(prov.get(label))
            lines.append(f"  {label}:" + ("" if seen else " none"))
            lines += [f"    | {printable(s)}" for s in seen]
    return lines


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _header(report: Report) -> list[str]:
    """Target, kind, role, mode, profile, version; time and cost; the disk's identity; the OS."""
    read = "" if report.bytes_read is None else f", {format_size(report.bytes_read)} read"
    what = ", ".join(p for p in (report.target_kind, report.role, report.mode) if p)
    lines = [
        f"{printable(report.target)} ({what}), profile {report.profile}, "
        f"vmimage {report.tool_version}",
        f"started {report.started.isoformat(timespec='seconds')}, "
        f"took {report.duration_s:.2f} s{read}",
    ]
    disk = [f"{label} {value}" for label, value in identity_rows(report) if label not in _SAID]
    if disk:
        lines.append("disk: " + printable(", ".join(disk)))
    if report.system:
        lines.append("system: " + printable(", ".join(f"{k}={v}"
                                                      for k, v in sorted(report.system.items()))))
    return lines


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
