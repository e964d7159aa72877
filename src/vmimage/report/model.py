"""One run's report: what was checked, against which profile, and every finding.

Every formatter (text, JSON, JUnit, SARIF, HTML) renders this one object, so the verdict, the
counts and the exit code are computed once and agree in every format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

from vmimage.findings import Finding, Severity, Status, worst_exit_code
from vmimage.units import format_size

TOOL_NAME = "vmimage"
#: Where a reader of a SARIF or HTML report learns what the tool is.
TOOL_URL = "https://vmimage.dev"

#: The order findings are grouped in by every human-facing format: what blocks first.
STATUS_ORDER = (Status.FAIL, Status.WARNING, Status.PASS, Status.SKIP)
#: The groups of the human formats: a waived violation is neither a failure (it blocks
#: nothing) nor a pass (the rule does not hold), so it has its own, after the warnings.
GROUPS = ("fail", "warning", "waived", "pass", "skip")


@dataclass
class Report:
    """The result of checking one target.

    ``system`` holds what was learnt about the OS (``os_name``, ``os_version``...) and may be
    empty; ``bytes_read`` is how much of the image was read (None when not counted); ``disk``
    is the disk's metadata (``DiskInfo.to_dict()``) when the target is an image; ``identity``
    what tells this disk from another build of it beyond that metadata
    (``partition_table``, ``partition_table_id``), empty when unknown.

    A waived finding (:attr:`Finding.waived`) keeps its status in every format but counts as
    failing nowhere: not in the exit code, the verdict or the counts of failures.
    """

    tool_version: str
    target: str
    target_kind: str
    profile: str
    started: datetime
    duration_s: float
    findings: list[Finding]
    system: dict[str, str] = field(default_factory=dict)
    bytes_read: int | None = None
    disk: dict[str, object] | None = None
    role: str = "os-linux"
    #: How the target was examined: ``offline`` (an image or a directory) or ``live``.
    mode: str = "offline"
    identity: dict[str, str] = field(default_factory=dict)
    #: ``check --boot``: the same rules on the VM booted from the image (a live report).
    first_boot: Report | None = None
    #: What was done to examine the target that a reader must know (a VM booted, a user and
    #: key written into a private copy, never into the image).
    notes: tuple[str, ...] = ()
    #: ``check --boot`` with provisioning: the verdict of ``vm boot --provision`` (its JSON
    #: form: ``provisioned``, ``reason``, ``by``, ``seconds_ready``, ``health``...).
    provisioning: dict[str, object] | None = None

    @property
    def not_provisioned(self) -> bool:
        """The VM booted from the image did not provision as Azure would have it."""
        return self.provisioning is not None and not self.provisioning.get("provisioned")

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings and waived failures allowed), 1 when a check failed,
        offline or after the first boot, or the VM did not provision."""
        after = self.first_boot.exit_code if self.first_boot is not None else 0
        return max(worst_exit_code(self.findings), after, int(self.not_provisioned))

    @property
    def failed_ids(self) -> list[str]:
        """The rules that failed and were not waived, by ID: what the summaries name (those
        that failed only after the first boot marked so)."""
        ids = {f.check_id for f in self.findings if f.failing}
        if self.first_boot is not None:
            ids |= {f"{cid} (after first boot)" for cid in self.first_boot.failed_ids
                    if cid not in ids}
        if self.not_provisioned:
            ids.add("provisioning (the deployed VM did not provision)")
        return sorted(ids)

    @property
    def waived_ids(self) -> list[str]:
        """The rules whose violation a waiver accepts, by ID."""
        return sorted({f.check_id for f in self.findings if f.waived})

    @property
    def skipped_blocking(self) -> list[str]:
        """The rules that would block certification but were not examined, by ID.

        A waived rule blocks nothing whether it was examined or not, so its skip is not one.
        """
        skipped = {f.check_id for f in self.findings
                   if f.status is Status.SKIP and f.blocking and f.waiver is None}
        if self.first_boot is not None:  # examined on the running VM: examined
            seen = {f.check_id for f in self.first_boot.findings if f.status is not Status.SKIP}
            skipped -= seen
        return sorted(skipped)

    @property
    def verdict(self) -> str:
        """``pass`` (every blocking rule examined, none failed), ``incomplete`` (none failed,
        but blocking rules were skipped) or ``fail``. No verdict claims more than was seen."""
        if self.exit_code:
            return "fail"
        if not self.findings or self.skipped_blocking:
            return "incomplete"
        return "pass"

    @property
    def certified(self) -> bool:
        """A full pass: nothing failed and nothing blocking was left unexamined (CRT-RESULTS)."""
        return self.verdict == "pass"

    @property
    def verdict_line(self) -> str:
        """The sentence under every report, plain text: what passed, for which profile, how."""
        c = self.counts
        waived = self.waived_ids
        also = f"; {len(waived)} waived ({', '.join(waived)})" if waived else ""
        if self.verdict == "fail":
            ids = self.failed_ids
            return (f"FAILS vmimage's {self.checks_name} for {self.profile}: {len(ids)} "
                    f"rule{'s' if len(ids) != 1 else ''} failed ({', '.join(ids)}){also}")
        skipped = self.skipped_blocking
        if self.verdict == "incomplete":
            if not self.findings:
                return f"INCOMPLETE: no rule ran for {self.profile}"
            return (f"INCOMPLETE: nothing failed, but {len(skipped)} blocking "
                    f"rule{'s were' if len(skipped) != 1 else ' was'} not examined "
                    f"({', '.join(skipped)}){also}; not a pass for {self.profile}")
        warn = f", {c['warning']} warning{'s' if c['warning'] != 1 else ''} to review" \
            if c["warning"] else ""
        skip = f", {c['skip']} non-blocking rule{'s' if c['skip'] != 1 else ''} skipped" \
            if c["skip"] else ""
        waive = f", {len(waived)} waived ({', '.join(waived)})" if waived else ""
        return (f"PASSES vmimage's {self.checks_name} for {self.profile}: {c['pass']} rules "
                f"passed{warn}{waive}{skip}. Partner Center's certification stays the final "
                "gate.")

    @property
    def checks_name(self) -> str:
        """``offline checks``, ``live checks``, or for ``check --boot`` both runs."""
        if self.first_boot is not None:
            return f"{self.mode} and first-boot checks"
        return f"{self.mode} checks"

    @property
    def counts(self) -> dict[str, int]:
        """Findings per status, every status present, and the waived ones apart:
        ``{"pass": 3, "fail": 0, "warning": 1, "skip": 2, "waived": 1}``.

        A waived failure is counted under ``waived`` only, so ``fail`` is what blocks and the
        counts add up to the number of findings.
        """
        counts = {str(s): sum(1 for f in self.findings if f.status is s and not f.waived)
                  for s in Status}
        counts["waived"] = sum(1 for f in self.findings if f.waived)
        return counts

    @property
    def counts_line(self) -> str:
        """``3 passed, 1 failed, 0 warnings, 2 skipped`` (``, 1 waived`` when a waiver
        applied): the one line under every report."""
        c = self.counts
        waived = f", {c['waived']} waived" if c["waived"] else ""
        return (f"{c['pass']} passed, {c['fail']} failed, {c['warning']} warnings, "
                f"{c['skip']} skipped{waived}")

    def sorted_findings(self) -> list[Finding]:
        """Findings in the stable order every format uses: by check ID, then message."""
        return sorted(self.findings, key=lambda f: f.sort_key)

    def listed(self, only_failed: bool = False) -> list[Finding]:
        """The findings a format lists, sorted: all of them, or with ``only_failed`` the
        failures and warnings (waived or not). Counts and verdict always use all of them."""
        ordered = self.sorted_findings()
        if not only_failed:
            return ordered
        return [f for f in ordered if f.status in (Status.FAIL, Status.WARNING)]

    def groups(self, only_failed: bool = False) -> list[tuple[str, list[Finding]]]:
        """Listed findings in the human formats' :data:`GROUPS` (empty groups kept), each
        sorted: what blocks first, what a waiver accepts after the warnings."""
        listed = self.listed(only_failed)
        return [(g, [f for f in listed if group_of(f) == g]) for g in GROUPS]

    def by_status(self) -> list[tuple[Status, list[Finding]]]:
        """Findings grouped fail, warning, pass, skip (empty groups kept), each sorted."""
        ordered = self.sorted_findings()
        return [(s, [f for f in ordered if f.status is s]) for s in STATUS_ORDER]

    def covered(self, only_failed: bool = False) -> list[str]:
        """Every requirement ID some listed finding covers, sorted."""
        return sorted({c for f in self.listed(only_failed) for c in f.covers})


