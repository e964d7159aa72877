"""The vendored requirement table matches the guide, and every check cites known IDs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vmimage.app.catalog import all_rules
from vmimage.requirements import GUIDE, REQUIREMENTS, guide_requirements, unknown
from vmimage.rules.registry import REQUIREMENT_RE

SEED_GUIDE = Path(__file__).resolve().parents[2] / "shared" / "docs" / "seed-guide.md"
_ROW = re.compile(r"^\| ([A-Z]{3}-[A-Z0-9-]+) \| ")


def _guide_ids() -> list[str]:
    if not SEED_GUIDE.exists():
        pytest.skip(f"{SEED_GUIDE} is not beside this checkout")
    return [m.group(1) for line in SEED_GUIDE.read_text(encoding="utf-8").splitlines()
            if (m := _ROW.match(line))]


def test_every_guide_id_is_vendored_in_order():
    ids = _guide_ids()
    assert len(ids) > 50
    assert [r.id for r in guide_requirements()] == ids


def test_no_guide_id_is_invented():
    assert {r.id for r in REQUIREMENTS.values() if r.source == GUIDE} == set(_guide_ids())


def test_every_covers_entry_is_known():
    bad = {m.id: unknown(m.covers) for m in all_rules() if unknown(m.covers)}
    assert bad == {}


def test_every_known_id_is_accepted_by_the_registry():
    rejected = [rid for rid in REQUIREMENTS if not REQUIREMENT_RE.match(rid)]
    assert rejected == []


def test_external_references():
    assert REQUIREMENTS["MS-48"].text.startswith("Bash History")
    assert REQUIREMENTS["MS-41"].text.startswith("Swap Partition on OS Disk")
    assert "MS-43" not in REQUIREMENTS and "MS-47" not in REQUIREMENTS  # never published
    linux_tests = (39, 40, 41, 42, 44, 45, 46, 48, 49, 50, 51, 52)
    assert {f"MS-{n}" for n in linux_tests} <= set(REQUIREMENTS)
    assert REQUIREMENTS["LISA-verify_no_swap_on_osdisk"].source == "lisa"
    assert all(r.text and r.section for r in REQUIREMENTS.values())
