"""The job engine scaled out: ``vmimage serve --redis`` hands jobs to ``vmimage serve worker``
processes through a real ``redis-server`` (Debian's package), on a real PostgreSQL.

One deployment, taken through what must survive (process starts cost seconds here, so the
phases share it, in order):

1. A server killed while its jobs wait in Redis (and one job it recorded but never handed
   over): restarted, with two worker commands (three processes), every job runs, once.
2. The workers share the jobs, each process running no more than its ``--threads`` at once.
3. A certification request is run by a worker: the real check of a VHD in Azurite (HTTPS,
   allowed by ``--allow-endpoint``), its report kept.
4. A worker process killed (SIGKILL) in the middle of a job: another finishes it, once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import postgres
from tests import service_jobs_support as sj
from tests.azurite import Azurite, assert_no_secrets, server
from tests.redis_server import Redis, redis_server  # noqa: F401 - fixture
from tests.service_support import Service
from vmimage.app.publishing.store import Store
from vmimage.catalog.jobs import Job

PROFILE = "azure-current"
LEASE = "2"


@dataclass
class Blob:
    """A VHD without a system in Azurite (HTTPS): its URL and SAS URI."""

    az: Azurite
    url: str
    sas: str

    def env(self) -> dict[str, str]:
        """What a process reading it needs: trust in Azurite's certificate."""
        return {"SSL_CERT_FILE": str(self.az.cert)}

    @property
    def endpoint(self) -> str:
        """Its ``--allow-endpoint``."""
        return f"127.0.0.1:{self.az.port}"


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blob]:
    az = server(True)
    container = az.container()
    work = tmp_path_factory.mktemp("blank")
    vhd = sj.blank_vhd(work / "blank.vhd", "30G")
    try:
        yield Blob(az, *sj.put_vhd(az, container, vhd, "blank.vhd"))
    finally:
        vhd.unlink()
        az.service().delete_container(container)


@pytest.fixture(scope="module")
def cluster() -> Iterator[postgres.Postgres]:
    running = postgres.start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Deployment:
    """A database and a Redis, and how its servers and workers are started."""

    database: str
    redis: str
    state: Path
    blob: Blob

    def server(self) -> Service:
        return sj.start_server(self.database, self.state, "--redis", self.redis,
                               "--job-lease", LEASE, "--allow-endpoint", self.blob.endpoint,
                               profile=PROFILE, env=self.blob.env())

    def worker(self, *args: str) -> sj.Worker:
        return sj.start_worker(self.database, self.state, self.redis, "--job-lease", LEASE,
                               "--allow-endpoint", self.blob.endpoint, *args, profile=PROFILE,
                               env=self.blob.env())


def _certify_blank(service: Service, blob: Blob, offer: str) -> tuple[str, str, int]:
    """A request to certify a disk without a system: (the token, the version, the request)."""
    _, token = service.token("redis")
    client = service.session(token)
    path = sj.version_with(client, offer, blob.url, None, [blob.sas])
    return token, path, sj.request(client, path)["id"]


def _succeeded(store: Store, ids: list[str], what: str) -> list[Job]:
    """The jobs, once every one succeeded."""
    return sj.wait_for(what, lambda: (r := [sj.job(store, i) for i in ids]) and all(
        x.state == "succeeded" for x in r) and r, 90)


def test_redis_workers_share_jobs_survive_kills_and_run_each_once(
        cluster: postgres.Postgres, redis_server: Redis, blank: Blob,  # noqa: F811
        tmp_path: Path) -> None:
    deploy = Deployment(cluster.create_database(), redis_server.url, tmp_path, blank)
    log = tmp_path / "sleep.log"
    # 1. The server dies with jobs in the queue, and one it never handed over.
    first = deploy.server()  # no worker yet: what it hands over waits in Redis
    try:
        store = first.store()
        queued = [sj.submit_sleep(store, log, 0.2) for _ in range(3)]
        token, path, request_id = _certify_blank(first, blank, "contoso-redis")
        sj.wait_for("the jobs in the queue", lambda: all(
            sj.job(store, i).dispatched_at is not None for i in queued), 30)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        queued.append(sj.submit_sleep(store, log, 0.2))
    finally:
        first.stop()
    with ThreadPoolExecutor(3) as pool:  # they start side by side
        starting = [pool.submit(deploy.server), pool.submit(deploy.worker, "--threads", "2"),
                    pool.submit(deploy.worker, "--processes", "2", "--threads", "1")]
        service = starting[0].result()
        workers = [f.result() for f in starting[1:]]
    try:
        store = service.store()
        rows = _succeeded(store, queued, "the queued jobs")
        assert [row.attempts for row in rows] == [1, 1, 1, 1]
        for job_id in queued:
            assert len(sj.lines(log, "start", job_id)) == 1 == len(sj.lines(log, "done", job_id))
        # 2. Shared between the worker processes, each within its threads.
        sj.wait_for("the workers", lambda: workers[0].consuming(1) and workers[1].consuming(2))
        ids = [sj.submit_sleep(store, log, 0.5) for _ in range(10)]
        rows = _succeeded(store, ids, "ten jobs")
        by_pid: dict[int, list[Job]] = {}
        for row in rows:
            assert row.result is not None and row.attempts == 1
            by_pid.setdefault(row.result["pid"], []).append(row)
        assert len(by_pid) >= 2
        assert sj.max_overlap(rows) <= 4  # 2 threads, and 2 processes of 1 thread
        assert all(sj.max_overlap(mine) <= 2 for mine in by_pid.values())
        # 3. The certification requested before the server died, run by a worker.
        client = service.session(token)
        done = sj.wait_for("the certification", lambda: sj.decided(client, path), 90)
        assert done["id"] == request_id and done["state"] == "failed"
        assert done["job"]["attempts"] == 1 and len(done["reports"]) == 2
        assert "OFFER-OS-FAMILY" in done["message"]
        # 4. The worker process running a long job is killed: another one finishes it, once.
        job_id = sj.submit_sleep(store, log, 3)
        sj.wait_for("the job to start", lambda: sj.lines(log, "start", job_id), 30)
        victim = sj.owner_pid(sj.job(store, job_id))
        os.kill(victim, signal.SIGKILL)
        row = sj.wait_for("the job to finish", lambda: (r := sj.job(store, job_id)).state
                          == "succeeded" and r, 60)
        assert row.attempts == 2 and row.result is not None and row.result["pid"] != victim
        assert len(sj.lines(log, "start", job_id)) == 2
        assert sj.lines(log, "done", job_id) == [f"done {job_id} {row.result['pid']}"]
    finally:
        for worker in workers:
            worker.stop()
        service.stop()
    for text in (first.logs(), service.logs(), *(w.logs() for w in workers)):
        assert "Traceback" not in text
        assert_no_secrets(text)
