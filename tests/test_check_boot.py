"""``vmimage check IMAGE --boot``: the image offline, then booted under qemu (TCG here) and
checked over SSH with the same rules, side by side.

The image is the test suite's compliant Debian 12 VHD with one first-boot unit that makes and
enables a swap file, as publishers' first-boot scripts do: offline it holds no swap, after its
first boot it swaps. Everything else agrees offline and live, so LINUX-NO-SWAP must be the one
check that changed. One VM, killed and removed however the test ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import bootimage
from tests import imagebuild as ib
from tests.test_vm_boot import BOOT_TIMEOUT, _reap, running
from vmimage.disk.convert import convert_in_place

pytestmark = [pytest.mark.vm, pytest.mark.slow]


@pytest.fixture
def swap_vhd(tmp_path: Path) -> Path:
    """A private fixed VHD of the first-boot-swap image (a reflink or sparse copy)."""
    source = bootimage.bootable_disk("swap").path
    copy = tmp_path / "firstboot-swap.raw"
    ib.clone_file(source, copy)
    convert_in_place(copy)  # raw + footer = fixed VHD, as `vmimage vhd convert --in-place`
    return copy.rename(copy.with_suffix(".vhd"))


def test_boot_shows_exactly_what_the_first_boot_changed(tmp_path: Path, swap_vhd: Path) -> None:
    state = tmp_path / "state"
    before = bootimage.content_digest(swap_vhd)
    report_json, report_html = tmp_path / "report.json", tmp_path / "report.html"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vmimage", "check", str(swap_vhd), "--boot",
             "--boot-timeout", str(BOOT_TIMEOUT), "--console-log", str(tmp_path / "console.log"),
             "-o", str(report_json), "-o", str(report_html), "-o", str(tmp_path / "report.txt")],
            env={**os.environ, "VMIMAGE_STATE_DIR": str(state)}, capture_output=True,
            text=True, timeout=BOOT_TIMEOUT + 300, check=False)
    finally:
        _reap(state)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a check failed after first boot
    report = json.loads(report_json.read_text())
    assert report["summary"]["verdict"] == "fail"
    assert report["first_boot"]["mode"] == "live"
    assert report["first_boot"]["target"]["path"].startswith("ssh://azureuser@127.0.0.1:")
    changed = [r for r in report["changed_after_first_boot"] if r["changed"]]
    assert changed == [{"check_id": "LINUX-NO-SWAP", "offline": "pass", "live": "fail",
                        "changed": True}], changed
    live_swap = [f for f in report["first_boot"]["findings"] if f["check_id"] == "LINUX-NO-SWAP"]
    assert live_swap and "/swapfile" in json.dumps(live_swap), live_swap
    assert any("the image was not written" in n for n in report["notes"]), report["notes"]
    # deployed as Azure would: the image's own agent provisioned the user
    assert report["provisioning"]["provisioned"] is True, report["provisioning"]
    assert report["provisioning"]["by"] == "waagent"
    # the text verdict names it, the HTML shows both columns
    assert "LINUX-NO-SWAP (after first boot)" in proc.stdout
    assert "provisioning: provisioned in" in (tmp_path / "report.txt").read_text()
    html = report_html.read_text()
    assert "After the first boot (1 changed)" in html and "After first boot</th>" in html
    assert "Provisioning: provisioned" in html
    # nothing left running, nothing written to the image
    assert not running(state)
    assert bootimage.content_digest(swap_vhd) == before


def test_boot_reports_an_image_that_does_not_provision(tmp_path: Path) -> None:
    """Provisioning.Agent=disabled: the agent reports Ready and creates no user, as on Azure;
    the run fails with the verdict, and no live check is pretended."""
    state = tmp_path / "state"
    image = bootimage.bootable_disk("agent-off").path
    report_json = tmp_path / "report.json"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vmimage", "check", str(image), "--boot",
             "--boot-timeout", str(BOOT_TIMEOUT), "-o", str(report_json), "-o",
             str(tmp_path / "report.txt")],
            env={**os.environ, "VMIMAGE_STATE_DIR": str(state)}, capture_output=True,
            text=True, timeout=BOOT_TIMEOUT + 300, check=False)
    finally:
        _reap(state)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(report_json.read_text())
    prov = report["provisioning"]
    assert prov["provisioned"] is False and "cannot log in" in prov["reason"], prov
    assert any("Provisioning.Agent=disabled" in said for said in prov["image_says"]), prov
    assert "first_boot" not in report
    assert "provisioning (the deployed VM did not provision)" in proc.stdout
    text = (tmp_path / "report.txt").read_text()
    assert "provisioning: NOT PROVISIONED (by waagent)" in text and "  health:" in text
    assert not running(state)
