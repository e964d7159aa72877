"""``vmimage checks`` and docs/checks.md, both generated from the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmimage.app.catalog import all_rules as all_checks
from vmimage.cli import run
from vmimage.errors import InputError
from vmimage.report.catalog import checks_markdown, coverage
from vmimage.requirements import guide_requirements

DOC = Path(__file__).resolve().parent.parent / "docs" / "checks.md"


@dataclass
class _Result:
    exit_code: int | None
    output: str
    exception: BaseException | None


class CliRunner:
    """Runs ``vmimage ARGS`` in-process, as the typer test runner did: output captured,
    the exception kept (stdout is not a terminal, as in a pipe)."""

    def invoke(self, _app: object, args: list[str]) -> _Result:
        import contextlib
        import io

        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                code = run(args)
        except Exception as exc:  # the test looks at it
            return _Result(None, out.getvalue(), exc)
        return _Result(code, out.getvalue(), None)


_app = None


def test_docs_checks_md_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == checks_markdown(all_checks()), \
        "docs/checks.md is stale: run python3 scripts/gen-checks-doc.py"


def test_doc_lists_every_check_and_every_guide_requirement():
    text = checks_markdown(all_checks())
    for m in all_checks():
        assert f"| {m.id} |" in text
    cover = coverage(all_checks())
    for r in guide_requirements():
        row = next(line for line in text.splitlines() if line.startswith(f"| {r.id} |"))
        assert row.endswith("| not yet covered |") == (not cover[r.id])


def test_list_json():
    result = CliRunner().invoke(_app, ["checks", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == [m.id for m in all_checks()]
    assert {"id", "title", "severity", "subject", "covers", "os", "needs", "roles",
            "module"} <= rows[0].keys()
    subjects = {r["subject"] for r in rows}
    assert subjects == {"disk", "system", "manifest", "sas-uri"}


def test_list_text():
    result = CliRunner().invoke(_app, ["checks", "list"])
    assert result.exit_code == 0, result.output
    assert "VHD-FIXED-FORMAT" in result.output
    assert "\x1b" not in result.output


def test_show_names_the_file():
    result = CliRunner().invoke(_app, ["checks", "show", "VHD-FIXED-FORMAT", "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert Path(info["file"]).name == "vhd_format.py"
    assert info["line"] > 0
    assert info["profiles"].keys() == {"azure-2015", "azure-current"}
    text = CliRunner().invoke(_app, ["checks", "show", "vhd-fixed-format"])
    assert "vhd_format.py:" in text.output


def test_show_unknown_id_suggests():
    result = CliRunner().invoke(_app, ["checks", "show", "VHD-FIXD-FORMAT"])
    assert isinstance(result.exception, InputError)
    assert "VHD-FIXED-FORMAT" in str(result.exception)


def test_bad_format():
    result = CliRunner().invoke(_app, ["checks", "list", "--format", "xml"])
    assert result.exception is not None and "xml" in str(result.exception)


def test_list_text_is_plain_lines_when_not_a_terminal():
    from vmimage.report.catalog import checks_table
    from vmimage.report.console import console

    out = console()  # pytest's stdout is not a terminal
    with out.capture() as cap:
        out.print(checks_table(all_checks()))
    lines = cap.get().splitlines()
    assert lines[0] == f"{len(all_checks())} rules"
    assert not any(c in cap.get() for c in "┏┃│─")
    row = next(line for line in lines if line.startswith("VHD-FIXED-FORMAT "))
    assert "fail" in row.split() and "The disk is a fixed-format VHD" in row
    assert all(line == line.rstrip() for line in lines)  # no padding to a width


def test_show_text_is_field_lines_when_not_a_terminal():
    from vmimage.app.catalog import find_rule, profiles
    from vmimage.report.catalog import check_detail
    from vmimage.report.console import console

    out = console()
    with out.capture() as cap:
        out.print(check_detail(find_rule("VHD-FIXED-FORMAT"), profiles()))
    lines = cap.get().splitlines()
    assert lines[0] == "VHD-FIXED-FORMAT"
    assert any(line.startswith("file: ") and "vhd_format.py:" in line for line in lines)
    assert any(line.startswith("remediation: Convert it") for line in lines)


def test_list_at_a_terminal_is_a_table():
    import io

    from rich.console import Console

    from vmimage.report.catalog import checks_table

    out = Console(file=io.StringIO(), force_terminal=True, width=200)
    out.print(checks_table(all_checks()))
    assert "┏" in out.file.getvalue() and "VHD-FIXED-FORMAT" in out.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("rule_id", "module"), [
    ("OFFER-LUNS", "vmimage.offer.rules.images"),
    ("SAS-URI-SCHEME", "vmimage.storage.sas_rules.offline"),
    ("LINUX-NO-SWAP", "vmimage.checks.linux.swap"),
    ("VHD-FIXED-FORMAT", "vmimage.checks.vhd_format"),
])
def test_show_finds_every_family(rule_id, module):
    result = CliRunner().invoke(_app, ["checks", "show", rule_id, "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["module"] == module and info["id"] == rule_id
    assert Path(info["file"]).is_file() and info["line"] > 0


def test_profile_severity_shows_per_profile():
    info = json.loads(CliRunner().invoke(
        _app, ["checks", "show", "SAS-URI-SCHEME", "--format", "json"]).output)
    assert info["profiles"] == {"azure-2015": "warning", "azure-current": "fail"}


def test_every_rule_family_is_in_the_doc():
    text = DOC.read_text(encoding="utf-8")
    for rule_id in ("OFFER-MANIFEST", "SAS-URI-DISTINCT", "VHD-SPARSE", "LINUX-NO-SWAP"):
        assert f"| {rule_id} |" in text
