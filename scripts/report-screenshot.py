#!/usr/bin/env python3
"""Take docs/report-screenshot.png: the HTML report of a realistic failing check at 1280 px.

    python3 scripts/report-screenshot.py              # rewrite docs/report-screenshot.png
    python3 scripts/report-screenshot.py --html F     # also keep the page that was shot

The report is the one tests/test_report_browser.py checks (``tests.report_samples.long_report``:
real rule IDs, titles and fixes from the registry; long evidence; a waived failure), rendered
by the same code as ``vmimage check --format html`` and opened in Debian's headless Chromium
(``apt-get install --no-install-recommends chromium``) through Playwright. Run it after a
change to the HTML report, and look at the picture before committing it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "report-screenshot.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    """Render, open, shoot; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC, help=f"the PNG (default {DOC})")
    parser.add_argument("--html", type=Path, help="also write the HTML page here")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))  # tests.report_samples holds the realistic report
    from playwright.sync_api import sync_playwright
    from tests.report_samples import long_report

    from vmimage.report.render import render

    page_html = render(long_report(), "html")
    with tempfile.TemporaryDirectory() as tmp:
        html = args.html or Path(tmp) / "report.html"
        html.write_text(page_html, encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(html.resolve().as_uri())
                page.screenshot(path=str(args.out), full_page=True)
            finally:
                browser.close()
    print(f"{args.out}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
