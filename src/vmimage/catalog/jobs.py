"""The job table: every background job of the service (a certification run, later a
registration), so that a job outlives the process that runs it.

A job is claimed by one process at a time under a *lease* (an owner and an expiry that the
owner's heartbeat pushes forward). Every state change is one conditional ``UPDATE`` whose
``WHERE`` says what must still hold (still queued, or the lease expired; still ours), so two
processes racing for a job, or a process that lost its lease finishing late, cannot both win:
the database decides, on SQLite (one writer at a time) and on PostgreSQL (the row lock
re-checks the condition) alike.

The idempotency key is unique: the same request made twice names the same job.

Times are the processes' clocks (UTC), compared as bound parameters: machines that share a
database keep their clocks in sync (NTP); a lease lasts tens of seconds, so a skew of a second
does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from vmimage.catalog.models import ID_LENGTH, Base, now

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
#: An idempotency key or a client's key longer than this is refused before it is stored.
KEY_LENGTH = 200


class Job(Base):
    """One background job, its lease and its outcome."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("publisher_fk", "client_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    #: What makes two submissions the same job (``certification:42``): unique.
    idempotency_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    #: The publisher the job works for (None: the service's own), who alone may see it.
    publisher_fk: Mapped[int | None] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), index=True)
    #: The ``Idempotency-Key`` the publisher's request carried, unique per publisher.
    client_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: What the job works on (IDs, never a secret: a SAS token is unsealed when it runs).
    payload: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(ID_LENGTH * 2))
    lease_expires_at: Mapped[datetime | None]
    #: When the job was last handed to a queue (Redis); None: not yet, or to be handed again.
    dispatched_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


def _rows(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def insert(session: Session, values: dict[str, Any]) -> Job:
    """The job with ``values["idempotency_key"]``: inserted when new, else the one that is
    there (``INSERT ... ON CONFLICT DO NOTHING``, so a concurrent twin waits for, then reads,
    the winner's row instead of failing).

    Raises:
        sqlalchemy.exc.IntegrityError: another unique key (the client's key) is taken.
    """
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(Job).values(**values).on_conflict_do_nothing(
        index_elements=["idempotency_key"])
    session.execute(statement)
    row = session.scalar(select(Job).where(Job.idempotency_key == values["idempotency_key"]))
    assert row is not None
    return row


def _claimable(moment: datetime) -> ColumnElement[bool]:
    return or_(Job.state == QUEUED,
               and_(Job.state == RUNNING, Job.lease_expires_at < moment))


def claim(session: Session, job_id: str, owner: str, until: datetime) -> bool:
    """Take the job under a lease for ``owner`` when it is queued, or running under a lease
    that expired (its process died), and it has attempts left."""
    moment = now()
    done = session.execute(
        update(Job).where(Job.id == job_id, _claimable(moment),
                          Job.attempts < Job.max_attempts)
        .values(state=RUNNING, lease_owner=owner, lease_expires_at=until,
                attempts=Job.attempts + 1, started_at=moment, dispatched_at=None)
        .execution_options(synchronize_session=False))
    return _rows(done) == 1


def give_up(session: Session, job_id: str, error: str) -> bool:
    """Fail a job whose every attempt ended with its process (the lease expired each time)."""
    moment = now()
    done = session.execute(
        update(Job).where(Job.id == job_id, _claimable(moment),
                          Job.attempts >= Job.max_attempts)
        .values(state=FAILED, lease_owner=None, lease_expires_at=None, error=error,
                finished_at=moment)
        .execution_options(synchronize_session=False))
    return _rows(done) == 1


def renew(session: Session, owner: str, job_ids: Sequence[str], until: datetime) -> set[str]:
    """Push the leases ``owner`` still holds forward; the IDs it still holds."""
    if not job_ids:
        return set()
    session.execute(
        update(Job).where(Job.id.in_(job_ids), Job.state == RUNNING, Job.lease_owner == owner)
        .values(lease_expires_at=until).execution_options(synchronize_session=False))
    return set(session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.state == RUNNING,
                                                    Job.lease_owner == owner)))


def held(session: Session, job_id: str, owner: str) -> Job | None:
    """The job, locked for this transaction, when ``owner`` still holds its lease."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.state == RUNNING,
                                            Job.lease_owner == owner).with_for_update())


def finish(session: Session, row: Job, state: str, result: dict[str, Any] | None,
           error: str | None) -> None:
    """Record the end of a job :func:`held` returned (in the same transaction)."""
    row.state, row.result, row.error = state, result, error
    row.lease_owner, row.lease_expires_at, row.finished_at = None, None, now()


def runnable(session: Session, limit: int, exclude: Sequence[str] = ()) -> list[str]:
    """Up to ``limit`` jobs a process could claim, oldest first."""
    query = select(Job.id).where(_claimable(now())).order_by(Job.created_at, Job.id).limit(limit)
    if exclude:
        query = query.where(Job.id.not_in(exclude))
    return list(session.scalars(query))


def _due(moment: datetime, stale: datetime, every: bool) -> ColumnElement[bool]:
    waiting = Job.state == QUEUED
    if not every:
        waiting = and_(waiting, or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale))
    orphaned = and_(Job.state == RUNNING, Job.lease_expires_at < moment,
                    or_(Job.dispatched_at.is_(None), Job.dispatched_at < Job.lease_expires_at,
                        Job.dispatched_at < stale))
    return or_(waiting, orphaned)


def due(session: Session, stale: datetime, every: bool = False) -> list[str]:
    """The jobs to hand (again) to a queue: queued and never handed, or handed before
    ``stale`` (a queue that lost it); running under an expired lease and not handed since it
    expired (its worker died). ``every``: every queued job (a server starting, which may have
    died between recording a job and handing it over). Oldest first, at most 1000."""
    return list(session.scalars(select(Job.id).where(_due(now(), stale, every))
                                .order_by(Job.created_at, Job.id).limit(1000)))


def mark_dispatched(session: Session, job_ids: Sequence[str], stale: datetime,
                    every: bool = False) -> list[str]:
    """Mark the jobs of ``job_ids`` still :func:`due` as handed now; those marked (one by
    one: another process marking the same job first wins it)."""
    moment = now()
    taken = []
    for job_id in job_ids:
        done = session.execute(
            update(Job).where(Job.id == job_id, _due(moment, stale, every))
            .values(dispatched_at=moment).execution_options(synchronize_session=False))
        if _rows(done) == 1:
            taken.append(job_id)
    return taken


def undispatch(session: Session, job_ids: Sequence[str]) -> None:
    """The queue did not take these jobs: hand them over again at the next sweep."""
    session.execute(update(Job).where(Job.id.in_(job_ids), Job.state == QUEUED)
                    .values(dispatched_at=None).execution_options(synchronize_session=False))
