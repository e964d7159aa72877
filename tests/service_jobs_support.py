"""Helpers for the job engine's tests: real ``vmimage serve`` and ``vmimage serve worker``
processes that also know a test-only kind of job, VHDs put in Azurite, and waiting.

The test kind (:mod:`tests.job_kinds`) exists only in these processes: they are the real
command, started through a two-line launcher that registers the kind first (nothing in
vmimage itself knows it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.azurite import Azurite, remember_sas
from tests.job_kinds import SLEEP
from tests.offer_support import run_cli
from tests.service_support import ROOT, START_TIMEOUT, Service, _relay, answering, first_line
from vmimage.app.publishing.jobstore import DatabaseJobStore
from vmimage.app.publishing.store import Store
from vmimage.catalog.jobs import Job
from vmimage.jobs.model import JobSpec

LAUNCHER = ("import sys; from tests.job_kinds import register_test_kinds; "
            "register_test_kinds(); from vmimage.cli import main; main(sys.argv[1:])")


def command(*args: str) -> list[str]:
    """``vmimage ARGS`` through the launcher."""
    return [sys.executable, "-c", LAUNCHER, *args]


def start_server(database: str, state_dir: Path, *args: str, profile: str = "azure-2015",
                 env: dict[str, str] | None = None) -> Service:
    """``vmimage serve`` (knowing the test kind) on a free port, ready to answer."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"server-{uuid.uuid4().hex[:6]}.log"
    deadline = time.monotonic() + START_TIMEOUT
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command("serve", "--db", database, "--state-dir", str(state_dir), "--bind",
                    "127.0.0.1:0", "--profile", profile, *args),
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, **(env or {}), "XDG_STATE_HOME": str(state_dir)})
    return answering(first_line(process, log, "vmimage serve", deadline), database, state_dir,
                     log, process, profile, deadline)


@contextmanager
def serving(database: str, state_dir: Path, *args: str, profile: str = "azure-2015",
            env: dict[str, str] | None = None) -> Iterator[Service]:
    """A server for the block, always stopped."""
    service = start_server(database, state_dir, *args, profile=profile, env=env)
    try:
        yield service
    finally:
        service.stop()


@dataclass
class Worker:
    """A running ``vmimage serve worker``."""

    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        """What it wrote."""
        return self.log.read_text("utf-8", errors="replace")

    def consuming(self, processes: int = 1) -> bool:
        """Whether its ``processes`` processes take jobs from the queue."""
        return self.logs().count(" on queue vmimage-jobs at ") >= processes

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(30)


def start_worker(database: str, state_dir: Path, redis: str, *args: str,
                 profile: str = "azure-2015", env: dict[str, str] | None = None) -> Worker:
    """``vmimage serve worker`` (knowing the test kind), started."""
    log = state_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command("serve", "worker", "--db", database, "--state-dir", str(state_dir),
                    "--redis", redis, "--profile", profile, *args),
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, **(env or {}), "XDG_STATE_HOME": str(state_dir)})
    line = first_line(process, log, "vmimage serve worker")
    assert "jobs to workers through redis://127.0.0.1:" in line, line
    _relay(process, log)
    return Worker(process, log)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0,
             every: float = 0.1) -> Any:
    """``check()`` once it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def submit_sleep(store: Store, log: Path, seconds: float, key: str | None = None) -> str:
    """A sleep job, recorded (a server or worker takes it from the table); its ID."""
    spec = JobSpec(SLEEP, key or f"test:{uuid.uuid4().hex}", {"seconds": seconds, "log": str(log)})
    job, _ = DatabaseJobStore(store).submit(spec, 3)
    return job.id


def job(store: Store, job_id: str) -> Job:
    """The job's record as it is now."""
    with store.read() as session:
        row = session.get(Job, job_id)
        assert row is not None
        session.expunge(row)
        return row


def jobs(store: Store) -> list[Job]:
    """Every job."""
    from sqlalchemy import select

    with store.read() as session:
        rows = list(session.scalars(select(Job).order_by(Job.created_at)))
        session.expunge_all()
        return rows


def owner_pid(row: Job) -> int:
    """The process holding a job (``host:pid:suffix``)."""
    assert row.lease_owner is not None
    return int(row.lease_owner.split(":")[-2])


def lines(log: Path, word: str, job_id: str | None = None) -> list[str]:
    """The log's lines of ``word`` (``start``/``done``), for one job or all."""
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines()
            if ln.split()[0] == word and (job_id is None or ln.split()[1] == job_id)]


def max_overlap(rows: list[Job]) -> int:
    """How many of these jobs' runs overlapped at most (by their results' times)."""
    events = []
    for row in rows:
        assert row.result is not None
        events += [(row.result["began"], 1), (row.result["ended"], -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


# ---- images in Azurite ------------------------------------------------------------------------


def put_vhd(az: Azurite, container: str, path: Path, blob: str,
            profile: str = "azure-current", *upload_args: str) -> tuple[str, str]:
    """``vmimage upload`` of a VHD as a page blob, then ``vmimage sas create`` for it (the
    profile's times): (the blob URL, its SAS URI). The CLI runs in this process (starting
    one per call would cost seconds)."""
    url = az.url(container, blob)
    res = run_cli("upload", path, url, *upload_args, env=az.env())
    assert res.code == 0, res.stderr
    made = run_cli("sas", "create", url, "--profile", profile, env=az.env())
    assert made.code == 0, made.stderr
    sas = made.stdout.strip().splitlines()[-1]
    remember_sas(sas.split("?", 1)[1])
    return url, sas


def blank_vhd(path: Path, size: str) -> Path:
    """A blank fixed VHD (sparse), as qemu-img makes it."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=fixed,force_size=on", str(path), size], check=True)
    return path


def version_with(client: httpx.Client, offer: str, os_url: str, data_url: str | None,
                 sas: list[str], number: str = "1.0.0") -> str:
    """An offer (made if new) with one SKU holding version ``number`` on these blobs, its SAS
    URIs given; the version's API path."""
    from tests.service_support import sku

    if client.get(f"/offers/{offer}").status_code == 404:
        assert client.post("/offers", json={"id": offer, "title": "Contoso"}).status_code == 201
    body: dict[str, Any] = {"version": number, "os_disk": {"url": os_url}, "data_disks": []}
    if data_url is not None:
        body["data_disks"] = [{"lun": 0, "url": data_url}]
    r = client.post(f"/offers/{offer}/skus", json=sku(versions=[body]))
    assert r.status_code == 201, r.text
    path = f"/offers/{offer}/skus/web-gen1/versions/{number}"
    r = client.put(f"{path}/sas", json={"sas": sas})
    assert r.status_code == 200, r.text
    return path


def request(client: httpx.Client, path: str, key: str | None = None) -> dict[str, Any]:
    """POST .../certification (with an Idempotency-Key when given): the 202 answer."""
    headers = {"Idempotency-Key": key} if key else {}
    r = client.post(f"{path}/certification", headers=headers)
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


def decided(client: httpx.Client, path: str) -> dict[str, Any] | None:
    """The latest certification request once its job ended, else None."""
    latest = client.get(f"{path}/certification").json()[-1]
    job_out = latest.get("job")
    if job_out and job_out["state"] in ("succeeded", "failed"):
        return dict(latest)
    return None


def dump(value: object) -> str:
    """JSON text of an answer, for the secret checks."""
    return json.dumps(value, default=str)
