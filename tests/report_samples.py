"""Reports for the formatter tests: a hand-made one with hostile content, a real one, and a
realistic failing one with long evidence (the browser test and docs/report-screenshot.png)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from vmimage.app.catalog import all_rules
from vmimage.app.disk import validate_disk
from vmimage.disk import convert
from vmimage.disk.inspect import inspect_disk
from vmimage.findings import Evidence, Finding, Severity, Status
from vmimage.report.model import Report
from vmimage.rules import RuleMeta
from vmimage.units import GiB, MiB

# SARIF's rules block reads rule metadata from the registry, which fills as rule families are
# imported: register them all, so no formatter test depends on what else ran before it.
all_rules()

HOSTILE = "bad value <script>alert('x')</script> & [bold]not markup[/bold] \x1b[31mred\x00"
WAIVER = "history kept for the `audit` service <on purpose> (waived until 2027-03-01)"
#: The sample disk's identity: a fixed VHD's footer ID and an MBR disk signature.
UNIQUE_ID = "5d3c2b1a-0f9e-4d8c-b7a6-958473625140"


def sample_report(*, failing: bool = True, blocking_skip: bool = False,
                  waived: bool = False) -> Report:
    """Every status, two evidence items, a check the registry does not know, hostile text.

    The skipped rule is a warning-level one unless ``blocking_skip`` (then the verdict of a
    report with nothing failed is "incomplete", not "pass"). With ``waived``, the failure
    carries a waiver (with backticks and markup in it), so the verdict is a pass.
    """
    findings = [
        Finding("VHD-FIXED-FORMAT", "The disk is a fixed-format VHD", Status.PASS, "fixed VHD",
                ("LNX-OS-SIZE", "DSK-DATA"), "", (Evidence(path="disk.vhd", seen="fixed VHD"),)),
        Finding("VHD-SPARSE", "The VHD file is sparse", Status.WARNING,
                "the file is not sparse: 30 GiB allocated", ("LNX-OS-SIZE",),
                "Make a sparse copy: `fallocate --dig-holes disk.vhd`.",
                (Evidence(path="disk.vhd", seen="30 GiB allocated",
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
             Evidence(path="/home/c/.zsh_history", line=1, seen="12 bytes")),
            waiver=WAIVER if waived else None))
    return Report(tool_version="0.1.0", target="disk.vhd", target_kind="image",
                  profile="azure-current", started=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                  duration_s=0.5, findings=findings, system={"os": "Debian GNU/Linux 12"},
                  bytes_read=3 * MiB,
                  disk={"path": "disk.vhd", "format": "vhd-fixed", "format_name": "fixed VHD",
                        "virtual_size": 30 * GiB, "footer": {"unique_id": UNIQUE_ID}},
                  identity={"partition_table": "mbr", "partition_table_id": "1234abcd"})


def real_report(tmp: Path) -> Report:
    """A report of the real VHD-format checks on a real (empty, 20 MiB) fixed VHD."""
    path = tmp / "data.vhd"
    convert.create(path, 20 * MiB)
    info = inspect_disk(path)
    return Report(tool_version="0.1.0", target=str(path), target_kind="image",
                  profile="azure-current", started=datetime.now(UTC), duration_s=0.01,
                  findings=validate_disk(path, "data", "azure-current"), system={},
                  bytes_read=None, disk=info.to_dict(), role="data")


#: A build user's home with a long name, and a long unbroken value: what squeezed the old
#: HTML report's evidence column to a few characters.
LONG_HOME = "/home/ci-image-builder-0123456789abcdef/.local/share/build-cache/debian-12-azure"
LONG_TOKEN = "AAAAB3NzaC1yc2EAAAADAQABAAABgQC" + "x7Kq9" * 60


def _finding(metas: dict[str, RuleMeta], check_id: str, status: Status, message: str,
             *evidence: Evidence, waiver: str | None = None) -> Finding:
    """A finding of a registered rule, with the rule's own title, requirements and fix."""
    meta = metas[check_id]
    return Finding(check_id, meta.title, status, message, meta.covers,
                   meta.remediation if status is not Status.PASS else "", evidence,
                   Severity(str(meta.severity)), waiver)