def group_of(finding: Finding) -> str:
    """The finding's group in :data:`GROUPS`: its status, or ``waived``."""
    return "waived" if finding.waived else str(finding.status)


def identity_rows(report: Report) -> list[tuple[str, str]]:
    """What a reader needs to know which disk, which tool and which rules a report is about,
    as (label, value) pairs for the text and HTML headers.

    File name, virtual size, format, the VHD footer's unique ID and the partition table's ID
    for a disk image (whatever of them is known); the target as given for a directory; then
    vmimage's version, the profile and the time. Values are plain text: the formats escape.
    """
    rows: list[tuple[str, str]] = []
    disk = report.disk or {}
    if report.target_kind == "image" or disk:
        rows.append(("file", os.path.basename(report.target) or report.target))
    else:
        rows.append(("target", report.target))
    size = disk.get("virtual_size")
    if isinstance(size, int):
        rows.append(("size", f"{format_size(size)} ({size} bytes)"))
    if isinstance(disk.get("format_name"), str):
        rows.append(("format", str(disk["format_name"])))
    footer = disk.get("footer")
    if isinstance(footer, dict) and isinstance(footer.get("unique_id"), str):
        rows.append(("VHD unique ID", footer["unique_id"]))
    scheme, ident = report.identity.get("partition_table"), report.identity.get(
        "partition_table_id")
    if scheme and ident:
        rows.append(("partition table ID", f"{ident} ({scheme.upper()})"))
    rows += [("vmimage", report.tool_version), ("profile", report.profile),
             ("time", report.started.isoformat(timespec="seconds"))]
    return rows


def severity_of(finding: Finding) -> str:
    """How much a violation of the finding's rule matters under the run's profile.

    A failed or warning finding carries its severity in its status (a rule may pin it); a pass
    or a skip carries what a violation *would* have meant, as the engine computed it.
    """
    if finding.status is Status.FAIL:
        return str(Severity.FAIL)
    if finding.status is Status.WARNING:
        return str(Severity.WARNING)
    return str(finding.severity)
