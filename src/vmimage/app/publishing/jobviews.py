"""Jobs as the API shows them: on the certification request they run, and at
``/api/v1/jobs/{id}`` for the publisher they work for (another publisher's is not found)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmimage.app.publishing.documents import JobOut
from vmimage.app.publishing.errors import NotFound
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.app.publishing.views import API
from vmimage.catalog.jobs import Job
from vmimage.catalog.models import CertificationRequest, ImageVersion

#: The kind of job that runs a certification request, and the key that makes it one job.
CERTIFICATION = "certification"


def certification_key(request_id: int) -> str:
    """The idempotency key of the job that runs request ``request_id``: one job a request."""
    return f"{CERTIFICATION}:{request_id}"


def version_path(row: ImageVersion) -> str:
    """The API address of a version."""
    sku = row.sku
    return f"{API}/offers/{sku.offer.offer_id}/skus/{sku.sku_id}/versions/{row.version}"


def report_links(request: CertificationRequest) -> list[str]:
    """Where the reports the service stored for a request's run are downloaded."""
    base = version_path(request.version)
    return [f"{base}/reports/{r.id}" for r in request.version.reports if r.request_fk == request.id]


def job_out(row: Job, request: CertificationRequest | None) -> JobOut:
    """A job, with the request it runs (and that run's reports)."""
    return JobOut(id=row.id, kind=row.kind, state=row.state, attempts=row.attempts,
                  max_attempts=row.max_attempts, created=row.created_at, started=row.started_at,
                  finished=row.finished_at, updated=row.updated_at, error=row.error,
                  result=dict(row.result) if row.result is not None else None,
                  certification=request.id if request is not None else None,
                  version=version_path(request.version) if request is not None else None,
                  reports=report_links(request) if request is not None else [])


def _request_of(session: Session, row: Job) -> CertificationRequest | None:
    if row.kind != CERTIFICATION:
        return None
    request_id = row.payload.get("request")
    return session.get(CertificationRequest, request_id) if isinstance(request_id, int) else None


def certification_job(session: Session, request: CertificationRequest) -> JobOut | None:
    """The job that runs ``request``, if one was submitted."""
    row = session.scalar(select(Job).where(Job.idempotency_key ==
                                           certification_key(request.id)))
    return job_out(row, request) if row is not None else None


def get_job(store: Store, caller: Caller, job_id: str) -> JobOut:
    """One of the caller's jobs.

    Raises:
        NotFound: no such job of this publisher.
    """
    with store.read() as session:
        row = session.scalar(select(Job).where(Job.id == job_id,
                                               Job.publisher_fk == caller.publisher_id))
        if row is None:
            raise NotFound(f"no job {job_id[:40]!r}")
        return job_out(row, _request_of(session, row))
