"""SARIF 2.1.0: valid against the official schema's definitions, rules from the registry."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.report_samples import real_report, sample_report
from vmimage.report import sarif
from vmimage.report.render import render

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json")
                    .read_text(encoding="utf-8"))


def _validate(log):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(log)
    run = log["runs"][0]
    for inv in run["invocations"]:  # date-time formats, checked without optional packages
        for key in ("startTimeUtc", "endTimeUtc"):
            assert inv[key].endswith("Z")
            datetime.fromisoformat(inv[key])
    assert urlsplit(run["tool"]["driver"]["informationUri"]).scheme == "https"
    for result in run["results"]:
        # §3.27.10: any kind but "fail" has level "none".
        assert (result["kind"] == "fail") == (result["level"] != "none")
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


@pytest.fixture
def log():
    return json.loads(render(sample_report(), "sarif"))


def test_valid(log):
    _validate(log)
    assert log["version"] == "2.1.0"
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "vmimage"
    assert driver["version"] == "0.1.0"


def test_statuses_map_to_kind_and_level(log):
    results = log["runs"][0]["results"]
    seen = {(r["properties"]["status"], r["kind"], r["level"]) for r in results}
    assert seen == {("fail", "fail", "error"), ("warning", "fail", "warning"),
                    ("pass", "pass", "none"), ("skip", "notApplicable", "none")}


def test_rules_come_from_the_registry(log):
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    fixed = rules["VHD-FIXED-FORMAT"]
    assert fixed["shortDescription"]["text"] == "The disk is a fixed-format VHD"
    assert fixed["help"]["text"].startswith("Convert it")
    assert "LNX-OS-SIZE" in fixed["properties"]["covers"]
    assert fixed["defaultConfiguration"]["level"] == "error"
    assert rules["VHD-SPARSE"]["defaultConfiguration"]["level"] == "warning"
    # An unregistered check still gets a rule, from its finding.
    assert rules["TEST-HISTORY"]["properties"]["covers"][0] == "LNX-HISTORY"


def test_locations_are_relative_to_the_image_root(log):
    failed = next(r for r in log["runs"][0]["results"] if r["kind"] == "fail"
                  and r["level"] == "error")
    loc = failed["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "home/a%20b/.bash_history",
                                       "uriBaseId": sarif.ROOT_BASE}
    assert loc["region"] == {"startLine": 3}
    related = failed["relatedLocations"][0]["physicalLocation"]
    assert related["artifactLocation"]["uri"] == "home/c/.zsh_history"
    disk = next(r for r in log["runs"][0]["results"] if r["ruleId"] == "VHD-FIXED-FORMAT")
    # Evidence naming the target itself points at it as given, not inside the image.
    assert disk["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "disk.vhd"}


def test_real_report(tmp_path):
    report = real_report(tmp_path)
    log = json.loads(render(report, "sarif"))
    _validate(log)
    assert len(log["runs"][0]["results"]) == len(report.findings)


def test_waived_result_is_suppressed_with_its_justification():
    from tests.report_samples import WAIVER

    log = json.loads(render(sample_report(waived=True), "sarif"))
    _validate(log)
    results = log["runs"][0]["results"]
    waived = next(r for r in results if r["ruleId"] == "TEST-HISTORY")
    assert waived["kind"] == "fail" and waived["level"] == "error"  # what was found stays
    assert waived["suppressions"] == [{"kind": "external", "status": "accepted",
                                       "justification": WAIVER}]
    assert waived["properties"]["waiver"] == WAIVER
    assert not [r for r in results if r["ruleId"] != "TEST-HISTORY" and "suppressions" in r]
    assert log["runs"][0]["invocations"][0]["exitCode"] == 0
    assert log["runs"][0]["properties"]["counts"]["waived"] == 1


def test_only_failed_keeps_results_and_rules_consistent():
    log = json.loads(render(sample_report(), "sarif", only_failed=True))
    _validate(log)
    run = log["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["TEST-HISTORY", "VHD-SPARSE"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["TEST-HISTORY", "VHD-SPARSE"]
    assert run["properties"]["onlyFailed"] is True
    assert run["properties"]["counts"]["pass"] == 2


def test_identity_in_the_run_properties(log):
    assert log["runs"][0]["properties"]["identity"]["partition_table_id"] == "1234abcd"
