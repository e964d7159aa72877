"""After the service's certification run: the questionnaire the publisher answers
(CRT-QUESTIONNAIRE: answers, how to reach the VM, an explanation per failed check), the failed
checks with their remediation, and the certification package to download (CRT-ARTIFACTS: the
run's reports, its log, the questionnaire, a summary), as ``vmimage certify`` writes one.

The package is made from what the service stored, when it is asked for: nothing is kept twice,
and the questionnaire in it is the one answered last.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from vmimage import __version__
from vmimage.app.certify import explained
from vmimage.app.publishing import lookup, out
from vmimage.app.publishing.certification import WITHDRAWN
from vmimage.app.publishing.documents import CertificationOut
from vmimage.app.publishing.errors import Conflict, NotFound
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import CertificationRequest, ImageVersion, StoredReport
from vmimage.offer.model import Questionnaire
from vmimage.secrets import redact

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The same moment for every member: the package of one state is the same bytes each time.
_STAMP = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class FailedCheck:
    """A rule the run failed, and what to do about it."""

    check_id: str
    title: str
    message: str
    remediation: str


def _latest(row: ImageVersion) -> CertificationRequest:
    if not row.certifications:
        raise NotFound(f"version {row.version} has no certification request")
    return row.certifications[-1]


def _run_reports(row: ImageVersion, request: CertificationRequest) -> list[StoredReport]:
    return [r for r in row.reports if r.request_fk == request.id]


def _report_data(reports: list[StoredReport]) -> dict[str, Any] | None:
    found = next((r for r in reports if r.format == "json"), None)
    if found is None:
        return None
    data: dict[str, Any] = json.loads(found.content)
    return data


def _failed(data: dict[str, Any] | None) -> list[FailedCheck]:
    if data is None:
        return []
    return [FailedCheck(str(f["check_id"]), str(f["title"]), str(f["message"]),
                        str(f["remediation"]))
            for f in data.get("findings", [])
            if f.get("status") == "fail" and not f.get("waiver")]


def failed_checks(store: Store, caller: Caller, offer_id: str, sku_id: str,
                  number: str) -> list[FailedCheck]:
    """The failed checks of the latest run (none while it runs, or when it kept no report).

    Raises:
        NotFound: no such version, or no certification request.
    """
    with store.read() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        request = _latest(row)
        return _failed(_report_data(_run_reports(row, request)))


def answer_questionnaire(store: Store, caller: Caller, offer_id: str, sku_id: str,
                         number: str, answers: Questionnaire) -> CertificationOut:
    """Keep the questionnaire's answers with the latest certification request (the guide:
    answered after the automated tests; the request is not run again).

    Raises:
        NotFound: no such version, or no certification request.
        Conflict: the latest request was withdrawn.
    """
    with store.write() as session:
        row = lookup.locked_version(session, caller, offer_id, sku_id, number)
        request = _latest(row)
        if request.state == WITHDRAWN:
            raise Conflict(f"the latest certification request of version {number} was "
                           "withdrawn: request certification again first")
        request.questionnaire = answers.model_dump(mode="json")
        session.flush()
        return out.certification(request)


def _summary(row: ImageVersion, request: CertificationRequest, data: dict[str, Any] | None,
             failed: list[FailedCheck]) -> str:
    offer = row.sku.offer
    lines = [f"{request.state}: {offer.publisher.namespace}.{offer.offer_id} "
             f"SKU {row.sku.sku_id} version {row.version} (vmimage {__version__})",
             f"requested {request.requested_at.isoformat(timespec='seconds')}"
             + (f", finished {request.finished_at.isoformat(timespec='seconds')}"
                if request.finished_at else ""),
             f"message: {request.message or '-'}"]
    if data is not None:
        summary = data.get("summary", {})
        lines.append(f"profile {data.get('profile')}: {summary.get('verdict_line', '')}")
    lines += [f"failed: {f.check_id}: {f.message}" for f in failed]
    lines += ["", "Any failure means not certified (CRT-RESULTS)."]
    return redact("\n".join(lines)) + "\n"


def _log(request: CertificationRequest, data: dict[str, Any] | None) -> str:
    lines = [f"{request.requested_at.isoformat(timespec='seconds')} certification requested"]
    lines += [str(n) for n in (data or {}).get("notes", [])]
    if request.finished_at is not None:
        lines.append(f"{request.finished_at.isoformat(timespec='seconds')} {request.state}: "
                     f"{request.message or ''}")
    return redact("\n".join(lines)) + "\n"


def _package(session: Session, row: ImageVersion) -> tuple[bytes, str]:
    request = _latest(row)
    reports = _run_reports(row, request)
    data = _report_data(reports)
    failed = _failed(data)
    questionnaire = explained(dict(request.questionnaire), {f.check_id for f in failed})
    members = {"summary.txt": _summary(row, request, data, failed).encode(),
               "questionnaire.json": (redact(json.dumps(questionnaire, indent=2)) + "\n").encode(),
               "logs/certification.log": _log(request, data).encode()}
    for report in reports:
        members[f"results/report-{report.id}.{report.format}"] = report.content
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, _STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, content)
    offer = row.sku.offer
    name = _UNSAFE.sub("_", f"{offer.offer_id}-{row.sku.sku_id}-{row.version}-"
                            f"certification-{request.id}") + ".zip"
    return buffer.getvalue(), name


def package(store: Store, caller: Caller, offer_id: str, sku_id: str,
            number: str) -> tuple[bytes, str]:
    """The latest request's certification package as a zip, and a file name for it.

    Raises:
        NotFound: no such version, or no certification request.
    """
    with store.read() as session:
        return _package(session, lookup.version(session, caller, offer_id, sku_id, number))
