"""The certification job: the real checks on every VHD of a version, read by its SAS URI, and
the outcome recorded with the report (CRT-RESULTS, CRT-ARTIFACTS).

Each disk is checked by :func:`vmimage.app.check.check_target`, the code of ``vmimage check
URL``: range reads, never a download, only from the blob endpoints the fetch policy allows
(Azure's, and the service's ``--allow-endpoint``). The OS disk is checked with the rules of its
family's OS role, each data disk with the data-disk rules; the findings go into one report,
each prefixed with its disk when the version has several.

A disk that cannot be checked (the SAS refused, the blob missing, no VHD, no operating system
on the OS disk, one on a data disk) is a failing finding of the rule that says the same of a
local file in ``vmimage offer validate``: OFFER-OS-FAMILY for the OS disk ("no operating
system found"), OFFER-DISK-SIZE for a data disk ("cannot be read as a disk"). Fail closed:
what was not seen is never a pass, whatever the profile disables.

The run itself changes nothing; its outcome is handed back as the job's effect and recorded
in the transaction that ends the job (:mod:`vmimage.app.publishing.jobstore`), once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from vmimage import __version__
from vmimage.app.catalog import find_rule
from vmimage.app.check import check_target
from vmimage.app.publishing.certification import (
    CertificationInputs,
    DiskInput,
    apply_certification_outcome,
    certification_inputs,
)
from vmimage.app.publishing.errors import Conflict, NotFound
from vmimage.app.publishing.store import Store
from vmimage.app.results import now
from vmimage.errors import VmimageError
from vmimage.findings import Finding, violated
from vmimage.jobs.model import Done, Job
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.rules import effective_severity
from vmimage.rules.engine import merge
from vmimage.secrets import one_line
from vmimage.textsafe import printable
from vmimage.units import format_size

_log = logging.getLogger("vmimage.jobs")
#: The rule a disk that cannot be checked fails, by role (see the module's docstring).
UNREADABLE_RULE = {"data": "OFFER-DISK-SIZE"}
OS_UNREADABLE_RULE = "OFFER-OS-FAMILY"


@dataclasses.dataclass(frozen=True)
class DiskRun:
    """One disk's run: its report, or why it could not be checked."""

    disk: DiskInput
    report: Report | None
    error: str | None

    @property
    def label(self) -> str:
        """``OS disk`` or ``data disk LUN n``."""
        return "OS disk" if self.disk.lun is None else f"data disk LUN {self.disk.lun}"

    @property
    def shown(self) -> str:
        """The disk and its blob (never the SAS)."""
        return f"{self.label} ({self.disk.blob_url.partition('?')[0]})"


def check_disk(disk: DiskInput, profile: Profile, allow_endpoints: Sequence[str]) -> DiskRun:
    """``vmimage check SAS_URI --role ROLE`` on one disk."""
    try:
        report = check_target(disk.sas_uri, profile, disk.role, allow_endpoints=allow_endpoints)
    except VmimageError as exc:
        return DiskRun(disk, None, printable(one_line(str(exc), limit=1000)))
    return DiskRun(disk, report, None)


def _unreadable(run: DiskRun, profile: Profile) -> Finding:
    rule_id = UNREADABLE_RULE.get(run.disk.role, OS_UNREADABLE_RULE)
    meta = find_rule(rule_id)
    if run.disk.lun is None:
        message = f"{run.shown}: no operating system found ({run.error})"
    else:
        message = f"{run.shown}: cannot be read as a disk ({run.error})"
    return merge(meta, [violated(message)], effective_severity(meta, profile))


def _note(run: DiskRun) -> str:
    if run.report is None:
        return f"{run.shown}: not checked: {run.error}"
    disk = run.report.disk or {}
    size = disk.get("virtual_size")
    read = run.report.bytes_read
    facts = [str(disk.get("format_name") or run.report.target_kind)]
    if isinstance(size, int):
        facts.append(format_size(size))
    if read is not None:
        facts.append(f"{format_size(read)} read")
    return (f"{run.shown}: {', '.join(facts)}, role {run.report.role}: "
            f"{run.report.counts_line}")


def combine(inputs: CertificationInputs, runs: Sequence[DiskRun], profile: Profile,
            started: datetime, duration: float) -> Report:
    """One report of every disk's findings: the OS disk's facts and identity, each finding
    prefixed with its disk when there are several, a note per disk saying what was read."""
    several = len(runs) > 1
    findings: list[Finding] = []
    for run in runs:
        if run.report is None:
            findings.append(_unreadable(run, profile))
            continue
        for finding in run.report.findings:
            message = f"{run.label}: {finding.message}" if several else finding.message
            findings.append(dataclasses.replace(finding, message=message))
    os_run = next((r for r in runs if r.disk.lun is None), None)
    main = os_run.report if os_run is not None else None
    notes = [_note(r) for r in runs]
    if not runs:
        notes.append("no VHD to read: a gallery image cannot be checked by the service")
    read = [r.report.bytes_read for r in runs if r.report is not None and r.report.bytes_read]
    target = os_run.disk.blob_url.partition("?")[0] if os_run is not None else (
        f"{inputs.ticket.offer}/{inputs.ticket.sku} {inputs.ticket.version}")
    return Report(tool_version=__version__, target=target,
                  target_kind=main.target_kind if main is not None else "image",
                  profile=profile.name, started=started, duration_s=duration,
                  findings=findings, system=dict(main.system) if main is not None else {},
                  bytes_read=sum(read) if read else None,
                  disk=main.disk if main is not None else None,
                  role=f"os-{inputs.os_family}", mode="offline",
                  identity=dict(main.identity) if main is not None else {}, notes=tuple(notes))


def certify(inputs: CertificationInputs, profile: Profile,
            allow_endpoints: Sequence[str]) -> Report:
    """Check every disk of a request and combine the reports."""
    started, clock = now(), time.perf_counter()
    runs = [check_disk(d, profile, allow_endpoints) for d in inputs.disks]
    return combine(inputs, runs, profile, started, time.perf_counter() - clock)


def _summary(report: Report, request_id: int) -> dict[str, Any]:
    return {"request": request_id, "verdict": report.verdict,
            "verdict_line": report.verdict_line, "counts": report.counts,
            "failed": report.failed_ids, "disks": list(report.notes),
            "bytes_read": report.bytes_read}


def run_certification(store: Store, allow_endpoints: Sequence[str], job: Job) -> Done:
    """The handler of a certification job (``payload["request"]``): check, then hand back
    the outcome to record. A request withdrawn (or decided) before or during the run is left
    as it is."""
    request_id = int(job.payload["request"])
    try:
        inputs = certification_inputs(store, request_id)
    except (NotFound, Conflict) as exc:
        return Done({"request": request_id, "recorded": False, "why": str(exc)})
    _log.info("job %s: certifying request %d (%d disk(s)), process %d", job.id, request_id,
              len(inputs.disks), os.getpid())
    report = certify(inputs, store.profile, allow_endpoints)
    result = _summary(report, request_id)

    def record(session: Session) -> None:
        try:
            with session.begin_nested():  # a refusal leaves the job's own end intact
                apply_certification_outcome(session, request_id, report, job.id)
            result["recorded"] = True
        except (NotFound, Conflict) as exc:  # withdrawn while it ran
            result["recorded"], result["why"] = False, str(exc)

    return Done(result, record)
