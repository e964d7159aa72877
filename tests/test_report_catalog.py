"""``vmimage checks`` and docs/checks.md, both generated from the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vmimage.app.catalog import all_rules as all_checks
from vmimage.cli import checks
from vmimage.errors import InputError
from vmimage.report.catalog import checks_markdown, coverage
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
    assert isinstance(result.exception, InputError)


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
