"""Background jobs (certification runs) of the caller's publisher."""

from __future__ import annotations

from fastapi import APIRouter

from vmimage.app.publishing import jobviews
from vmimage.app.publishing.documents import JobOut
from vmimage.service.auth import CallerDep, StoreDep
from vmimage.service.routes import AUTH, errors

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", summary="A background job", responses=errors(*AUTH, 404))
def get_job(store: StoreDep, caller: CallerDep, job_id: str) -> JobOut:
    """Where the job stands (queued, running, succeeded, failed), how often it was started
    (a run whose process died is started again, and counts once), its times, what it found,
    and the reports it stored."""
    return jobviews.get_job(store, caller, job_id)
