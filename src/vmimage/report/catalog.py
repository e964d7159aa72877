"""The check registry rendered for people and programs: ``vmimage checks`` and docs/checks.md.

Both are generated from the same metadata the engine runs, so the list of checks, the doc page
and the coverage of the guide can never disagree with the code.
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from vmimage.checks.registry import CheckMeta
from vmimage.profiles import PROFILE_NAMES, load_profile
from vmimage.report.model import registered
from vmimage.requirements import REQUIREMENTS, guide_requirements


def all_checks() -> list[CheckMeta]:
    """Every registered check, in ID order."""
    return sorted(registered().values(), key=lambda m: m.id)


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


def profile_severities(meta: CheckMeta) -> dict[str, str]:
    """The check's severity under every bundled profile (the profile overrides the default)."""
    return {name: str(load_profile(name).severity.get(meta.id, meta.severity))
            for name in PROFILE_NAMES}


def check_dict(meta: CheckMeta, *, detail: bool = False) -> dict[str, object]:
    """Plain data about one check; ``detail`` adds source file, profiles and rationale."""
    data: dict[str, object] = {
        "id": meta.id,
        "title": meta.title,
        "severity": str(meta.severity),
        "covers": list(meta.covers),
        "os": meta.os,
        "needs": sorted(meta.needs),
        "module": meta.module,
        "remediation": meta.remediation,
    }
    if detail:
        path, line = source_location(meta)
        data["file"] = path
        data["line"] = line
        data["function"] = meta.fn.__name__
        data["rationale"] = inspect.getdoc(meta.fn) or ""
        data["profiles"] = profile_severities(meta)
        data["requirements"] = {c: REQUIREMENTS[c].text if c in REQUIREMENTS else None
                                for c in meta.covers}
    return data


def checks_table(metas: list[CheckMeta]) -> Table:
    """``vmimage checks list``: one row per check."""
    table = Table(title=f"{len(metas)} checks", title_justify="left")
    for column in ("ID", "title", "severity", "covers", "OS", "needs", "module"):
        table.add_column(column)
    for m in metas:
        table.add_row(m.id, escape(m.title), str(m.severity), escape(", ".join(m.covers)), m.os,
                      ", ".join(sorted(m.needs)), m.module)
    return table


def check_detail(meta: CheckMeta) -> Table:
    """``vmimage checks show ID``: everything about one check, its source file first."""
    info = check_dict(meta, detail=True)
    table = Table(title=meta.id, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    covers = "\n".join(f"{c}: {REQUIREMENTS[c].text}" if c in REQUIREMENTS else f"{c}: (unknown)"
                       for c in meta.covers)
    rows = [
        ("file", f"{info['file']}:{info['line']}"),
        ("function", f"{meta.module}.{meta.fn.__name__}"),
        ("title", meta.title),
        ("severity", f"{meta.severity} (default); " + ", ".join(
            f"{k}: {v}" for k, v in profile_severities(meta).items())),
        ("covers", covers),
        ("os", meta.os),
        ("needs", ", ".join(sorted(meta.needs))),
        ("remediation", meta.remediation),
        ("rationale", str(info["rationale"])),
    ]
    for field, value in rows:
        table.add_row(field, escape(value))
    return table


def other_rules() -> list[tuple[str, tuple[str, ...]]]:
    """``(rule ID, covers)`` of the rules that judge an offer or a SAS URI, not an image.

    They live in their own tables (``vmimage.offer.meta.RULES``, ``vmimage.storage.sas_verify
    .RULES``) because they read a manifest or a URL, not a Target; coverage counts them too.
    """
    import vmimage.offer.rules  # noqa: F401 - registers every offer rule
    from vmimage.offer.meta import RULES as OFFER_RULES
    from vmimage.storage.sas_verify import RULES as SAS_RULES

    rules = [(r.id, r.covers) for r in OFFER_RULES.values()]
    rules += [(r.id, (r.covers,)) for r in SAS_RULES.values()]
    return sorted(rules)


def coverage(metas: list[CheckMeta]) -> dict[str, list[str]]:
    """For every known requirement ID, the checks and rules that cover it (empty: none yet)."""
    cover: dict[str, list[str]] = {rid: [] for rid in REQUIREMENTS}
    for rule_id, covers in [(m.id, m.covers) for m in metas] + other_rules():
        for c in covers:
            cover.setdefault(c, []).append(rule_id)
    return cover


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def checks_markdown(metas: list[CheckMeta]) -> str:
    """docs/checks.md: the checks, then every guide requirement with the checks covering it."""
    cover = coverage(metas)
    guide = guide_requirements()
    covered = sum(1 for r in guide if cover[r.id])
    out = [
        "# Checks",
        "",
        "<!-- Generated by scripts/gen-checks-doc.py from the check registry; do not edit. -->",
        "",
        f"{len(metas)} checks. Find a rule's code from its ID with `vmimage checks show ID`.",
        "Severity is the check's default; a profile may change it "
        "(`src/vmimage/profiles/*.toml`).",
        "",
        "| ID | title | severity | OS | needs | covers | module |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in metas:
        out.append(f"| {m.id} | {_cell(m.title)} | {m.severity} | {m.os} | "
                   f"{', '.join(sorted(m.needs))} | {', '.join(m.covers)} | `{m.module}` |")
    out += [
        "",
        "## Coverage of the guide",
        "",
        f"{covered} of the guide's {len(guide)} requirements are covered by at least one check "
        "or rule. Checks (`LINUX-*`, `VHD-*`) judge an image; offer rules (`OFFER-*`, "
        "`vmimage offer validate`) judge a manifest; SAS rules (`SAS-URI-*`, `vmimage sas "
        "verify`) judge a URI. \"not yet covered\" means that nothing cites the ID yet.",
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
