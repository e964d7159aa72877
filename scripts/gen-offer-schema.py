#!/usr/bin/env python3
"""Write src/vmimage/schemas/offer-manifest.json from the manifest models.

Run after changing vmimage/offer/model.py; tests/test_offer_schema.py fails while it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vmimage.offer.schema import SCHEMA_PATH, schema_text

OUT = Path(__file__).resolve().parent.parent / "src" / "vmimage" / SCHEMA_PATH


def main() -> int:
    """Write the schema; with ``--check``, exit 1 when the file differs instead."""
    text = schema_text()
    if "--check" in sys.argv[1:]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: run scripts/gen-offer-schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
