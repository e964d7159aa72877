"""The result model every check, validation and report shares.

A check never prints: it returns outcomes; the engine adds the check's metadata and the
profile's severity and turns them into :class:`Finding` objects; formatters render those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """What happened to one rule on one target."""

    PASS = "pass"
    FAIL = "fail"
    WARNING = "warning"
    SKIP = "skip"


class Severity(StrEnum):
    """What a violated rule means for certification: ``fail`` blocks it, ``warning`` does not."""

    FAIL = "fail"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a finding looked and what it saw: file and line, the value seen, the value required."""

    path: str | None = None
    line: int | None = None
    seen: str | None = None
    required: str | None = None

    def to_dict(self) -> dict[str, str | int | None]:
        """Plain data for JSON and templates."""
        return {"path": self.path, "line": self.line, "seen": self.seen, "required": self.required}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check function returns: a verdict and its evidence, without the check's metadata.

    ``violated`` outcomes become ``fail`` or ``warning`` according to the profile; a check may
    pin ``severity`` where one rule has two levels (a Linux OS disk under 30 GiB fails, over
    50 GiB only warns).
    """

    status: Status | None  # None means "violated": the profile decides fail or warning
    message: str
    evidence: tuple[Evidence, ...] = ()
    severity: Severity | None = None


def passed(message: str, *evidence: Evidence) -> Outcome:
    """The rule holds."""
    return Outcome(Status.PASS, message, evidence)


def violated(message: str, *evidence: Evidence, severity: Severity | None = None) -> Outcome:
    """The rule does not hold; the profile (or ``severity``) says how much that matters."""
    return Outcome(None, message, evidence, severity)


def skipped(reason: str, *evidence: Evidence) -> Outcome:
    """The rule cannot be decided on this target; the reason is shown, never a silent pass."""
    return Outcome(Status.SKIP, reason, evidence)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's result on one target, with everything a report needs."""

    check_id: str
    title: str
    status: Status
    message: str
    covers: tuple[str, ...]
    remediation: str
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    #: What a violation of the rule means under the run's profile (for a pass or a skip: what
    #: it would have meant), so a report needs no registry to say whether a skip blocks.
    severity: Severity = Severity.FAIL
    #: The publisher's waiver of this rule, as one text: its reason and its expiry
    #: (``"kernel 5.10 needed by our driver (waived until 2027-03-01)"``); None when not waived.
    #: The status stays what the rule found, so every report still shows the violation.
    waiver: str | None = None

    @property
    def blocking(self) -> bool:
        """Whether a violation of this rule would block certification."""
        return self.severity is Severity.FAIL

    @property
    def waived(self) -> bool:
        """A violation (fail or warning) that a waiver accepts: it no longer counts as failing.

        A waiver on a rule that passed or was skipped excuses nothing, so it is not "waived";
        reports still show its text.
        """
        return self.waiver is not None and self.status in (Status.FAIL, Status.WARNING)

    @property
    def failing(self) -> bool:
        """A failure nobody waived: what makes the exit code 1 and the verdict ``fail``."""
        return self.status is Status.FAIL and self.waiver is None

    @property
    def sort_key(self) -> tuple[str, str]:
        """Stable order in every report: by check ID, then message."""
        return (self.check_id, self.message)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON and templates."""
        return {
            "check_id": self.check_id,
            "title": self.title,
            "status": str(self.status),
            "message": self.message,
            "covers": list(self.covers),
            "remediation": self.remediation,
            "evidence": [e.to_dict() for e in self.evidence],
            "severity": str(self.severity),
            "waiver": self.waiver,
        }


def worst_exit_code(findings: list[Finding]) -> int:
    """0 when nothing failed (warnings and waived failures allowed), 1 when a rule failed."""
    return 1 if any(f.failing for f in findings) else 0
