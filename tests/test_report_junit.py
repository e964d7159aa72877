"""JUnit XML: one suite, one testcase per finding, parsed by junitparser and the stdlib."""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
import junitparser
import pytest

from tests.report_samples import real_report, sample_report
from vmimage.report.render import render


@pytest.fixture
def xml_file(tmp_path):
    path = tmp_path / "report.xml"
    path.write_text(render(sample_report(), "junit"), encoding="utf-8")
    return path


def test_junitparser_reads_one_suite(xml_file):
    xml = junitparser.JUnitXml.fromfile(str(xml_file))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.tests == 5
    assert suite.failures == 1
    assert suite.skipped == 1
    assert suite.errors == 0
    cases = list(suite)
    assert [c.classname for c in cases] == sorted(c.classname for c in cases)
    outcome = {}
    for case in cases:
        kinds = sorted(type(r).__name__ for r in case.result)
        outcome.setdefault(case.classname, []).append(kinds)
    assert outcome["TEST-HISTORY"] == [["Failure"]]
    assert outcome["TEST-SSH-ALIVE"] == [["Skipped"]]
    assert outcome["VHD-SPARSE"] == [[]]  # a warning passes


def test_warning_is_a_passing_case_with_its_warning_in_system_out(xml_file):
    suite = next(iter(junitparser.JUnitXml.fromfile(str(xml_file))))
    case = next(c for c in suite if c.classname == "VHD-SPARSE")
    assert case.is_passed
    assert case.system_out.startswith("WARNING: the file is not sparse")
    assert "fix: Make a sparse copy: `fallocate --dig-holes disk.vhd`." in case.system_out


def test_one_case_per_rule_named_by_its_title(xml_file):
    suite = next(iter(junitparser.JUnitXml.fromfile(str(xml_file))))
    classnames = [c.classname for c in suite]
    assert len(classnames) == len(set(classnames))
    single = [c.name for c in suite if c.classname == "VHD-SPARSE"]
    assert single == ["The VHD file is sparse"]


def test_stdlib_parser_reads_failure_and_control_characters(xml_file):
    root = SafeET.parse(str(xml_file)).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["profile"] == "azure-current"
    assert props["certified"] == "false"
    failure = suite.find("testcase/failure")
    assert failure is not None
    message = failure.get("message")
    assert "<script>" in message  # escaped in the file, the text itself after parsing
    assert "\\x1b[31m" in message and "\\x00" in message  # controls shown, not embedded
    assert "evidence: /home/a b/.bash_history:3" in failure.text
    assert "fix: Delete the file & regeneralize <now>." in failure.text


def test_real_report(tmp_path):
    report = real_report(tmp_path)
    root = SafeET.fromstring(render(report, "junit").encode())
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(report.findings)
    assert {c.get("classname") for c in cases} >= {"VHD-FIXED-FORMAT", "VHD-WHOLE-MIB"}


def test_waived_failure_is_a_skipped_case_naming_the_waiver(tmp_path):
    from tests.report_samples import WAIVER

    path = tmp_path / "waived.xml"
    path.write_text(render(sample_report(waived=True), "junit"), encoding="utf-8")
    suite = next(iter(junitparser.JUnitXml.fromfile(str(path))))
    assert suite.failures == 0 and suite.skipped == 2 and suite.tests == 5
    case = next(c for c in suite if c.classname == "TEST-HISTORY")
    assert case.is_skipped
    [skipped] = case.result
    assert skipped.message == f"WAIVED: {WAIVER}"
    assert case.system_out.startswith("WAIVED FAIL: ")
    assert f"waiver: {WAIVER}" in case.system_out
    props = {p.get("name"): p.get("value")
             for p in SafeET.parse(str(path)).getroot().iter("property")}
    assert props["certified"] == "true" and props["summary"].endswith(", 1 waived")


def test_only_failed_writes_only_failures_and_warnings(tmp_path):
    path = tmp_path / "only.xml"
    path.write_text(render(sample_report(), "junit", only_failed=True), encoding="utf-8")
    suite = next(iter(junitparser.JUnitXml.fromfile(str(path))))
    assert sorted(c.classname for c in suite) == ["TEST-HISTORY", "VHD-SPARSE"]
    assert suite.tests == 2 and suite.failures == 1 and suite.skipped == 0
    props = {p.get("name"): p.get("value")
             for p in SafeET.parse(str(path)).getroot().iter("property")}
    assert props["summary"] == "2 passed, 1 failed, 1 warnings, 1 skipped"
    assert props["identity.partition_table_id"] == "1234abcd"
