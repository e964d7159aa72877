"""The scale-out engine: Dramatiq on Redis. A server records each job and hands its ID to a
Redis queue; ``vmimage serve worker`` processes, on any machines that reach the database and
Redis, take IDs from the queue and run the jobs (docs/service.md says why Dramatiq).

The job table stays the truth; the queue only says "look at job X". A message is the job ID
alone (no secret travels through Redis). A worker claims the job in the table before running
it, so a message delivered twice (Dramatiq redelivers a dead worker's unacknowledged messages;
the sweeper below hands a job over again) runs the job once. A worker acknowledges a message
only after the job ended (Dramatiq's default), and a sweeper in every process hands to the
queue what it lacks: a job recorded by a server that died before handing it over, a job whose
worker died (its lease expired), a job handed over long ago and never taken (Redis lost it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from vmimage.jobs.model import Job, JobSettings, JobSpec, JobStore
from vmimage.jobs.runner import Runner, error_text

if TYPE_CHECKING:
    from dramatiq import Actor
    from dramatiq.brokers.redis import RedisBroker

_log = logging.getLogger("vmimage.jobs")
#: Redis keys are prefixed with this; the queue and the actor are named so.
NAMESPACE = "vmimage"
QUEUE = "vmimage-jobs"
ACTOR = "vmimage_job"


def shown(url: str) -> str:
    """A Redis URL as it may be printed (its password hidden)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, run: Callable[[str], object] | None = None
            ) -> tuple[RedisBroker, Actor[[str], object]]:
    """The broker on ``url`` and the one actor, which runs ``run(job_id)`` in a worker (a
    server only sends, so it gives none).

    No Dramatiq middleware: retries and time limits are the job table's business (a lease,
    attempts), not the queue's.
    """
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url, namespace=NAMESPACE,  # type: ignore[no-untyped-call]
                         middleware=[])

    def job(job_id: str) -> None:
        if run is not None:
            run(job_id)

    actor: Actor[[str], object] = dramatiq.Actor(job, broker=broker, actor_name=ACTOR,
                                                 queue_name=QUEUE, priority=0, options={})
    return broker, actor


class Dispatcher:
    """Hands jobs to the queue: those just submitted, and what the sweeper finds."""

    def __init__(self, store: JobStore, settings: JobSettings,
                 actor: Actor[[str], object]) -> None:
        self.store = store
        self.settings = settings
        self.actor = actor
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def dispatch(self, every: bool = False) -> int:
        """Hand every job due to the queue; how many were handed."""
        ids = self.store.take_for_dispatch(self.settings.redispatch, every)
        for n, job_id in enumerate(ids):
            try:
                self.actor.send(job_id)
            except Exception as exc:  # Redis is away: the next sweep hands them over
                _log.warning("the job queue refused job %s: %s", job_id, error_text(exc))
                self.store.undispatch(ids[n:])
                return n
        if ids:
            _log.debug("handed %d job(s) to the queue", len(ids))
        return len(ids)

    def start(self, every: bool = False) -> None:
        """Sweep every ``poll`` seconds (and at once with ``every``: all queued jobs)."""
        try:
            self.dispatch(every)
        except Exception as exc:
            _log.warning("handing jobs to the queue failed: %s", error_text(exc))
        self._thread = threading.Thread(target=self._loop, name="vmimage-job-sweeper",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Sweep now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatch()
            except Exception as exc:  # the database or Redis is away: sweep again later
                _log.warning("handing jobs to the queue failed: %s", error_text(exc))


class RedisEngine:
    """A server's side: record jobs and hand them to the queue; run none."""

    def __init__(self, store: JobStore, settings: JobSettings) -> None:
        assert settings.redis is not None
        self.store = store
        self.settings = settings
        self.broker, actor = connect(settings.redis)
        self.dispatcher = Dispatcher(store, settings, actor)

    def submit(self, spec: JobSpec) -> Job:
        """Record the job (or find its twin) and hand it to the queue now."""
        job, _ = self.store.submit(spec, self.settings.max_attempts)
        self.dispatcher.wake()
        return job

    def start(self) -> None:
        """Hand every queued job over (this server may have died before it did), then sweep."""
        self.dispatcher.start(every=True)

    def stop(self, grace: float = 10.0) -> None:
        """Stop sweeping and close the connections."""
        self.dispatcher.stop()
        self.broker.close()


def run_worker(store: JobStore, runner: Runner, settings: JobSettings, threads: int,
               stop: threading.Event) -> None:
    """One worker process: ``threads`` threads run jobs from the queue until ``stop`` is set.

    Each thread holds one message at a time (no prefetch beyond the threads), so an idle
    worker elsewhere gets the next job rather than this one's backlog.
    """
    import dramatiq

    assert settings.redis is not None
    broker, actor = connect(settings.redis, runner.run)
    dispatcher = Dispatcher(store, settings, actor)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=250)
    worker.queue_prefetch = threads
    worker.start()
    dispatcher.start()
    _log.info("worker %s: %d thread(s) on queue %s at %s", runner.owner, threads, QUEUE,
              shown(settings.redis))
    try:
        stop.wait()
    finally:
        dispatcher.stop()
        worker.stop(timeout=int(timedelta(seconds=10).total_seconds() * 1000))
        runner.stop()
        broker.close()
