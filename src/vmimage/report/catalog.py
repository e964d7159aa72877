"""The rule registry rendered for people and programs: ``vmimage checks`` and docs/checks.md.

Both are generated from the same metadata the engine runs, so the list of rules, the doc page
and the coverage of the guide can never disagree with the code. The caller (the application
layer) gives the rules and the profiles; this module only renders them.
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from vmimage.profiles import Profile
from vmimage.report.console import Adaptive, field_view
from vmimage.requirements import REQUIREMENTS, guide_requirements
from vmimage.rules import RuleMeta, effective_severity

CheckMeta = RuleMeta


def source_location(meta: CheckMeta) -> tuple[str, int]:
    """The file defining the check and the line of its function: where to read the rule."""
    fn = inspect.unwrap(meta.fn)
    path = Path(inspect.getsourcefile(fn) or inspect.getfile(fn))
    with contextlib.suppress(ValueError):  # shown relative when under the current directory
        path = path.relative_to(Path.cwd())
    try:
        line = inspect.getsourcelines(fn)[1]
    except OSError:  # pragma: no cover - source not shipped
        line = 0
    return str(path), line


def profile_severities(meta: CheckMeta, profiles: dict[str, Profile]) -> dict[str, str]:
    """The rule's severity under every profile (the profile overrides the default); a profile
    that disables the rule says so."""
    return {name: "disabled" if meta.id in p.disabled else str(effective_severity(meta, p))
            for name, p in profiles.items()}


def check_dict(meta: CheckMeta, *, detail: bool = False,
               profiles: dict[str, Profile] | None = None,
               fixed_by: list[str] | None = None) -> dict[str, object]:
    """Plain data about one check; ``detail`` adds source file, profiles, rationale and the
    ``vmimage generalize`` operations that fix it."""
    data: dict[str, object] = {
        "id": meta.id,
        "title": meta.title,
        "severity": str(meta.severity),
        "subject": str(meta.subject),
        "covers": list(meta.covers),
        "os": meta.os,
        "needs": sorted(meta.needs),
        "roles": sorted(meta.roles),
        "module": meta.module,
        "remediation": meta.remediation,
    }
    if detail:
        path, line = source_location(meta)
        data["file"] = path
        data["line"] = line
        data["function"] = meta.fn.__name__
        data["rationale"] = inspect.getdoc(meta.fn) or ""
        data["profiles"] = profile_severities(meta, profiles or {})
        data["requirements"] = {c: REQUIREMENTS[c].text if c in REQUIREMENTS else None
                                for c in meta.covers}
        data["fixed_by"] = list(fixed_by or [])
    return data


def checks_table(metas: list[CheckMeta]) -> RenderableType:
    """``vmimage checks list``: one row per check; at a terminal a table, elsewhere one plain
    line per rule (``ID  severity  subject  OS  title (covers; module)``) for ``grep``."""

    def table() -> Table:
        out = Table(title=f"{len(metas)} rules", title_justify="left")
        for column in ("ID", "title", "severity", "subject", "covers", "OS", "module"):
            out.add_column(column)
        for m in metas:
            out.add_row(m.id, escape(m.title), str(m.severity), str(m.subject),
                        escape(", ".join(m.covers)), m.os, m.module)
        return out

    def lines() -> list[str]:
        width = max((len(m.id) for m in metas), default=0)
        return [f"{len(metas)} rules"] + [
            f"{m.id:<{width}}  {m.severity!s:<7}  {m.subject!s:<8}  {m.os:<7}  {m.title} "
            f"(covers {', '.join(m.covers)}; {m.module})" for m in metas]

    return Adaptive(table, lines)


def check_detail(meta: CheckMeta, profiles: dict[str, Profile],
                 fixed_by: list[str] | None = None) -> RenderableType:
    """``vmimage checks show ID``: everything about one rule, its source file first; at a
    terminal a table, elsewhere ``field: value`` lines."""
    info = check_dict(meta, detail=True, profiles=profiles)
    covers = "\n".join(f"{c}: {REQUIREMENTS[c].text}" if c in REQUIREMENTS else f"{c}: (unknown)"
                       for c in meta.covers)
    rows = [
        ("file", f"{info['file']}:{info['line']}"),
        ("function", f"{meta.module}.{meta.fn.__name__}"),
        ("title", meta.title),
        ("severity", f"{meta.severity} (default); " + ", ".join(
            f"{k}: {v}" for k, v in profile_severities(meta, profiles).items())),
        ("subject", str(meta.subject)),
        ("covers", covers),
        ("os", meta.os),
        ("roles", ", ".join(sorted(meta.roles)) or "(not a disk rule)"),
        ("needs", ", ".join(sorted(meta.needs)) or "nothing"),
        ("remediation", meta.remediation),
        ("fixed by", ", ".join(f"vmimage generalize --operations {n}" for n in fixed_by or [])
         or "no generalize operation"),
        ("rationale", str(info["rationale"])),
    ]

    return field_view(meta.id, rows, escape)


def coverage(metas: list[CheckMeta]) -> dict[str, list[str]]:
    """For every known requirement ID, the rules that cover it (empty: none yet)."""
    cover: dict[str, list[str]] = {rid: [] for rid in REQUIREMENTS}
    for m in metas:
        for c in m.covers:
            cover.setdefault(c, []).append(m.id)
    return cover


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def checks_markdown(metas: list[CheckMeta]) -> str:
    """docs/checks.md: every rule, then every guide requirement with the rules covering it."""
    cover = coverage(metas)
    guide = guide_requirements()
    covered = sum(1 for r in guide if cover[r.id])
    out = [
        "# Checks",
        "",
        "<!-- Generated by scripts/gen-checks-doc.py from the rule registry; do not edit. -->",
        "",
        f"{len(metas)} rules in one registry. Find a rule's code from its ID with "
        "`vmimage checks show ID`. The subject says what a rule reads: `disk` (a disk file's "
        "format and size), `system` (the operating system in an image, a directory or a VM), "
        "`manifest` (`vmimage offer validate`) or `sas-uri` (`vmimage sas verify`). Roles say "
        "which disks a disk or system rule judges. Severity is the rule's default; a profile "
        "may change it (`src/vmimage/profiles/*.toml`).",
        "",
        "| ID | title | severity | subject | OS | roles | needs | covers | module |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in metas:
        out.append(f"| {m.id} | {_cell(m.title)} | {m.severity} | {m.subject} | {m.os} | "
                   f"{', '.join(sorted(m.roles))} | {', '.join(sorted(m.needs))} | "
                   f"{', '.join(m.covers)} | `{m.module}` |")
    out += [
        "",
        "## Coverage of the guide",
        "",
        f"{covered} of the guide's {len(guide)} requirements are covered by at least one rule. "
        "\"not yet covered\" means that nothing cites the ID yet.",
        "",
        "| requirement | section | text | checks and rules |",
        "|---|---|---|---|",
    ]
    for r in guide:
        checks = ", ".join(cover[r.id]) or "not yet covered"
        out.append(f"| {r.id} | {r.section} | {_cell(r.text)} | {checks} |")
    out += [
        "",
        "## Current rules, Microsoft and LISA tests",
        "",
        "Today's rules the guide lacks (`CUR-*`), Microsoft's certification tool (TestIDs) and "
        "policy IDs, and LISA's AzureImageStandard tests (certification-research.md §1.1, §1.2, "
        "§1.5, §1.6, §2.1).",
        "",
        "| reference | text | checks |",
        "|---|---|---|",
    ]
    for rid, r in REQUIREMENTS.items():
        if r.source != "guide":
            checks = ", ".join(cover[rid]) or "not yet covered"
            out.append(f"| {rid} | {_cell(r.text)} | {checks} |")
    unknown = sorted(set(cover) - set(REQUIREMENTS))
    if unknown:
        out += ["", "## Unknown requirement IDs", "",
                "Checks cite these IDs, which `vmimage.requirements` does not know:", ""]
        out += [f"- {rid}: {', '.join(cover[rid])}" for rid in unknown]
    return "\n".join(out) + "\n"
