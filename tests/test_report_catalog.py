"""``vmimage checks`` and docs/checks.md, both generated from the registry."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from vmimage.cli import checks
from vmimage.errors import InputError
from vmimage.report.catalog import all_checks, checks_markdown, coverage
from vmimage.requirements import guide_requirements

DOC = Path(__file__).resolve().parent.parent / "docs" / "checks.md"
_app = typer.Typer()
_app.add_typer(checks.app, name="checks")


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
    assert {"id", "title", "severity", "covers", "os", "needs", "module"} <= rows[0].keys()


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
    assert isinstance(result.exception, InputError)
