"""The default engine: jobs run in the server's own process, on a fixed number of threads,
taken from the job table (nothing to install).

A poller looks at the table every ``poll`` seconds, and at once when a job is submitted here,
and claims as many runnable jobs as it has idle threads: queued ones, and running ones whose
lease expired (their process died). So a server restarted after a crash, or another server on
the same database, finishes what a dead one left, and at most ``max_jobs`` jobs run in this
process at a time.

Threads are daemons: stopping waits ``grace`` seconds for the jobs running, then leaves them
to their leases (another process, or this server's next start, runs them again).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from vmimage.jobs.model import Job, JobSettings, JobSpec, JobStore
from vmimage.jobs.runner import Runner, error_text

_log = logging.getLogger("vmimage.jobs")


class InProcessEngine:
    """A bounded pool of job threads fed from the job table."""

    def __init__(self, store: JobStore, runner: Runner, settings: JobSettings) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings
        self._work: queue.Queue[Job | None] = queue.Queue()
        self._idle = settings.max_jobs
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def submit(self, spec: JobSpec) -> Job:
        """Record the job (or find its twin) and look for work at once."""
        job, _ = self.store.submit(spec, self.settings.max_attempts)
        self._wake.set()
        return job

    def start(self) -> None:
        """Start the threads and the poller (no thread at all when ``max_jobs`` is 0: this
        process only records jobs, another runs them)."""
        if self.settings.max_jobs < 1:
            return
        for n in range(self.settings.max_jobs):
            self._spawn(self._work_loop, f"vmimage-job-{n}")
        self._spawn(self._poll_loop, "vmimage-job-poller")

    def stop(self, grace: float = 10.0) -> None:
        """Take no new job; wait up to ``grace`` seconds for the running ones."""
        self._stop.set()
        self._wake.set()
        for _ in range(self.settings.max_jobs):
            self._work.put(None)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.runner.stop()

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._take_work()
            except Exception as exc:  # the database is away: look again later
                _log.warning("looking for jobs failed: %s", error_text(exc))
            self._wake.wait(self.settings.poll)

    def _take_work(self) -> None:
        with self._lock:
            idle = self._idle
        if idle < 1:
            return
        for job_id in self.store.runnable(idle, self.runner.held()):
            if self._stop.is_set():
                return
            job = self.runner.claim(job_id)
            if job is None:
                continue
            with self._lock:
                self._idle -= 1
            self._work.put(job)

    def _work_loop(self) -> None:
        while True:
            job = self._work.get()
            if job is None:
                return
            try:
                self.runner.execute(job)
            except Exception as exc:  # pragma: no cover - execute lets nothing escape
                _log.error("job %s: %s", job.id, error_text(exc))
            finally:
                with self._lock:
                    self._idle += 1
                self._wake.set()
