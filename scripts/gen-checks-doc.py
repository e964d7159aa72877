#!/usr/bin/env python3
"""Regenerate docs/checks.md from the rule registry.

    python3 scripts/gen-checks-doc.py           # rewrite docs/checks.md
    python3 scripts/gen-checks-doc.py --check   # exit 1 if it is out of date (CI)

The page is generated so that it cannot drift from the code: tests/test_report_catalog.py fails
when a check is added or changed without running this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmimage.app.catalog import all_rules
from vmimage.report.catalog import checks_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "checks.md"


def main() -> int:
    """Write (or with ``--check`` compare) the page; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args()
    text = checks_markdown(all_rules())
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if args.check:
        if current != text:
            print(f"{DOC}: out of date; run python3 scripts/gen-checks-doc.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        DOC.write_text(text, encoding="utf-8")
        print(f"{DOC}: updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
