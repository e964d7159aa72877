"""One run's report: what was checked, against which profile, and every finding.

Every formatter (text, JSON, JUnit, SARIF, HTML) renders this one object, so the verdict, the
counts and the exit code are computed once and agree in every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from vmimage.findings import Finding, Severity, Status, worst_exit_code
from vmimage.profiles import PROFILE_NAMES, load_profile

if TYPE_CHECKING:
    from vmimage.checks.registry import CheckMeta

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

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings allowed), 1 when a check failed."""
        return worst_exit_code(self.findings)

    @property
    def certified(self) -> bool:
        """Certification fails on any failure and on nothing else (CRT-RESULTS)."""
        return self.exit_code == 0

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


def severity_of(finding: Finding, profile_name: str) -> str | None:
    """How much a violation of the finding's rule matters under the profile.

    A failed or warning finding carries its severity in its status (a check may pin it). For a
    pass or a skip, the profile's setting for the check, else the check's default, tells what
    it *would* be; None when the check is not registered (a report from another version).
    """
    if finding.status is Status.FAIL:
        return str(Severity.FAIL)
    if finding.status is Status.WARNING:
        return str(Severity.WARNING)
    meta = registered().get(finding.check_id)
    if meta is None:
        return None
    return str(_profile_severities(profile_name).get(meta.id, meta.severity))


@cache
def _profile_severities(profile_name: str) -> dict[str, Severity]:
    return load_profile(profile_name).severity if profile_name in PROFILE_NAMES else {}


def registered() -> dict[str, CheckMeta]:
    """The registry with every check module imported: metadata for rules a report names."""
    # Imported here: the report model must not drag every check in (nor cycle through them).
    import vmimage.checks  # noqa: F401 - registers every check module
    from vmimage.checks.registry import REGISTRY

    return REGISTRY

