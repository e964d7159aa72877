"""Golden files: every report format rendered from one fixed sample, compared byte for byte.

A change to a format shows up as a diff of ``tests/golden/`` in review. After an intended
change, regenerate them and read the diff:

    VMIMAGE_REGEN_GOLDEN=1 python3 -m pytest tests/test_report_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report_samples import sample_report
from vmimage.report import FORMATS
from vmimage.report.render import render

GOLDEN = Path(__file__).parent / "golden"
SUFFIX = {"text": "txt", "json": "json", "junit": "xml", "sarif": "sarif.json", "html": "html"}
REGEN = os.environ.get("VMIMAGE_REGEN_GOLDEN") == "1"

#: The sample in its three verdicts: a rule failed, a blocking rule skipped, a full pass; and a
#: pass whose failure a waiver accepts.
SAMPLES = {
    "fail": dict(failing=True),
    "incomplete": dict(failing=False, blocking_skip=True),
    "pass": dict(failing=False),
    "waived": dict(failing=True, waived=True),
}
#: The verdict each sample must have.
VERDICTS = {"fail": "fail", "incomplete": "incomplete", "pass": "pass", "waived": "pass"}


def test_every_format_has_a_golden_suffix() -> None:
    assert set(SUFFIX) == set(FORMATS)


@pytest.mark.parametrize("verdict", sorted(SAMPLES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_format_matches_its_golden_file(fmt: str, verdict: str) -> None:
    report = sample_report(**SAMPLES[verdict])
    assert report.verdict == VERDICTS[verdict]
    text = render(report, fmt)
    path = GOLDEN / f"report-{verdict}.{SUFFIX[fmt]}"
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with VMIMAGE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), \
        f"{path.name} differs: review the change, then regenerate with VMIMAGE_REGEN_GOLDEN=1"


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_failed_matches_its_golden_file(fmt: str) -> None:
    """The failing sample with ``only_failed``: failures, warnings and waived findings only."""
    text = render(sample_report(failing=True), fmt, only_failed=True)
    path = GOLDEN / f"report-fail-only-failed.{SUFFIX[fmt]}"
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with VMIMAGE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), \
        f"{path.name} differs: review the change, then regenerate with VMIMAGE_REGEN_GOLDEN=1"
