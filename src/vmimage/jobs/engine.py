"""The one interface of the job engine, whichever runs the jobs: :func:`open_engine` gives
the in-process engine by default, the Dramatiq one when a Redis URL is set; a caller submits
jobs, starts and stops it the same way with either."""

from __future__ import annotations

from typing import Protocol

from vmimage.jobs.model import KINDS, Job, JobSettings, JobSpec, JobStore, Kinds, owner_name
from vmimage.jobs.runner import Runner


class Engine(Protocol):
    """Runs submitted jobs in the background, each once."""

    def submit(self, spec: JobSpec) -> Job:
        """Record the job (the recorded one when its key is known) and have it run."""

    def start(self) -> None:
        """Begin running (or handing out) jobs, those left by an earlier process included."""

    def stop(self, grace: float = 10.0) -> None:
        """Take no new job; give the running ones ``grace`` seconds."""


def open_engine(store: JobStore, settings: JobSettings, kinds: Kinds = KINDS) -> Engine:
    """The engine ``settings`` ask for: Dramatiq on Redis when ``settings.redis`` is set
    (this process records and hands out jobs, workers run them), else in this process."""
    if settings.redis:
        from vmimage.jobs.redisqueue import RedisEngine

        return RedisEngine(store, settings)
    from vmimage.jobs.inprocess import InProcessEngine

    return InProcessEngine(store, Runner(store, kinds, owner_name(), settings.lease), settings)


def run_worker(store: JobStore, settings: JobSettings, threads: int,
               kinds: Kinds = KINDS) -> None:
    """Run jobs from the Redis queue on ``threads`` threads in this process, until
    interrupted (``vmimage serve worker``)."""
    import threading

    from vmimage.jobs.redisqueue import run_worker as run

    runner = Runner(store, kinds, owner_name(), settings.lease)
    run(store, runner, settings, threads, threading.Event())
