"""One run's report: what was checked, against which profile, and every finding.

Every formatter (text, JSON, JUnit, SARIF, HTML) renders this one object, so the verdict, the
counts and the exit code are computed once and agree in every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vmimage.findings import Finding, Severity, Status, worst_exit_code

TOOL_NAME = "vmimage"
#: Where a reader of a SARIF or HTML report learns what the tool is.
TOOL_URL = "https://vmimage.dev"

#: The order findings are grouped in by every human-facing format: what blocks first.
STATUS_ORDER = (Status.FAIL, Status.WARNING, Status.PASS, Status.SKIP)


@dataclass
class Report:
    """The result of checking one target.

    ``system`` holds what was learnt about the OS (``os_name``, ``os_version``...) and may be
    empty; ``bytes_read`` is how much of the image was read (None when not counted); ``disk``
    is the disk's metadata (``DiskInfo.to_dict()``) when the target is an image.
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

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings allowed), 1 when a check failed."""
        return worst_exit_code(self.findings)

    @property
    def skipped_blocking(self) -> list[str]:
        """The rules that would block certification but were not examined, by ID."""
        return sorted({f.check_id for f in self.findings
                       if f.status is Status.SKIP and f.blocking})

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
        if self.verdict == "fail":
            ids = sorted({f.check_id for f in self.findings if f.status is Status.FAIL})
            return (f"FAILS vmimage's {self.mode} checks for {self.profile}: {len(ids)} "
                    f"rule{'s' if len(ids) != 1 else ''} failed ({', '.join(ids)})")
        skipped = self.skipped_blocking
        if self.verdict == "incomplete":
            if not self.findings:
                return f"INCOMPLETE: no rule ran for {self.profile}"
            return (f"INCOMPLETE: nothing failed, but {len(skipped)} blocking "
                    f"rule{'s were' if len(skipped) != 1 else ' was'} not examined "
                    f"({', '.join(skipped)}); not a pass for {self.profile}")
        warn = f", {c['warning']} warning{'s' if c['warning'] != 1 else ''} to review" \
            if c["warning"] else ""
        skip = f", {c['skip']} non-blocking rule{'s' if c['skip'] != 1 else ''} skipped" \
            if c["skip"] else ""
        return (f"PASSES vmimage's {self.mode} checks for {self.profile}: {c['pass']} rules "
                f"passed{warn}{skip}. Partner Center's certification stays the final gate.")

    @property
    def counts(self) -> dict[str, int]:
        """Findings per status, every status present: ``{"pass": 3, "fail": 0, ...}``."""
        return {str(s): sum(1 for f in self.findings if f.status is s) for s in Status}

    @property
    def counts_line(self) -> str:
        """``3 passed, 1 failed, 0 warnings, 2 skipped``: the one line under every report."""
        c = self.counts
        return (f"{c['pass']} passed, {c['fail']} failed, {c['warning']} warnings, "
                f"{c['skip']} skipped")

    def sorted_findings(self) -> list[Finding]:
        """Findings in the stable order every format uses: by check ID, then message."""
        return sorted(self.findings, key=lambda f: f.sort_key)

    def by_status(self) -> list[tuple[Status, list[Finding]]]:
        """Findings grouped fail, warning, pass, skip (empty groups kept), each sorted."""
        ordered = self.sorted_findings()
        return [(s, [f for f in ordered if f.status is s]) for s in STATUS_ORDER]

    def covered(self) -> list[str]:
        """Every requirement ID some finding covers, sorted."""
        return sorted({c for f in self.findings for c in f.covers})


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