def long_report() -> Report:
    """A realistic failing check of a Debian 12 OS disk: real rule IDs, titles, requirements
    and remediations from the registry; long messages, long paths and a long unbroken value
    as evidence; a waived failure, warnings, passes and skips; a GPT disk's identity."""
    metas = {m.id: m for m in all_rules()}
    f = _finding
    findings = [
        f(metas, "LINUX-SSH-CLIENT-ALIVE", Status.FAIL,
          "ClientAliveInterval is 0 in /etc/ssh/sshd_config.d/50-cloud-init.conf, which sshd "
          "reads before the main file, so the 180 set in /etc/ssh/sshd_config is never used",
          Evidence(path="/etc/ssh/sshd_config.d/50-cloud-init.conf", line=3,
                   seen="ClientAliveInterval 0", required="30 to 235 (180 recommended)"),
          Evidence(path="/etc/ssh/sshd_config", line=121, seen="ClientAliveInterval 180")),
        f(metas, "LINUX-SHELL-HISTORY-EMPTY", Status.FAIL,
          "2 history files are not empty: the build user's shell history survived "
          "generalization", Evidence(path=f"{LONG_HOME}/.bash_history", line=1,
                                     seen=f"ssh-rsa {LONG_TOKEN} builder@ci", required="0 bytes"),
          Evidence(path="/root/.bash_history", seen="4.2 KiB", required="0 bytes")),
        f(metas, "LINUX-NO-SWAP", Status.FAIL,
          "a swap partition is on the OS disk and fstab activates it at boot",
          Evidence(path="/etc/fstab", line=7,
                   seen="UUID=0b5e3c1a-7d2e-4f60-9a8b-1c2d3e4f5a6b none swap sw 0 0",
                   required="no swap on the OS disk"),
          Evidence(path="p5", seen="swap, 4 GiB")),
        f(metas, "LINUX-KERNEL-CMDLINE", Status.FAIL,
          "the default boot entry lacks earlyprintk=ttyS0 and rootdelay=300",
          Evidence(path="/boot/grub/grub.cfg", line=112,
                   seen="linux /boot/vmlinuz-6.1.0-18-cloud-amd64 "
                        "root=UUID=0b5e3c1a-7d2e-4f60-9a8b-1c2d3e4f5a6b ro console=tty0 "
                        "console=ttyS0,115200 quiet splash net.ifnames=0 biosdevname=0",
                   required="console=ttyS0 earlyprintk=ttyS0 rootdelay=300")),
        f(metas, "LINUX-NO-LVM", Status.FAIL, "the root filesystem is on LVM (vg0/root)",
          Evidence(path="vg0/root", seen="LVM2 logical volume"),
          waiver="the customer's recovery tooling needs LVM snapshots (waived until "
                 "2027-03-01)"),
        f(metas, "LINUX-CLOUD-INIT-CLEAN", Status.WARNING,
          "cloud-init instance state remains from the build VM",
          Evidence(path="/var/lib/cloud/instances/iid-datasource-none-build-0123456789abcdef",
                   seen="directory with 14 entries", required="absent")),
        f(metas, "VHD-SPARSE", Status.WARNING, "the file is not sparse: 30 GiB allocated",
          Evidence(path="debian-12-azure-20250102.vhd", seen="30 GiB allocated",
                   required="holes where the disk is zero")),
        f(metas, "LINUX-SECURITY-PATCHES", Status.SKIP,
          "cannot decide: the package lists in /var/lib/apt/lists were removed, so the "
          "installed versions cannot be compared with the archive's"),
        f(metas, "LINUX-REPOSITORIES", Status.SKIP, "no sources.list entry could be read"),
    ]
    judged = {x.check_id for x in findings}
    for meta in all_rules():
        if meta.id.startswith("LINUX-") and meta.id not in judged:
            findings.append(Finding(meta.id, meta.title, Status.PASS, meta.title, meta.covers,
                                    "", (), Severity(str(meta.severity))))
    name = "debian-12-azure-20250102.vhd"
    return Report(tool_version="0.1.0", target=f"out/{name}", target_kind="image",
                  profile="azure-current", started=datetime(2025, 1, 2, 9, 30, 0, tzinfo=UTC),
                  duration_s=1.84, findings=findings,
                  system={"os": "Debian GNU/Linux 12 (bookworm)", "id": "debian",
                          "version": "12"},
                  bytes_read=41 * MiB,
                  disk={"path": f"out/{name}", "format": "vhd-fixed", "format_name": "fixed VHD",
                        "virtual_size": 30 * GiB, "file_size": 30 * GiB + 512,
                        "footer": {"unique_id": "8f14e45f-ceea-467f-a0e6-3b1c2d4e5f60",
                                   "creator_application": "win "}},
                  identity={"partition_table": "gpt",
                            "partition_table_id": "0b5e3c1a-7d2e-4f60-9a8b-1c2d3e4f5a6b"})
