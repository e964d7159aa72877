"""Certification requests (PUB-CERT, CRT-QUESTIONNAIRE) and the seam for the job engine.

:func:`request_certification` records a request once the version meets every rule (the offer's
manifest rules, the SAS rules, a SAS URI on every VHD) and moves the version to
``certification-requested``. It certifies nothing: the outcome comes only from a real run of
the checks on the VHDs, which the job engine (``vmimage.jobs``, wired in
:mod:`vmimage.app.publishing.jobs`) performs. The engine plugs in here:

- :func:`set_certification_starter` registers the function the service calls, after the
  request is committed, with a :class:`Ticket` (without the engine the request waits, and
  :func:`pending_certifications` lists it for an engine that starts later);
- :func:`certification_inputs` gives the engine what to check: each disk's role, LUN and SAS
  URI (unsealed, registered with the redactor);
- :func:`record_certification_outcome` takes the engine's report of that run: the version
  becomes ``certified`` when the report is a full pass (:attr:`Report.certified`), ``failed``
  otherwise, and the report is stored as JSON and HTML beside the publisher's (CRT-ARTIFACTS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmimage.app.publishing import lookup, out, records, versions, views
from vmimage.app.publishing.documents import CertificationOut, Questionnaire
from vmimage.app.publishing.errors import Conflict, NotFound, Refused
from vmimage.app.publishing.lifecycle import LOCKED, State, transition
from vmimage.app.publishing.reports import store_report
from vmimage.app.publishing.starters import Starter
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import CertificationRequest, ImageVersion, now
from vmimage.report.model import Report

#: A request's states: waiting for (or in) a run, then the run's outcome, or withdrawn.
REQUESTED, CERTIFIED, FAILED, WITHDRAWN = "requested", "certified", "failed", "withdrawn"


@dataclass(frozen=True)
class Ticket:
    """What the job engine is handed when a request is made: enough to find it again."""

    request_id: int
    publisher: str
    offer: str
    sku: str
    version: str
    #: The ``Idempotency-Key`` the publisher's request carried, if any.
    client_key: str | None = None


@dataclass(frozen=True)
class DiskInput:
    """One disk the certification run reads: its SAS URI is a secret (never log it)."""

    role: str  # "os-linux", "os-windows" or "data"
    lun: int | None
    blob_url: str
    sas_uri: str


@dataclass(frozen=True)
class CertificationInputs:
    """Everything a certification run needs to know about one request."""

    ticket: Ticket
    os_family: str
    image_type: str
    disks: tuple[DiskInput, ...]
    gallery_resource_id: str | None


CertificationStarter = Callable[[Ticket], None]
_starter: Starter[Ticket] = Starter("certification request")


def set_certification_starter(starter: CertificationStarter | None) -> None:
    """Register the job engine's entry point (None: requests wait, unstarted)."""
    _starter.set(starter)


def _ready(row: ImageVersion) -> bool:
    return State(row.state) in LOCKED


def request_certification(store: Store, caller: Caller, offer_id: str, sku_id: str,
                          number: str, questionnaire: Questionnaire | None,
                          client_key: str | None = None) -> CertificationOut:
    """Request certification of one version (PUB-CERT) with the questionnaire's answers (the
    SKU's own when none are given).

    The offer is judged as it would be submitted: the versions already submitted, certified,
    staged or published, and this one, with what is published as ``--previous``.

    Raises:
        Conflict: the version is not a draft (or failed), or a disk has no SAS URI.
        Refused: a manifest rule or a SAS rule fails (the report says which).
    """
    with store.write() as session:
        row = lookup.locked_version(session, caller, offer_id, sku_id, number)
        target = transition("request-certification", row.state, f"version {number}")
        offer = row.sku.offer
        missing = [("OS disk" if d.lun is None else f"data disk LUN {d.lun}")
                   for d in row.disks if d.empty_size is None and d.sas_sealed is None]
        if missing:
            raise Conflict(f"version {number}: {', '.join(missing)} has no SAS URI; give it "
                           "with PUT .../sas first (PUB-VHD-URLS)")
        timer = views.Timer()
        loaded = views.render(offer, lambda v: v is row or _ready(v))
        assert loaded is not None
        findings = views.judge(loaded, store.profile, records.previous_of(offer))
        if views.failing(findings):
            bad = views.failing(findings)
            raise Refused(f"certification not requested: {', '.join(f.check_id for f in bad)} "
                          f"failed: {bad[0].message}",
                          timer.report(findings, str(loaded.path), store.profile))
        versions.judge_sas(store, [u for d in row.disks
                                   if (u := versions.sas_uri(store, offer, d)) is not None])
        answers = questionnaire.model_dump(mode="json") if questionnaire is not None \
            else dict(row.sku.questionnaire)
        request = CertificationRequest(state=REQUESTED, questionnaire=answers)
        row.certifications.append(request)
        records.set_state(row, target)
        session.flush()
        ticket = Ticket(request.id, caller.namespace, offer_id, sku_id, number, client_key)
        result = out.certification(request)
    _starter.start(ticket, str(ticket.request_id))
    return result


