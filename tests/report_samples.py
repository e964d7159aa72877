"""Reports for the formatter tests: a hand-made one with hostile content, and a real one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from vmimage.app.disk import validate_disk
from vmimage.disk import convert
from vmimage.disk.inspect import inspect_disk
from vmimage.findings import Evidence, Finding, Severity, Status
from vmimage.report.model import Report
from vmimage.units import MiB

HOSTILE = "bad value <script>alert('x')</script> & [bold]not markup[/bold] \x1b[31mred\x00"


def sample_report(*, failing: bool = True, blocking_skip: bool = False) -> Report:
    """Every status, two evidence items, a check the registry does not know, hostile text.

    The skipped rule is a warning-level one unless ``blocking_skip`` (then the verdict of a
    report with nothing failed is "incomplete", not "pass").
    """
    findings = [
        Finding("VHD-FIXED-FORMAT", "The disk is a fixed-format VHD", Status.PASS, "fixed VHD",
                ("LNX-OS-SIZE", "DSK-DATA"), "", (Evidence(path="disk.vhd", seen="fixed VHD"),)),
        Finding("VHD-SPARSE", "The VHD file is sparse", Status.WARNING,
                "the file is not sparse: 30 GiB allocated", ("LNX-OS-SIZE",),
                "Make a sparse copy.", (Evidence(path="disk.vhd", seen="30 GiB allocated",
                                                 required="holes"),)),
        Finding("TEST-SSH-ALIVE", "ClientAliveInterval is 30 to 235", Status.SKIP,
                "needs the image's filesystem; this target has none", ("LNX-SSH", "MS-46"),
                "Set ClientAliveInterval 180.", (),
                Severity.FAIL if blocking_skip else Severity.WARNING),
        Finding("TEST-MACHINE-ID", "machine-id is empty", Status.PASS, "/etc/machine-id "
                "is empty", ("LNX-GENERALIZED",), "",
                (Evidence(path="/etc/machine-id", seen="0 bytes", required="0 bytes"),)),
    ]
    if failing:
        findings.append(Finding(
            "TEST-HISTORY", "Shell history is empty", Status.FAIL, HOSTILE,
            ("LNX-HISTORY", "MS-48", "LISA-verify_bash_history_is_empty"),
            "Delete the file & regeneralize <now>.",
            (Evidence(path="/home/a b/.bash_history", line=3, seen=HOSTILE, required="0 bytes"),
             Evidence(path="/home/c/.zsh_history", line=1, seen="12 bytes"))))
    return Report(tool_version="0.1.0", target="disk.vhd", target_kind="image",
                  profile="azure-current", started=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                  duration_s=0.5, findings=findings, system={"os": "Debian GNU/Linux 12"},
                  bytes_read=3 * MiB, disk={"path": "disk.vhd", "format": "vhd-fixed"})


def real_report(tmp: Path) -> Report:
    """A report of the real VHD-format checks on a real (empty, 20 MiB) fixed VHD."""
    path = tmp / "data.vhd"
    convert.create(path, 20 * MiB)
    info = inspect_disk(path)
    return Report(tool_version="0.1.0", target=str(path), target_kind="image",
                  profile="azure-current", started=datetime.now(UTC), duration_s=0.01,
                  findings=validate_disk(path, "data", "azure-current"), system={},
                  bytes_read=None, disk=info.to_dict(), role="data")
