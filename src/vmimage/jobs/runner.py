"""Run one job under a lease: claim it, keep the lease alive while the handler works, record
the end. Both engines run jobs through a :class:`Runner`: the in-process one from its threads,
a Dramatiq worker from its actor.

The heartbeat is one thread per process, renewing every lease the process holds at once.
A process that stops renewing (killed, frozen, cut off from the database) loses its jobs when
their leases expire; another process claims them and runs them again, and the first one's
late result, if it ever comes, is refused (the store checks the lease when recording it).
"""

from __future__ import annotations

import logging
import threading
import time

from vmimage.errors import VmimageError
from vmimage.jobs.model import Done, Job, JobStore, Kinds
from vmimage.secrets import one_line
from vmimage.textsafe import printable

_log = logging.getLogger("vmimage.jobs")


def error_text(exc: BaseException) -> str:
    """What a job's record says of the error that ended it: one line, no secret (vmimage's
    own errors say what happened; anything else is named by its type too, being a bug)."""
    text = str(exc) if isinstance(exc, VmimageError) else f"{type(exc).__name__}: {exc}"
    return printable(one_line(text, limit=1000))


class Runner:
    """Claims and runs jobs for one owner (this process), renewing its leases."""

    def __init__(self, store: JobStore, kinds: Kinds, owner: str, lease: float) -> None:
        self.store = store
        self.kinds = kinds
        self.owner = owner
        self.lease = lease
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def held(self) -> list[str]:
        """The jobs this process runs now."""
        with self._lock:
            return sorted(self._held)

    def claim(self, job_id: str) -> Job | None:
        """The job under this process's lease, or None (another has it, or it ended)."""
        job = self.store.claim(job_id, self.owner, self.lease)
        if job is not None:
            with self._lock:
                self._held.add(job.id)
                self._start_heartbeat()
            _log.info("job %s (%s): attempt %d of %d", job.id, job.kind, job.attempts,
                      job.max_attempts)
        return job

    def execute(self, job: Job) -> None:
        """Run a claimed job's handler and record how it ended (if the lease is still ours).

        Nothing escapes: a handler's error fails the job; a failure to record the end (the
        database away) leaves the job to its lease, and another run later.
        """
        outcome: Done | str
        try:
            handler = self.kinds.get(job.kind)
            if handler is None:
                raise LookupError(f"this process runs no job of kind {job.kind!r}")
            outcome = handler(job)
        except Exception as exc:  # the job fails; the process goes on with others
            outcome = error_text(exc)
            _log.warning("job %s (%s) failed: %s", job.id, job.kind, outcome)
        try:
            if isinstance(outcome, str):
                recorded = self.store.fail(job.id, self.owner, outcome)
            else:
                recorded = self.store.complete(job.id, self.owner, outcome)
        except Exception as exc:
            _log.warning("job %s (%s): its end could not be recorded (%s); it runs again when "
                         "its lease expires", job.id, job.kind, error_text(exc))
            return
        finally:
            with self._lock:
                self._held.discard(job.id)
        if recorded:
            _log.info("job %s (%s) ended", job.id, job.kind)
        else:
            _log.warning("job %s (%s): its lease was lost (another process took it over); "
                         "this run's end is not recorded", job.id, job.kind)

    def run(self, job_id: str) -> bool:
        """Claim and execute; whether this process ran it."""
        job = self.claim(job_id)
        if job is None:
            return False
        self.execute(job)
        return True

    def stop(self) -> None:
        """Stop the heartbeat (the leases still held then expire)."""
        self._stop.set()

    def _start_heartbeat(self) -> None:
        if self._beat is None:
            self._beat = threading.Thread(target=self._heartbeat, name="vmimage-job-heartbeat",
                                          daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        interval = self.lease / 3
        while not self._stop.wait(interval):
            with self._lock:
                ids = sorted(self._held)
            if not ids:
                continue
            started = time.monotonic()
            try:
                kept = self.store.renew(self.owner, ids, self.lease)
            except Exception as exc:  # the database is away: try again at the next beat
                _log.warning("job leases not renewed: %s", error_text(exc))
                continue
            lost = set(ids) - kept
            with self._lock:
                lost &= self._held  # a job that just ended is not lost
            for job_id in sorted(lost):
                _log.warning("job %s: lease lost to another process", job_id)
            if time.monotonic() - started > interval:
                _log.warning("renewing job leases took %.1f s (lease %.0f s)",
                             time.monotonic() - started, self.lease)
