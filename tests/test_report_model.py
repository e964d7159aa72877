"""The report model: verdict, exit code and counts computed once for every format."""

from __future__ import annotations

from dataclasses import replace

from tests.report_samples import UNIQUE_ID, WAIVER, sample_report
from vmimage.findings import Status, worst_exit_code


def test_failing_report():
    report = sample_report()
    assert report.exit_code == 1
    assert not report.certified
    assert report.counts == {"pass": 2, "fail": 1, "warning": 1, "skip": 1, "waived": 0}
    assert report.counts_line == "2 passed, 1 failed, 1 warnings, 1 skipped"
    assert report.failed_ids == ["TEST-HISTORY"]


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


def test_groups_put_waived_after_warnings():
    groups = sample_report(waived=True).groups()
    assert [g for g, _ in groups] == ["fail", "warning", "waived", "pass", "skip"]
    assert [[f.check_id for f in fs] for _, fs in groups] == [
        [], ["VHD-SPARSE"], ["TEST-HISTORY"], ["TEST-MACHINE-ID", "VHD-FIXED-FORMAT"],
        ["TEST-SSH-ALIVE"]]


def test_covered_requirements():
    assert "LISA-verify_bash_history_is_empty" in sample_report().covered()
    assert "LNX-GENERALIZED" not in sample_report().covered(only_failed=True)


# -- waivers: the status stays, nothing counts as failing -----------------------------------

def test_a_waived_failure_blocks_nothing():
    report = sample_report(waived=True)
    waived = next(f for f in report.findings if f.check_id == "TEST-HISTORY")
    assert waived.status is Status.FAIL and waived.waived and not waived.failing
    assert report.exit_code == 0 and worst_exit_code(report.findings) == 0
    assert report.verdict == "pass" and report.certified
    assert report.counts == {"pass": 2, "fail": 0, "warning": 1, "skip": 1, "waived": 1}
    assert sum(report.counts.values()) == len(report.findings)
    assert report.counts_line == "2 passed, 0 failed, 1 warnings, 1 skipped, 1 waived"
    assert report.failed_ids == [] and report.waived_ids == ["TEST-HISTORY"]
    assert "1 waived (TEST-HISTORY)" in report.verdict_line
    assert waived.to_dict()["waiver"] == WAIVER


def test_a_waived_warning_is_counted_as_waived():
    report = sample_report(failing=False)
    report.findings = [replace(f, waiver="accepted") if f.status is Status.WARNING else f
                       for f in report.findings]
    assert report.counts["warning"] == 0 and report.counts["waived"] == 1
    assert report.verdict == "pass"


def test_failures_next_to_a_waived_one_are_still_named():
    report = sample_report(waived=True)
    report.findings.append(replace(report.findings[-1], check_id="TEST-OTHER", waiver=None))
    assert report.exit_code == 1 and report.verdict == "fail"
    assert report.verdict_line.endswith("1 rule failed (TEST-OTHER); 1 waived (TEST-HISTORY)")


def test_a_waived_blocking_skip_is_not_incomplete():
    report = sample_report(failing=False, blocking_skip=True)
    report.findings = [replace(f, waiver="not applicable to us") if f.status is Status.SKIP
                       else f for f in report.findings]
    assert report.skipped_blocking == [] and report.verdict == "pass"


def test_a_waiver_on_a_pass_waives_nothing():
    report = sample_report(failing=False)
    report.findings = [replace(f, waiver="unused") if f.status is Status.PASS else f
                       for f in report.findings]
    assert not any(f.waived for f in report.findings)
    assert report.counts["pass"] == 2 and report.counts["waived"] == 0


def test_only_failed_lists_violations_and_keeps_the_counts():
    report = sample_report(waived=True)
    listed = report.listed(only_failed=True)
    assert [f.check_id for f in listed] == ["TEST-HISTORY", "VHD-SPARSE"]
    assert report.counts["pass"] == 2 and len(report.listed()) == 5


# -- identity ---------------------------------------------------------------------------------

def test_identity_rows_name_the_disk():
    from vmimage.report.model import identity_rows

    rows = dict(identity_rows(sample_report()))
    assert rows["file"] == "disk.vhd"
    assert rows["size"] == "30 GiB (32212254720 bytes)"
    assert rows["VHD unique ID"] == UNIQUE_ID
    assert rows["partition table ID"] == "1234abcd (MBR)"
    assert rows["vmimage"] == "0.1.0" and rows["profile"] == "azure-current"
    assert rows["time"] == "2025-01-02T03:04:05+00:00"


def test_identity_rows_of_a_directory():
    from vmimage.report.model import identity_rows

    report = sample_report()
    report.target, report.target_kind, report.disk, report.identity = "/mnt/root", \
        "directory", None, {}
    labels = [label for label, _ in identity_rows(report)]
    assert labels == ["target", "vmimage", "profile", "time"]