def withdraw_certification(store: Store, caller: Caller, offer_id: str, sku_id: str,
                           number: str) -> CertificationOut:
    """Withdraw the pending request: the version is a draft again.

    Raises:
        Conflict: no request is pending.
    """
    with store.write() as session:
        row = lookup.locked_version(session, caller, offer_id, sku_id, number)
        target = transition("withdraw-certification", row.state, f"version {number}")
        request = row.certifications[-1]
        request.state, request.finished_at = WITHDRAWN, now()
        request.message = "withdrawn by the publisher"
        records.set_state(row, target)
        return out.certification(request)


def list_certifications(store: Store, caller: Caller, offer_id: str, sku_id: str,
                        number: str) -> list[CertificationOut]:
    """Every certification request of a version, oldest first."""
    with store.read() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        return [out.certification(r) for r in row.certifications]


# ---------------------------------------------------------------------------------------------
# The job engine's side


def pending_certifications(store: Store) -> list[Ticket]:
    """Every request that waits for a run, oldest first (for an engine that starts late)."""
    with store.read() as session:
        rows = session.scalars(select(CertificationRequest)
                               .where(CertificationRequest.state == REQUESTED)
                               .order_by(CertificationRequest.id))
        return [_ticket(r) for r in rows]


def _ticket(request: CertificationRequest) -> Ticket:
    version = request.version
    sku = version.sku
    return Ticket(request.id, sku.offer.publisher.namespace, sku.offer.offer_id, sku.sku_id,
                  version.version)


def _request(session: Session, request_id: int) -> CertificationRequest:
    request = session.get(CertificationRequest, request_id)
    if request is None:
        raise NotFound(f"no certification request {request_id}")
    return request


def certification_inputs(store: Store, request_id: int) -> CertificationInputs:
    """What the run of request ``request_id`` checks (SAS URIs unsealed: secrets).

    Raises:
        NotFound: no such request.
        Conflict: it is not waiting for a run (withdrawn, or decided).
    """
    with store.read() as session:
        request = _request(session, request_id)
        if request.state != REQUESTED:
            raise Conflict(f"certification request {request_id} is {request.state}")
        version = request.version
        sku, offer = version.sku, version.sku.offer
        disks = []
        for disk in version.disks:
            uri = versions.sas_uri(store, offer, disk)
            blob = out.blob_of(offer, disk)
            if uri is None or blob is None:
                continue
            role = f"os-{sku.os_family}" if disk.lun is None else "data"
            disks.append(DiskInput(role, disk.lun, blob, uri))
        return CertificationInputs(_ticket(request), sku.os_family, sku.image_type,
                                   tuple(disks), version.gallery_resource_id)


def record_certification_outcome(store: Store, request_id: int, report: Report,
                                 job_id: str | None = None) -> CertificationOut:
    """Record the outcome of a real certification run (the job engine's call): certified
    when ``report`` is a full pass, failed otherwise; the report is kept as JSON and HTML.

    Raises:
        NotFound: no such request.
        Conflict: the request is not waiting for a run (withdrawn meanwhile, or decided).
    """
    with store.write() as session:
        return apply_certification_outcome(session, request_id, report, job_id)


def apply_certification_outcome(session: Session, request_id: int, report: Report,
                                job_id: str | None = None) -> CertificationOut:
    """:func:`record_certification_outcome` in the caller's transaction: the job engine
    records a job's end in the same one, so the outcome is recorded exactly when the job is.

    Raises:
        NotFound: no such request.
        Conflict: the request is not waiting for a run (nothing is written then).
    """
    request = _request(session, request_id)
    # The version's row first, as a withdrawal locks it: the two take turns, never deadlock.
    version = request.version
    session.refresh(version, with_for_update=True)
    session.refresh(request)
    if request.state != REQUESTED:
        raise Conflict(f"certification request {request_id} is {request.state}: its "
                       "outcome is not recorded")
    passed = report.certified
    target = transition("certification-passed" if passed else "certification-failed",
                        version.state, f"version {version.version}")
    request.state = CERTIFIED if passed else FAILED
    request.finished_at, request.job_id = now(), job_id
    request.message = report.verdict_line
    records.set_state(version, target)
    store_report(session, version, report, request)
    return out.certification(request)
