"""What every result-producing command does after its rules ran: waivers, then the exit code.

``check``, ``vhd validate``, ``offer validate``, ``sas verify`` and ``certify`` each make a
:class:`~vmimage.report.model.Report`; this module applies the publisher's waivers to it and
decides the exit code from ``--fail-on``, the same way for all of them, so CI behaves alike
whichever command a pipeline runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import UTC, datetime

from vmimage import __version__
from vmimage.app.catalog import all_rules
from vmimage.app.waivers import apply_waivers, load_waivers
from vmimage.findings import Finding, Status
from vmimage.report.model import Report

#: ``--fail-on`` choices: the lowest status that makes the exit code 1.
FAIL_ON = ("fail", "warning")


def exit_code(findings: list[Finding], fail_on: str = "fail") -> int:
    """1 when a finding nobody waived is at or above ``fail_on``, else 0."""
    statuses = {Status.FAIL} if fail_on == "fail" else {Status.FAIL, Status.WARNING}
    return 1 if any(f.status in statuses and not f.waived for f in findings) else 0


def waive(report: Report, waivers: str | os.PathLike[str] | None) -> Report:
    """``report`` with the waiver file applied to its findings (unchanged without one).

    Raises:
        InputError: the waiver file cannot be used (see :func:`~vmimage.app.waivers.load_waivers`).
    """
    if waivers is None:
        return report
    known = [m.id for m in all_rules()]
    entries = load_waivers(waivers, known)
    return dataclasses.replace(report, findings=apply_waivers(report.findings, entries,
                                                              report.target))


def findings_report(findings: list[Finding], target: str, kind: str, profile: str,
                    started: datetime, clock: Callable[[], float], *, role: str = "",
                    mode: str = "offline") -> Report:
    """A :class:`Report` for a command whose rules return a list of findings (``vhd
    validate``, ``offer validate``, ``sas verify``), so every format and option applies."""
    return Report(tool_version=__version__, target=target, target_kind=kind, profile=profile,
                  started=started, duration_s=clock(), findings=findings, role=role,
                  mode=mode)


def now() -> datetime:
    """The start time every report records (UTC)."""
    return datetime.now(UTC)
