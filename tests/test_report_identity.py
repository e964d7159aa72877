"""The disk identity in a report's header: the partition table's ID, read from the disk itself
(``vmimage.app.identity``), and never a reason for a check to fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmimage.app.identity import disk_identity
from vmimage.disk import convert
from vmimage.targets.open import open_target

MiB = 1024 * 1024
GUID = "0B5E3C1A-7D2E-4F60-9A8B-1C2D3E4F5A6B"


def _disk(path: Path, script: str, size: int = 8 * MiB) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path)], input=script,
                   text=True, check=True, capture_output=True)
    return path


def _identity(path: Path) -> dict[str, str]:
    target = open_target(path)
    try:
        return disk_identity(target)
    finally:
        target.close()


@pytest.fixture
def mbr(tmp_path: Path) -> Path:
    return _disk(tmp_path / "mbr.raw", "label: dos\nlabel-id: 0x1234abcd\n"
                                       "start=2048, size=4096, type=83\n")


@pytest.fixture
def gpt(tmp_path: Path) -> Path:
    return _disk(tmp_path / "gpt.raw", f"label: gpt\nlabel-id: {GUID}\n"
                                       "start=2048, size=4096, type=L\n")


def test_mbr_disk_signature(mbr: Path):
    assert _identity(mbr) == {"partition_table": "mbr", "partition_table_id": "1234abcd"}


def test_gpt_disk_guid_as_blkid_prints_it(gpt: Path):
    found = _identity(gpt)
    assert found == {"partition_table": "gpt", "partition_table_id": GUID.lower()}
    blkid = subprocess.run(["blkid", "-p", "-s", "PTUUID", "-o", "value", str(gpt)],
                           capture_output=True, text=True, check=False)
    if blkid.returncode == 0 and blkid.stdout.strip():
        assert blkid.stdout.strip() == found["partition_table_id"]


def test_gpt_with_a_damaged_primary_header_reads_the_backup(gpt: Path):
    with open(gpt, "r+b") as f:
        f.seek(512 + 60)  # inside the primary header's disk GUID: its CRC no longer matches
        f.write(b"\xff\xff")
    assert _identity(gpt)["partition_table_id"] == GUID.lower()


def test_a_vhd_has_the_same_identity_as_its_raw_disk(gpt: Path, tmp_path: Path):
    vhd = tmp_path / "gpt.vhd"
    convert.convert(gpt, vhd)
    assert _identity(vhd) == _identity(gpt)


def test_no_partition_table_no_identity(tmp_path: Path):
    blank = tmp_path / "blank.raw"
    with open(blank, "wb") as f:
        f.truncate(4 * MiB)
    assert _identity(blank) == {}


def test_a_directory_has_none(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    assert _identity(tmp_path) == {}


def test_the_identity_is_read_through_the_targets_cache(gpt: Path):
    """No second handle on the image (a blob has none): the sectors the report's header
    already read answer, without one more read."""
    target = open_target(gpt)
    try:
        target.layout()
        before = target.bytes_read
        assert disk_identity(target)["partition_table"] == "gpt"
        assert target.bytes_read == before
    finally:
        target.close()


@pytest.mark.slow
def test_check_puts_the_identity_in_the_report(compliant_vhd: Path):
    import json

    from vmimage.app.check import check_target
    from vmimage.report.render import render

    report = check_target(str(compliant_vhd), "azure-current")
    assert report.identity["partition_table"] == "mbr"
    assert len(report.identity["partition_table_id"]) == 8
    doc = json.loads(render(report, "json"))
    assert doc["target"]["identity"] == report.identity
    assert report.identity["partition_table_id"] in render(report, "html")
