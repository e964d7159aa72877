"""The report model: verdict, exit code and counts computed once for every format."""

from __future__ import annotations

from tests.report_samples import sample_report
from vmimage.findings import Status


def test_failing_report():
    report = sample_report()
    assert report.exit_code == 1
    assert not report.certified
    assert report.counts == {"pass": 2, "fail": 1, "warning": 1, "skip": 1}
    assert report.counts_line == "2 passed, 1 failed, 1 warnings, 1 skipped"


def test_warnings_do_not_block_certification():
    report = sample_report(failing=False)
    assert report.exit_code == 0
    assert report.certified and report.verdict == "pass"
    assert report.counts["warning"] == 1
    assert report.verdict_line.startswith("PASSES vmimage's offline checks for azure-current")
    assert "1 non-blocking rule skipped" in report.verdict_line


def test_a_skipped_blocking_rule_is_not_a_pass():
    report = sample_report(failing=False, blocking_skip=True)
    assert report.exit_code == 0
    assert not report.certified and report.verdict == "incomplete"
    assert report.skipped_blocking == ["TEST-SSH-ALIVE"]
    assert report.verdict_line.startswith("INCOMPLETE") and "TEST-SSH-ALIVE" in report.verdict_line


def test_a_report_with_no_finding_is_not_a_pass():
    report = sample_report(failing=False)
    report.findings = []
    assert report.verdict == "incomplete" and not report.certified


def test_groups_fail_first():
    groups = sample_report().by_status()
    assert [s for s, _ in groups] == [Status.FAIL, Status.WARNING, Status.PASS, Status.SKIP]
    assert [len(fs) for _, fs in groups] == [1, 1, 2, 1]


def test_covered_requirements():
    assert "LISA-verify_bash_history_is_empty" in sample_report().covered()
