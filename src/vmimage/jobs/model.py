"""What the job engine knows: a job, the kinds of job and their handlers, its settings, and
the store it keeps jobs in (a protocol: the application layer implements it on the service's
database, which this package does not import).

A kind's handler does the work and may run more than once: when the process running it dies,
another process takes the job over and runs it again from the start. What the job *changes*
is therefore not done by the handler but handed back as :attr:`Done.effect`, which the store
applies in the transaction that records the job's end, and only if this process still holds
the job: a job's effect is applied once.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)


@dataclass(frozen=True)
class Job:
    """A job as recorded."""

    id: str
    kind: str
    idempotency_key: str
    state: str
    payload: Mapping[str, Any]
    attempts: int
    max_attempts: int
    publisher_id: int | None = None
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class JobSpec:
    """A job to submit: its kind, what makes it the same job as another (the idempotency
    key), what it works on, and for whom."""

    kind: str
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    publisher_id: int | None = None
    #: The client's own key (an ``Idempotency-Key`` header), unique per publisher.
    client_key: str | None = None


@dataclass(frozen=True)
class Done:
    """What a handler hands back: the result recorded with the job (JSON, no secret) and the
    effect, which the store applies in the transaction that records the end (it is called
    with that transaction), once."""

    result: Mapping[str, Any]
    effect: Callable[[Any], None] | None = None


Handler = Callable[[Job], Done]


class Kinds:
    """The kinds of job this process can run, by name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler`` for jobs of ``kind`` (registering a kind again replaces it)."""
        with self._lock:
            self._handlers[kind] = handler

    def get(self, kind: str) -> Handler | None:
        """The handler of ``kind``, if this process has one."""
        with self._lock:
            return self._handlers.get(kind)


#: The kinds every engine of this process runs: the application registers its own at
#: import, and a test may register one of its own.
KINDS = Kinds()


@dataclass(frozen=True)
class JobSettings:
    """How jobs run in this process."""

    #: Jobs run at once by this process (the in-process engine's threads).
    max_jobs: int = 4
    #: Seconds a lease lasts without a heartbeat; a heartbeat renews it every third of that.
    lease: float = 30.0
    #: Seconds between two looks at the job table for work (the in-process engine) or for
    #: jobs to hand to the queue again (the Redis engine).
    poll: float = 1.0
    #: Runs of a job whose process died each time, before the job is failed.
    max_attempts: int = 3
    #: ``redis://...``: jobs go to workers through Redis (Dramatiq); None: in this process.
    redis: str | None = None
    #: Seconds after which a job handed to the queue but never taken is handed again.
    redispatch: float = 600.0


class JobStore(Protocol):
    """Where jobs are recorded (the service's database)."""

    def submit(self, spec: JobSpec, max_attempts: int) -> tuple[Job, bool]:
        """The job of ``spec.key``: recorded when new (True), else the one recorded."""

    def claim(self, job_id: str, owner: str, lease: float) -> Job | None:
        """The job, now running under ``owner``'s lease; None when it is not claimable
        (taken, finished, or failed for want of attempts)."""

    def renew(self, owner: str, job_ids: Sequence[str], lease: float) -> set[str]:
        """Extend ``owner``'s leases; the IDs it still holds."""

    def complete(self, job_id: str, owner: str, done: Done) -> bool:
        """Record success and apply the effect, if ``owner`` still holds the job."""

    def fail(self, job_id: str, owner: str, error: str) -> bool:
        """Record failure, if ``owner`` still holds the job."""

    def runnable(self, limit: int, exclude: Sequence[str]) -> list[str]:
        """Up to ``limit`` claimable job IDs, oldest first."""

    def take_for_dispatch(self, stale: float, every: bool) -> list[str]:
        """The jobs to hand (again) to a queue, marked as handed."""

    def undispatch(self, job_ids: Sequence[str]) -> None:
        """The queue refused these: hand them again later."""


def owner_name() -> str:
    """This process's name on the leases it takes: host, process ID and a random suffix (a
    restarted process with a reused PID is still another owner)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
