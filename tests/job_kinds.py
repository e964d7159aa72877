"""Kinds of job that exist only in the tests' server and worker processes: ``test-sleep``,
observable and as slow as asked, so a test can kill the process running it; ``test-fail``.

A sleep job writes ``start JOB PID`` to its log when it begins and, as its effect (applied by
the engine in the transaction that records the job's end, only while the process still holds
the job), ``done JOB PID``; its result holds the process and the times it ran. Kept apart from
the other helpers so that the processes importing it load nothing more.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vmimage.jobs.model import KINDS, Done, Job

SLEEP = "test-sleep"
#: A job that fails, quoting its payload's ``url`` (a SAS URI) in its error.
FAIL = "test-fail"


def _sleep(job: Job) -> Done:
    log = Path(str(job.payload["log"]))
    pid, began = os.getpid(), time.time()
    with log.open("a") as f:
        f.write(f"start {job.id} {pid}\n")
    time.sleep(float(job.payload["seconds"]))

    def effect(_session: object) -> None:
        with log.open("a") as f:
            f.write(f"done {job.id} {pid}\n")

    return Done({"pid": pid, "began": began, "ended": time.time()}, effect)


def _fail(job: Job) -> Done:
    raise RuntimeError(f"could not read {job.payload['url']}\nsecond line")


def register_test_kinds() -> None:
    """Teach this process the test-only kinds of job."""
    KINDS.register(SLEEP, _sleep)
    KINDS.register(FAIL, _fail)
