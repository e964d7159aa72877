"""The JSON report: versioned, and valid against its bundled JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.report_samples import HOSTILE, WAIVER, real_report, sample_report
from vmimage.report import json_report
from vmimage.report.render import render


def _validator() -> jsonschema.Draft202012Validator:
    schema = json_report.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_schema_identity_matches_the_document():
    schema = json_report.schema()
    assert schema["$id"] == json_report.SCHEMA_ID
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": json_report.SCHEMA_VERSION}


@pytest.mark.parametrize("failing", [True, False])
def test_sample_report_validates(failing):
    doc = json.loads(render(sample_report(failing=failing), "json"))
    _validator().validate(doc)
    assert doc["schema"] == json_report.SCHEMA_ID
    assert doc["schema_version"] == 1
    assert doc["summary"]["certified"] is not failing
    assert doc["summary"]["exit_code"] == (1 if failing else 0)


def test_real_report_validates(tmp_path):
    report = real_report(tmp_path)
    doc = json.loads(render(report, "json"))
    _validator().validate(doc)
    assert doc["disk"]["format"] == "vhd-fixed"
    assert {f["check_id"] for f in doc["findings"]} >= {"VHD-FIXED-FORMAT", "VHD-FOOTER-VALID"}


def test_findings_carry_everything():
    doc = json.loads(render(sample_report(), "json"))
    failed = [f for f in doc["findings"] if f["status"] == "fail"]
    assert len(failed) == 1
    f = failed[0]
    assert f["message"] == HOSTILE  # exact content: JSON escapes, it does not rewrite
    assert f["covers"] == ["LNX-HISTORY", "MS-48", "LISA-verify_bash_history_is_empty"]
    assert f["evidence"][0] == {"path": "/home/a b/.bash_history", "line": 3, "seen": HOSTILE,
                                "required": "0 bytes"}
    assert f["severity"] == "fail"
    assert doc["requirements"]["MS-48"]["source"] == "ms-tool"
    assert doc["summary"]["counts"] == {"pass": 2, "fail": 1, "warning": 1, "skip": 1,
                                        "waived": 0}
    assert f["waiver"] is None


def test_severity_of_a_pass_or_skip_is_what_the_engine_gave_it():
    doc = json.loads(render(sample_report(), "json"))
    by_id = {f["check_id"]: f for f in doc["findings"]}
    assert by_id["VHD-FIXED-FORMAT"]["severity"] == "fail"
    assert by_id["TEST-SSH-ALIVE"]["severity"] == "warning"


def test_verdict_says_what_was_examined():
    doc = json.loads(render(sample_report(failing=False, blocking_skip=True), "json"))
    summary = doc["summary"]
    assert summary["verdict"] == "incomplete" and summary["certified"] is False
    assert summary["skipped_blocking"] == ["TEST-SSH-ALIVE"]
    assert summary["exit_code"] == 0 and "INCOMPLETE" in summary["verdict_line"]
    assert doc["mode"] == "offline" and doc["target"]["role"] == "os-linux"


def test_findings_are_sorted():
    doc = json.loads(render(sample_report(), "json"))
    keys = [(f["check_id"], f["message"]) for f in doc["findings"]]
    assert keys == sorted(keys)


def test_identity_is_in_the_target():
    doc = json.loads(render(sample_report(), "json"))
    assert doc["target"]["identity"] == {"partition_table": "mbr",
                                         "partition_table_id": "1234abcd"}
    report = sample_report()
    report.identity = {}
    assert json.loads(render(report, "json"))["target"]["identity"] == {}


def test_waived_finding_keeps_its_status_and_says_why():
    doc = json.loads(render(sample_report(waived=True), "json"))
    _validator().validate(doc)
    waived = next(f for f in doc["findings"] if f["check_id"] == "TEST-HISTORY")
    assert waived["status"] == "fail" and waived["waiver"] == WAIVER
    summary = doc["summary"]
    assert summary["exit_code"] == 0 and summary["verdict"] == "pass"
    assert summary["counts"] == {"pass": 2, "fail": 0, "warning": 1, "skip": 1, "waived": 1}


@pytest.mark.parametrize("waived", [False, True])
def test_only_failed_drops_passes_and_skips_but_counts_everything(waived):
    doc = json.loads(render(sample_report(waived=waived), "json", only_failed=True))
    _validator().validate(doc)
    assert [f["check_id"] for f in doc["findings"]] == ["TEST-HISTORY", "VHD-SPARSE"]
    assert doc["summary"]["only_failed"] is True and doc["summary"]["total"] == 5
    assert doc["summary"]["counts"]["pass"] == 2
    assert "LNX-GENERALIZED" not in doc["requirements"]  # covered by a pass only
    assert json.loads(render(sample_report(), "json"))["summary"]["only_failed"] is False


def test_documents_of_before_the_waivers_still_validate():
    """Version 1 only gains optional keys: a document without them is still valid."""
    doc = json.loads(render(sample_report(), "json"))
    del doc["target"]["identity"], doc["summary"]["only_failed"]
    del doc["summary"]["counts"]["waived"]
    for f in doc["findings"]:
        del f["waiver"]
    _validator().validate(doc)


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("findings"),
    lambda d: d.update(schema_version=2),
    lambda d: d["findings"][0].update(status="error"),
    lambda d: d["findings"][0]["evidence"].append({"path": "/x"}),
    lambda d: d["summary"]["counts"].pop("skip"),
    lambda d: d["findings"][0].update(waiver=3),
    lambda d: d["target"]["identity"].update(partition_table="apm"),
    lambda d: d["target"]["identity"].update(partition_table_id="0x1234ABCD"),
    lambda d: d["summary"]["counts"].update(waived=-1),
])
def test_schema_rejects_broken_documents(mutate):
    doc = json.loads(render(sample_report(), "json"))
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(doc)
