"""The HTML report in a real browser: nothing cut off at 1280 px, what to fix in sight.

Headless Chromium (Debian's ``chromium`` package, driven by Playwright, which cannot download
its own browser here) opens each report at a 1280 x 800 viewport and takes a screenshot; the
assertions are on element geometry, the way a reader would notice a problem: an evidence
column a few characters wide (the old layout gave it six), text running out of its cell, a
table wider than the window, a fix that is not shown, passes that bury the failures.

Without ``/usr/bin/chromium`` the test is skipped on a workstation and fails in CI (``CI``
set), so a missing browser can never pass silently there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import launched
from tests.report_samples import long_report, real_report, sample_report
from vmimage.report.model import Report
from vmimage.report.render import render

WIDTH, HEIGHT = 1280, 800
#: The narrowest an evidence block may be: a path and a value side by side.
MIN_EVIDENCE_WIDTH = 300

#: Every element of the findings tables whose content is wider than its box, and the sizes
#: the assertions need, measured in the page.
_GEOMETRY = """() => {
  const out = {overflowing: [], evidence: [], tables: [], fixes: []};
  for (const table of document.querySelectorAll("table.findings")) {
    const r = table.getBoundingClientRect();
    if (r.width === 0) continue;  // inside a closed <details>
    out.tables.push({left: r.left, right: r.right});
    for (const el of table.querySelectorAll("*")) {
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
        out.overflowing.push(`${el.tagName}.${el.className} ${el.scrollWidth}>` +
                             `${el.clientWidth}: ${el.textContent.slice(0, 80)}`);
      }
    }
  }
  for (const td of document.querySelectorAll("tr.evidence > td")) {
    const r = td.getBoundingClientRect();
    if (r.width > 0) out.evidence.push(r.width);
  }
  for (const td of document.querySelectorAll("#fail tr.fix > td")) {
    const r = td.getBoundingClientRect();
    out.fixes.push({width: r.width, height: r.height, right: r.right});
  }
  out.pageWidth = document.documentElement.scrollWidth;
  return out;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page_of(browser: Any, tmp_path: Path) -> Iterator[Callable[[Report, str], Any]]:
    """Open a report's HTML as a file at 1280 x 800 and save a full-page screenshot."""
    pages: list[Any] = []

    def open_report(report: Report, name: str) -> Any:
        html = tmp_path / f"{name}.html"
        html.write_text(render(report, "html"), encoding="utf-8")
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        pages.append(page)
        page.goto(html.as_uri())
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert _png_size(shot)[0] == WIDTH
        return page

    yield open_report
    for page in pages:
        page.close()


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


REPORTS: dict[str, Callable[[Path], Report]] = {
    "sample": lambda _: sample_report(),
    "waived": lambda _: sample_report(waived=True),
    "long": lambda _: long_report(),
    "real": real_report,
}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_nothing_is_cut_off_at_1280_px(page_of: Callable[[Report, str], Any], name: str,
                                       tmp_path: Path) -> None:
    page = page_of(REPORTS[name](tmp_path), name)
    geometry = page.evaluate(_GEOMETRY)
    assert geometry["pageWidth"] <= WIDTH, "the page scrolls sideways"
    assert geometry["tables"], "no findings table is shown"
    for table in geometry["tables"]:
        assert table["left"] >= 0 and table["right"] <= WIDTH, table
    assert geometry["overflowing"] == []
    for width in geometry["evidence"]:
        assert width >= MIN_EVIDENCE_WIDTH, f"an evidence block is {width:.0f} px wide"


def test_long_evidence_wraps_inside_its_row(page_of: Callable[[Report, str], Any]) -> None:
    page = page_of(long_report(), "long")
    geometry = page.evaluate(_GEOMETRY)
    assert len(geometry["evidence"]) == 7  # every failure, warning and waived finding
    assert min(geometry["evidence"]) >= 900  # its own row, across the table
    token = page.locator("#fail tr.evidence code", has_text="builder@ci").first
    box = token.bounding_box()
    assert box is not None and box["x"] + box["width"] <= WIDTH
    assert box["height"] > 40  # the 300-character key wrapped onto several lines


def test_failures_first_with_their_fix_in_sight(page_of: Callable[[Report, str], Any]) -> None:
    page = page_of(long_report(), "long")
    geometry = page.evaluate(_GEOMETRY)
    assert len(geometry["fixes"]) == 4
    for fix in geometry["fixes"]:
        assert fix["width"] >= MIN_EVIDENCE_WIDTH and fix["height"] > 0
        assert fix["right"] <= WIDTH
    for row in page.locator("#fail tr.fix").all():
        assert row.is_visible()
    first = page.locator("section.group, details.group").first
    assert first.get_attribute("id") == "fail"
    fail_top = page.locator("#fail").bounding_box()
    assert fail_top is not None and fail_top["y"] < HEIGHT  # on the first screen
    assert page.locator("#fail tr.fix").first.text_content().startswith("Fix")


def test_passes_are_collapsed_until_opened(page_of: Callable[[Report, str], Any]) -> None:
    page = page_of(long_report(), "long")
    passes = page.locator("details#pass")
    assert passes.get_attribute("open") is None
    first_pass = page.locator("#pass tbody.finding").first
    assert not first_pass.is_visible()
    page.locator("details#pass > summary").click()
    assert first_pass.is_visible()
    geometry = page.evaluate(_GEOMETRY)  # opened, the passes fit as well
    assert geometry["overflowing"] == [] and geometry["pageWidth"] <= WIDTH


def test_waived_findings_show_their_waiver(page_of: Callable[[Report, str], Any]) -> None:
    page = page_of(sample_report(waived=True), "waived")
    waiver = page.locator("#waived tr.waiver")
    assert waiver.is_visible()
    assert "waived until 2027-03-01" in (waiver.text_content() or "")
    assert page.locator("#waived code", has_text="audit").is_visible()
