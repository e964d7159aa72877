"""The Windows rules on real Windows-shaped disks (tests.winimage): the compliant Gen1 and Gen2
images pass every rule for both profiles, and each rule has an image on which exactly that rule
fails (:data:`CASES`, which tests/test_rule_cases.py counts with every other family's)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.winimage import (
    DEFAULT_FEATURES,
    GiB,
    WinSpec,
    build_ntfs_data_disk,
    task_xml,
    windows_copy,
)
from vmimage.app.catalog import all_rules
from vmimage.app.check import check_target
from vmimage.checks.windows import updates
from vmimage.checks.windows.tasks import deletes_itself, parse_task
from vmimage.errors import InputError
from vmimage.findings import Finding, Status
from vmimage.report.model import Report

pytestmark = pytest.mark.slow

#: The day the tests judge Windows Update's recency on (WinSpec's last success: 10 days ago).
TODAY = datetime.now(UTC)
PROFILES = ("azure-2015", "azure-current")
BAD = (Status.FAIL, Status.WARNING)


@dataclass(frozen=True)
class Case:
    """An image on which ``check_id`` (and no other Windows rule) is violated."""

    check_id: str
    spec: WinSpec
    profile: str = "azure-current"
    why: str = ""


_TASK = "ContosoSetup"
CASES = (
    Case("WINDOWS-ARCH-64BIT", WinSpec(architecture="x86"), why="32-bit"),
    Case("WINDOWS-APPROVED-BASE", WinSpec.server("2012r2"), why="2012 R2 is retired today"),
    Case("WINDOWS-APPROVED-BASE", WinSpec.server("2012r2", product_name="Windows Server 2012 "
                                                 "R2 Standard", edition_id="ServerStandard"),
         "azure-2015", why="2012 R2 is approved in Datacenter only"),
    Case("WINDOWS-GENERALIZED", WinSpec(image_state="IMAGE_STATE_COMPLETE"),
         why="specialized"),
    Case("WINDOWS-GENERALIZED", WinSpec(sysprep_errors=(
        "2026-11-01 02:59:00, Error SYSPRP Package Microsoft.Foo was installed for a user",)),
         why="sysprep errors"),
    Case("WINDOWS-RDP-ENABLED", WinSpec(rdp_enabled=False), why="RDP off"),
    Case("WINDOWS-RDP-ENABLED", WinSpec(rdp_enabled=False, select_current=2),
         why="RDP off in the current set; the stale ControlSet001 says on"),
    Case("WINDOWS-NO-BITLOCKER", WinSpec(bitlocker_volumes=frozenset({"System Reserved"})),
         why="Gen1 System Reserved encrypted"),
    Case("WINDOWS-NO-BITLOCKER", WinSpec(generation=2, bitlocker_volumes=frozenset({"Recovery"})),
         why="Gen2 recovery encrypted"),
    Case("WINDOWS-UNSUPPORTED-ROLES",
         WinSpec(features={**DEFAULT_FEATURES, "Failover-Clustering": True}),
         why="failover clustering (MS 1.1.6)"),
    Case("WINDOWS-UNSUPPORTED-ROLES", WinSpec(features={**DEFAULT_FEATURES, "Hyper-V": True}),
         "azure-2015", why="Hyper-V was on the list until 2021"),
    Case("WINDOWS-WANNACRY", WinSpec.server("2016", srv_versions={
        "srv.sys": "10.0.14393.900", "srv2.sys": "10.0.14393.953"}), why="srv.sys unpatched"),
    Case("WINDOWS-FIRSTBOOT-TASKS", WinSpec(scheduled_tasks={
        _TASK: task_xml(_TASK, self_delete=False)}), why="does not delete itself"),
    Case("WINDOWS-FIRSTBOOT-TASKS", WinSpec(scheduled_tasks={_TASK: task_xml(
        _TASK, arguments="-File E:\\setup\\first.ps1")}), why="uses E:"),
    Case("WINDOWS-UPDATES-RECENT", WinSpec(windows_update_last_success="2025-06-10 03:00:00"),
         why="17 months old"),
    Case("WINDOWS-UPDATES-RECENT", WinSpec(reboot_pending=True), why="restart pending"),
    Case("VHD-ROLE-SIZE", WinSpec(size=200 * GiB), "azure-2015",
         why="2015: 127-128 GiB; the disk rule judges os-windows too"),
)


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(updates, "now", lambda: TODAY)


@pytest.fixture
def image() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        path.unlink(missing_ok=True)


def _check(made: list[Path], spec: WinSpec, profile: str = "azure-current",
           role: str = "os-windows") -> Report:
    path = windows_copy(spec)
    made.append(path)
    return check_target(str(path), profile, role)


def _show(findings: list[Finding] | tuple[Finding, ...]) -> list[tuple[str, str, str]]:
    return [(f.check_id, str(f.status), f.message) for f in findings]


def windows_rules() -> set[str]:
    return {m.id for m in all_rules() if m.os == "windows"}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("generation", (1, 2))
def test_compliant_image_passes_every_rule(image: list[Path], generation: int,
                                           profile: str) -> None:
    report = _check(image, WinSpec(generation=generation), profile)
    assert all(f.status is Status.PASS for f in report.findings), _show(report.findings)
    assert windows_rules() <= {f.check_id for f in report.findings}
    assert report.system["os"] == "Windows Server 2019 Datacenter"
    assert report.system["build"] == "17763.6414"
    assert report.system["edition"] == "ServerDatacenter"
    assert report.system["installation_type"] == "Server"


@pytest.mark.parametrize("release", ("2016", "2022"))
def test_other_supported_releases_pass(image: list[Path], release: str) -> None:
    report = _check(image, WinSpec.server(release))
    assert all(f.status is Status.PASS for f in report.findings), _show(report.findings)


def test_2012r2_datacenter_passes_the_2015_profile(image: list[Path]) -> None:
    report = _check(image, WinSpec.server("2012r2"), "azure-2015")
    assert all(f.status is Status.PASS for f in report.findings), _show(report.findings)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.check_id}-{c.why[:24]}")
def test_exactly_the_rule_fails_on_its_case(image: list[Path], case: Case) -> None:
    report = _check(image, case.spec, case.profile)
    bad = {f.check_id for f in report.findings if f.status in BAD}
    assert bad == {case.check_id}, _show(report.findings)
    finding = next(f for f in report.findings if f.check_id == case.check_id)
    assert finding.evidence and finding.remediation


def test_every_windows_rule_has_a_failing_case() -> None:
    assert windows_rules() - {c.check_id for c in CASES} == set()


def test_updates_without_data_skip_with_the_reason(image: list[Path]) -> None:
    report = _check(image, WinSpec(windows_update_last_success=None))
    finding = next(f for f in report.findings if f.check_id == "WINDOWS-UPDATES-RECENT")
    assert finding.status is Status.SKIP
    assert "no last successful install" in finding.message


def test_bitlocker_on_the_windows_volume_is_named_in_the_refusal(image: list[Path]) -> None:
    with pytest.raises(InputError, match="BitLocker-encrypted volume"):
        _check(image, WinSpec(bitlocker_volumes=frozenset({"C:"})))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)


def _refused(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit 2 and one line on stderr saying ``fragment``."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_ntfs_data_disk_is_told_apart_from_an_os_disk(tmp_path: Path) -> None:
    disk = build_ntfs_data_disk(tmp_path / "data.vhd", vhd=True)
    report = check_target(str(disk), "azure-current", "data")
    assert report.findings and all(f.status is Status.PASS for f in report.findings), \
        _show(report.findings)
    assert not any(f.check_id.startswith("WINDOWS-") for f in report.findings)
    _refused(_cli("check", str(disk), "--role", "os-windows"),
             "no Windows operating system found")


def test_windows_disk_as_data_or_linux_is_refused(image: list[Path]) -> None:
    path = windows_copy(WinSpec())
    image.append(path)
    for role in ("data", "os-linux"):
        _refused(_cli("check", str(path), "--role", role), "--role os-windows")


def test_linux_disk_as_windows_is_refused(compliant_vhd: Path) -> None:
    _refused(_cli("check", str(compliant_vhd), "--role", "os-windows"), "--role os-linux")


def test_cli_checks_a_windows_image(image: list[Path]) -> None:
    path = windows_copy(WinSpec())
    image.append(path)
    proc = _cli("check", str(path), "--role", "os-windows", "--check", "WINDOWS-RDP-ENABLED")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS     WINDOWS-RDP-ENABLED" in proc.stdout
    # the same command as for Linux: the family is found, and the report says which
    whole = _cli("check", str(path), "--format", "json")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    report = json.loads(whole.stdout)
    assert report["target"]["role"] == "os-windows" and report["summary"]["verdict"] == "pass"
    assert report["system"]["os"] == "Windows Server 2019 Datacenter"
    assert {f["check_id"] for f in report["findings"]} >= {
        "WINDOWS-GENERALIZED", "WINDOWS-RDP-ENABLED", "VHD-FIXED-FORMAT"}
    shown = _cli("checks", "show", "WINDOWS-RDP-ENABLED")
    assert shown.returncode == 0 and "Remote Desktop" in shown.stdout


# -- the task parser, without an image ------------------------------------------------------

def _task(xml: str) -> bytes:
    return b"\xff\xfe" + xml.encode("utf-16-le")


def test_task_parser_reads_self_deletion_and_refuses_a_dtd() -> None:
    good = parse_task("/Windows/System32/Tasks/T", _task(task_xml("T")))
    assert good is not None and good.at_startup and deletes_itself(good)
    other = parse_task("/Windows/System32/Tasks/T", _task(task_xml("T", self_delete=False)))
    assert other is not None and not deletes_itself(other)
    timed = parse_task("/x", _task(task_xml("T", trigger="TimeTrigger")))
    assert timed is not None and not timed.at_startup
    bomb = '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">]><Task>&a;</Task>'
    assert parse_task("/x", bomb.encode()) is None
    assert parse_task("/x", b"\x00\x01garbage") is None
