"""The job engine's store on the service's database (:mod:`vmimage.catalog.jobs`): every call
one short transaction, and a job's end recorded in the same transaction as its effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from vmimage.app.publishing.errors import Conflict, Invalid
from vmimage.app.publishing.store import Store
from vmimage.catalog import jobs as table
from vmimage.catalog.models import now
from vmimage.jobs.model import Done, Job, JobSpec
from vmimage.secrets import one_line
from vmimage.textsafe import printable


def view(row: table.Job) -> Job:
    """A job record as the engine sees it."""
    return Job(id=row.id, kind=row.kind, idempotency_key=row.idempotency_key, state=row.state,
               payload=dict(row.payload), attempts=row.attempts, max_attempts=row.max_attempts,
               publisher_id=row.publisher_fk, lease_owner=row.lease_owner,
               lease_expires=row.lease_expires_at,
               result=dict(row.result) if row.result is not None else None, error=row.error,
               created=row.created_at, started=row.started_at, finished=row.finished_at,
               updated=row.updated_at)


class DatabaseJobStore:
    """:class:`vmimage.jobs.model.JobStore` over a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(self, spec: JobSpec, max_attempts: int) -> tuple[Job, bool]:
        """Insert the job unless its key is known; (the job, whether it is new).

        Raises:
            Invalid: a key too long to be stored.
            Conflict: the client's key names another job of this publisher.
        """
        for key in (spec.key, spec.client_key or ""):
            if len(key) > table.KEY_LENGTH:
                raise Invalid(f"an idempotency key is at most {table.KEY_LENGTH} characters")
        job_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            "id": job_id, "kind": spec.kind, "idempotency_key": spec.key,
            "publisher_fk": spec.publisher_id, "client_key": spec.client_key,
            "state": table.QUEUED, "payload": dict(spec.payload), "attempts": 0,
            "max_attempts": max_attempts, "created_at": now(), "updated_at": now()}
        try:
            with self.store.write() as session:
                row = table.insert(session, values)
                return view(row), row.id == job_id
        except Conflict:  # the store maps IntegrityError: the client's key is taken
            raise Conflict("this Idempotency-Key was used for another request") from None

    def claim(self, job_id: str, owner: str, lease: float) -> Job | None:
        """Claim under ``owner``'s lease; fail a job out of attempts instead."""
        with self.store.write() as session:
            if table.claim(session, job_id, owner, now() + timedelta(seconds=lease)):
                row = session.get(table.Job, job_id)
                assert row is not None
                return view(row)
            table.give_up(session, job_id, "its process ended during every attempt (killed, "
                                           "or out of memory): given up")
            return None

    def renew(self, owner: str, job_ids: Sequence[str], lease: float) -> set[str]:
        """Extend the leases ``owner`` holds."""
        with self.store.write() as session:
            return table.renew(session, owner, job_ids, now() + timedelta(seconds=lease))

    def complete(self, job_id: str, owner: str, done: Done) -> bool:
        """Record success and apply the effect in one transaction, if the lease is ours."""
        with self.store.write() as session:
            row = table.held(session, job_id, owner)
            if row is None:
                return False
            if done.effect is not None:
                done.effect(session)
            table.finish(session, row, table.SUCCEEDED, dict(done.result), None)
            return True

    def fail(self, job_id: str, owner: str, error: str) -> bool:
        """Record failure (the error one line, redacted), if the lease is ours."""
        with self.store.write() as session:
            row = table.held(session, job_id, owner)
            if row is None:
                return False
            table.finish(session, row, table.FAILED, None, printable(one_line(error, limit=1000)))
            return True

    def runnable(self, limit: int, exclude: Sequence[str]) -> list[str]:
        """Claimable jobs, oldest first."""
        with self.store.read() as session:
            return table.runnable(session, limit, exclude)

    def take_for_dispatch(self, stale: float, every: bool) -> list[str]:
        """Jobs to hand to the queue, marked as handed (looked for in a read transaction
        first: a sweep that finds nothing takes no write lock)."""
        since = now() - timedelta(seconds=stale)
        with self.store.read() as session:
            found = table.due(session, since, every)
        if not found:
            return []
        with self.store.write() as session:
            return table.mark_dispatched(session, found, since, every)

    def undispatch(self, job_ids: Sequence[str]) -> None:
        """Hand these again at the next sweep."""
        with self.store.write() as session:
            table.undispatch(session, job_ids)
