"""The job engine in the service: its store, its kinds of job, and how certification requests
become jobs (issue 14, "Jobs"; docs/service.md).

- :func:`start` (``vmimage serve``) opens the engine the settings ask for (in this process, or
  Dramatiq on Redis), registers itself as the certification starter, and submits a job for
  every request that waits without one (a server restarted with requests pending).
- :func:`run_worker` (``vmimage serve worker``) runs jobs from Redis in this process.
- :func:`request_certification` is the API's request: with an ``Idempotency-Key``, the same
  request sent again answers with the request and job it made the first time.

Each certification request is one job (its idempotency key is ``certification:<request ID>``),
however often it is submitted: by the API, at a restart, by two servers at once.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence

from sqlalchemy import select

from vmimage.app.publishing import (
    certification,
    ingestion,
    jobviews,
    lookup,
    out,
    vmimages,
)
from vmimage.app.publishing.certification import Ticket
from vmimage.app.publishing.documents import CertificationOut, Questionnaire
from vmimage.app.publishing.errors import Conflict, PublishingError
from vmimage.app.publishing.jobstore import DatabaseJobStore
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.classic import VmImage
from vmimage.catalog.jobs import KEY_LENGTH, Job
from vmimage.catalog.models import CertificationRequest, Publisher
from vmimage.errors import InputError
from vmimage.jobs.engine import Engine, open_engine
from vmimage.jobs.engine import run_worker as run_jobs
from vmimage.jobs.model import KINDS, Done, JobSettings, JobSpec, JobStore
from vmimage.jobs.model import Job as JobView
from vmimage.jobs.processes import supervise
from vmimage.jobs.redisqueue import shown

__all__ = ["JobSettings", "describe", "request_certification", "serve_workers", "settings",
           "start", "stop"]
#: Seconds a job stays claimed by a process that stopped renewing its lease.
DEFAULT_LEASE = 30.0

_log = logging.getLogger("vmimage.jobs")


def check_endpoints(allow_endpoints: Sequence[str]) -> tuple[str, ...]:
    """The ``--allow-endpoint`` entries, refused at start when one is not ``HOST[:PORT]``
    (the fetch policy of ``vmimage check URL``, :mod:`vmimage.fetchpolicy`, judges them, with
    ``VMIMAGE_ALLOW_ENDPOINTS`` added as for the CLI).

    Raises:
        InputError: an entry that is not an endpoint.
    """
    from vmimage.fetchpolicy import FetchPolicy

    FetchPolicy.from_settings(allow_endpoints, os.environ)
    return tuple(allow_endpoints)


def _certify(store: Store, allow_endpoints: tuple[str, ...], job: JobView) -> Done:
    # The checks (and every rule module) load with the first run, not with the server.
    from vmimage.app.publishing.certrun import run_certification

    return run_certification(store, allow_endpoints, job)


def _register(store: Store, allow_endpoints: tuple[str, ...], job: JobView) -> Done:
    from vmimage.app.publishing.regrun import run_registration

    return run_registration(store, allow_endpoints, job)


def register_kinds(store: Store, allow_endpoints: Sequence[str]) -> None:
    """The kinds of job this process runs, on ``store``: certification, registration (the
    classic Create VM Image API), configure (Partner Center's ingestion API)."""
    KINDS.register(jobviews.CERTIFICATION,
                   functools.partial(_certify, store, tuple(allow_endpoints)))
    KINDS.register(vmimages.REGISTRATION,
                   functools.partial(_register, store, tuple(allow_endpoints)))
    KINDS.register(ingestion.CONFIGURE, functools.partial(ingestion.run_configure, store))


def registration_spec(store: Store, image_id: int) -> JobSpec:
    """The job that registers image row ``image_id``."""
    with store.read() as session:
        row = session.get(VmImage, image_id)
        publisher = row.publisher_fk if row is not None else None
    return JobSpec(vmimages.REGISTRATION, vmimages.registration_key(image_id),
                   {"image": image_id}, publisher)


def _publisher_id(store: Store, namespace: str) -> int | None:
    with store.read() as session:
        return session.scalar(select(Publisher.id).where(Publisher.namespace == namespace))


def certification_spec(store: Store, ticket: Ticket) -> JobSpec:
    """The job that runs a certification request."""
    return JobSpec(jobviews.CERTIFICATION, jobviews.certification_key(ticket.request_id),
                   {"request": ticket.request_id, "offer": ticket.offer, "sku": ticket.sku,
                    "version": ticket.version},
                   _publisher_id(store, ticket.publisher), ticket.client_key)


def _link(store: Store, request_id: int, job_id: str) -> None:
    """Name the job on its request (the request's ``job_id``)."""
    with store.write() as session:
        request = session.get(CertificationRequest, request_id)
        if request is not None and request.job_id is None:
            request.job_id = job_id


def submit_certification(store: Store, engine: Engine, ticket: Ticket) -> None:
    """Submit (or find) the job of a request, and name it on the request."""
    job = engine.submit(certification_spec(store, ticket))
    _link(store, ticket.request_id, job.id)


def _submit_pending(store: Store, submit: Callable[[Ticket], object],
                    submit_registration: Callable[[int], object]) -> int:
    pending = certification.pending_certifications(store)
    for ticket in pending:
        submit(ticket)
    images = vmimages.pending_registrations(store)
    for image_id in images:
        submit_registration(image_id)
    return len(pending) + len(images)


def start(store: Store, settings: JobSettings, allow_endpoints: Sequence[str]) -> Engine:
    """Start this server's engine and take over the certification requests (those waiting
    without a job included).

    Raises:
        InputError: an ``--allow-endpoint`` entry is not an endpoint.
    """
    allowed = check_endpoints(allow_endpoints)
    register_kinds(store, allowed)
    engine = open_engine(DatabaseJobStore(store), settings)
    engine.start()
    starter = functools.partial(submit_certification, store, engine)
    certification.set_certification_starter(starter)

    def register(image_id: int) -> None:
        engine.submit(registration_spec(store, image_id))

    vmimages.set_registration_starter(register)
    ingestion.set_submitter(engine.submit)
    waiting = _submit_pending(store, starter, register)
    if waiting:
        _log.info("%d request(s) were waiting: their jobs are submitted", waiting)
    return engine


def stop(engine: Engine, grace: float = 10.0) -> None:
    """Stop the engine; requests made from now on wait for the next start."""
    certification.set_certification_starter(None)
    vmimages.set_registration_starter(None)
    ingestion.set_submitter(None)
    engine.stop(grace)


def settings(max_jobs: int, lease: float | None, redis: str | None,
             flag: str = "--jobs") -> JobSettings:
    """Job settings from the command's options (``flag`` names the one that sets
    ``max_jobs``).

    Raises:
        InputError: a value out of range, or a Redis URL that is not one.
    """
    lease = DEFAULT_LEASE if lease is None else lease
    if not 1 <= lease <= 3600:
        raise InputError("--job-lease", "must be between 1 and 3600 seconds")
    if not 0 <= max_jobs <= 256:
        raise InputError(flag, "must be between 0 and 256")
    if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise InputError("--redis", "not a Redis URL (redis://HOST:PORT/DB)")
    return JobSettings(max_jobs=max_jobs, lease=lease, poll=min(1.0, lease / 4), redis=redis)


def describe(settings: JobSettings) -> str:
    """Where this process's jobs run, for its first line (a Redis password hidden)."""
    if settings.redis:
        return f"jobs to workers through {shown(settings.redis)}"
    if settings.max_jobs == 0:
        return "no job runs in this process"
    return f"jobs in this process, {settings.max_jobs} at a time"


def run_worker(store: Store, settings: JobSettings, allow_endpoints: Sequence[str]) -> None:
    """One worker process: jobs from Redis on ``settings.max_jobs`` threads until
    interrupted (requests waiting without a job get one first)."""
    allowed = check_endpoints(allow_endpoints)
    register_kinds(store, allowed)
    jobs: JobStore = DatabaseJobStore(store)

    def submit(ticket: Ticket) -> None:
        job, _ = jobs.submit(certification_spec(store, ticket), settings.max_attempts)
        _link(store, ticket.request_id, job.id)

    def register(image_id: int) -> None:
        jobs.submit(registration_spec(store, image_id), settings.max_attempts)

    _submit_pending(store, submit, register)
    run_jobs(jobs, settings, settings.max_jobs)


def serve_workers(open_store: Callable[[], Store], settings: JobSettings,
                  allow_endpoints: Sequence[str], processes: int) -> None:
    """``vmimage serve worker``: ``processes`` worker processes (each opening its own store)
    until interrupted."""

    def one(_stop: object) -> None:
        store = open_store()
        try:
            run_worker(store, settings, allow_endpoints)
        finally:
            store.close()

    supervise(processes, one)


def _check_client_key(key: str) -> str:
    if not key or len(key) > KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise PublishingError(f"Idempotency-Key: 1 to {KEY_LENGTH} printable ASCII characters")
    return key


def _certification_of(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
                      request_id: int) -> CertificationOut:
    with store.read() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        request = next((r for r in row.certifications if r.id == request_id), None)
        if request is None:  # pragma: no cover - the version was deleted meanwhile
            raise Conflict(f"certification request {request_id} is gone")
        return out.certification(request)


def _earlier_request(store: Store, caller: Caller, client_key: str,
                     version: tuple[str, str, str]) -> int | None:
    """The request an earlier call with ``client_key`` made, if any.

    Raises:
        Conflict: that call was about another version.
    """
    with store.read() as session:
        known = session.scalar(select(Job).where(Job.publisher_fk == caller.publisher_id,
                                                 Job.client_key == client_key))
        if known is None:
            return None
        made = known.payload
        if (made.get("offer"), made.get("sku"), made.get("version")) != version:
            raise Conflict("this Idempotency-Key was used for another version's request")
        return int(made["request"])


def request_certification(store: Store, caller: Caller, offer_id: str, sku_id: str,
                          number: str, questionnaire: Questionnaire | None,
                          client_key: str | None = None) -> CertificationOut:
    """Request certification (PUB-CERT), answered with the request and its job.

    With ``client_key`` (an ``Idempotency-Key`` header), a request already made with it is
    answered again as it is now, and nothing new is requested.

    Raises:
        PublishingError: the key is not 1 to 200 printable ASCII characters.
        Conflict: the key was used for another version, or the version cannot be requested
            (see :func:`~vmimage.app.publishing.certification.request_certification`).
        Refused: a rule fails.
    """
    if client_key is not None:
        earlier = _earlier_request(store, caller, _check_client_key(client_key),
                                   (offer_id, sku_id, number))
        if earlier is not None:
            return _certification_of(store, caller, offer_id, sku_id, number, earlier)
    made_now = certification.request_certification(store, caller, offer_id, sku_id, number,
                                                   questionnaire, client_key)
    return _certification_of(store, caller, offer_id, sku_id, number, made_now.id)
