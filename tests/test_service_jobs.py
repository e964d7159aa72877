"""The job engine in the server (the in-process default), on a real ``vmimage serve`` over
SQLite with the images in a real Azurite (HTTPS).

- A certification request runs the real checks on every VHD by its SAS URI (the code of
  ``vmimage check URL``: range reads through the fetch policy, Azurite allowed with
  ``--allow-endpoint``): the compliant image is certified, a disk without a system fails, and
  the report of the run is kept; the API shows the job on the request and at ``/jobs/{id}``.
- A request retried with the same ``Idempotency-Key`` is one request and one job, run once;
  a job submitted twice with one key is one job.
- No more than ``--jobs`` jobs run at once.
- The job table's lease: a run that lost its job records nothing, the holder's end and effect
  are recorded once, a job whose process died in every attempt is given up.
- A server killed (SIGKILL) in the middle of a job: restarted, it finishes the job, once.
- A failing job records one line, its secrets redacted; the job options refuse bad values.

Secrets: no SAS signature in any answer, job record, stored report or log line.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from tests import service_jobs_support as sj
from tests.azurite import Azurite, assert_no_secrets, server
from tests.job_kinds import FAIL
from tests.offer_support import run_cli
from tests.service_support import Service
from vmimage.app.publishing.jobstore import DatabaseJobStore
from vmimage.app.publishing.store import open_store
from vmimage.catalog.jobs import Job
from vmimage.catalog.models import StoredReport
from vmimage.jobs.model import Done, JobSpec
from vmimage.report.json_report import schema

PROFILE = "azure-current"


@dataclass
class Images:
    """VHDs in Azurite (HTTPS, as Azure: the current rules refuse an http:// SAS URI): each
    blob's URL and SAS URI, made by ``vmimage upload`` and ``vmimage sas create``."""

    az: Azurite
    container: str
    work: Path
    blobs: dict[str, tuple[str, str]]

    @property
    def endpoint(self) -> str:
        """The ``--allow-endpoint`` of this Azurite."""
        return f"127.0.0.1:{self.az.port}"

    def put(self, path: Path, blob: str) -> tuple[str, str]:
        """Upload ``path`` as ``blob`` (once); its URL and SAS URI."""
        if blob not in self.blobs:
            self.blobs[blob] = sj.put_vhd(self.az, self.container, path, blob)
        return self.blobs[blob]

    def blank(self, blob: str, size: str) -> tuple[str, str]:
        """A blank fixed VHD (sparse: only its footer is sent)."""
        return self.put(sj.blank_vhd(self.work / blob, size), blob)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    """A container for the module's VHDs, removed with them."""
    az = server(True)
    container = az.container()
    work = tmp_path_factory.mktemp("vhds")
    try:
        yield Images(az, container, work, {})
    finally:
        for path in work.iterdir():
            path.unlink()
        az.service().delete_container(container)


@pytest.fixture(scope="module")
def service(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server running at most two jobs at once, allowed to read this Azurite."""
    state = tmp_path_factory.mktemp("jobs-server")
    with sj.serving(f"sqlite:///{state / 'service.db'}", state, "--jobs", "2",
                    "--allow-endpoint", images.endpoint, profile=PROFILE,
                    env={"SSL_CERT_FILE": str(images.az.cert)}) as running:
        yield running
        logs = running.logs()
        assert "Traceback" not in logs and "internal error" not in logs
        assert_no_secrets(logs)


def _publisher(service: Service) -> tuple[str, httpx.Client]:
    namespace, token = service.token("jobs")
    return namespace, service.session(token)


def _saved_reports(service: Service, request_id: int) -> list[StoredReport]:
    with service.store().read() as session:
        rows = list(session.scalars(select(StoredReport)
                                    .where(StoredReport.request_fk == request_id)))
        session.expunge_all()
        return rows


def test_a_request_is_certified_by_the_real_checks_of_every_disk(
        service: Service, images: Images, compliant_vhd: Path) -> None:
    """The compliant 30 GiB image as the OS disk, a blank 1 GiB data disk."""
    _, client = _publisher(service)
    os_disk, data = images.put(compliant_vhd, "os.vhd"), images.blank("d0.vhd", "1G")
    path = sj.version_with(client, "contoso-web", os_disk[0], data[0], [os_disk[1], data[1]])
    made = sj.request(client, path)
    assert made["state"] == "requested" and made["job"]["state"] in ("queued", "running")
    job_id = made["job"]["id"]
    done = sj.wait_for("the certification job", lambda: sj.decided(client, path), 120)
    assert done["state"] == "certified", done
    assert done["job"]["state"] == "succeeded" and done["job"]["attempts"] == 1
    assert done["job_id"] == job_id and done["job"]["finished"] is not None
    assert client.get(path).json()["state"] == "certified"
    # The report of the run: both disks read by ranges, each finding naming its disk.
    assert len(done["reports"]) == 2 == len(done["job"]["reports"])
    reports = {r["format"]: r for r in client.get(f"{path}/reports").json()}
    assert {r["source"] for r in reports.values()} == {"service"}
    report = client.get(reports["json"]["download"].removeprefix("/api/v1")).json()
    Draft202012Validator(schema()).validate(report)  # a vmimage report like any other
    assert report["summary"]["verdict"] == "pass" and report["profile"] == PROFILE
    assert report["target"]["path"] == os_disk[0]
    messages = [f["message"] for f in report["findings"]]
    assert any(m.startswith("OS disk: ") for m in messages)
    assert any(m.startswith("data disk LUN 0: ") for m in messages)
    assert 0 < report["bytes_read"] < 64 * 1024 * 1024  # a few MiB of 31 GiB: never a download
    assert len(report["notes"]) == 2 and "d0.vhd" in report["notes"][1]
    # The job at /jobs/{id}: the publisher's own; another's is not found, no token no access.
    got = client.get(f"/jobs/{job_id}").json()
    assert got["certification"] == made["id"] and got["version"] == f"/api/v1{path}"
    assert got["result"]["verdict"] == "pass" and got["result"]["recorded"] is True
    _, other = _publisher(service)
    assert other.get(f"/jobs/{job_id}").status_code == 404
    assert httpx.get(f"{service.api}/jobs/{job_id}").status_code == 401
    # No SAS signature anywhere: answers, the job's record, the stored reports.
    texts = [sj.dump(done), sj.dump(got), json.dumps(report),
             *(r.content.decode() for r in _saved_reports(service, made["id"]))]
    row = sj.job(service.store(), job_id)
    texts += [sj.dump(row.result), str(row.error), sj.dump(row.payload)]
    for sas in (os_disk[1], data[1]):
        token = sas.split("?", 1)[1]
        assert all(token not in text for text in texts)
    assert_no_secrets(*texts)


def test_a_disk_without_a_system_fails_and_its_report_says_why(
        service: Service, images: Images) -> None:
    _, client = _publisher(service)
    blank = images.blank("blank.vhd", "30G")
    path = sj.version_with(client, "contoso-blank", blank[0], None, [blank[1]])
    sj.request(client, path)
    done = sj.wait_for("the certification job", lambda: sj.decided(client, path), 120)
    assert done["state"] == "failed" and done["job"]["state"] == "succeeded"
    assert client.get(path).json()["state"] == "failed"
    assert "OFFER-OS-FAMILY" in done["message"]
    link = next(r for r in done["reports"])
    stored = {r["id"]: r for r in client.get(f"{path}/reports").json()}
    json_report = next(r for r in stored.values() if r["format"] == "json")
    report = client.get(json_report["download"].removeprefix("/api/v1")).json()
    assert link.rsplit("/", 1)[1] in {str(i) for i in stored}
    failed = [f for f in report["findings"] if f["status"] == "fail"]
    assert [f["check_id"] for f in failed] == ["OFFER-OS-FAMILY"]
    assert "no operating system found" in failed[0]["message"]
    assert "blank.vhd" in failed[0]["message"] and "sig=" not in failed[0]["message"]


def test_a_request_sent_again_with_its_key_is_one_request_and_one_job(
        service: Service, images: Images) -> None:
    _, client = _publisher(service)
    blank = images.blank("blank.vhd", "30G")
    path = sj.version_with(client, "contoso-again", blank[0], None, [blank[1]])
    first = sj.request(client, path, key="build-4711")
    again = sj.request(client, path, key="build-4711")
    assert again["id"] == first["id"] and again["job"]["id"] == first["job"]["id"]
    # The key names that request: for another version it is refused, and it must be a key.
    other = sj.version_with(client, "contoso-other", blank[0], None, [blank[1]])
    refused = client.post(f"{other}/certification", headers={"Idempotency-Key": "build-4711"})
    assert refused.status_code == 409 and "Idempotency-Key" in refused.json()["error"]
    bad = client.post(f"{other}/certification", headers={"Idempotency-Key": "x" * 201})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]
    sj.wait_for("the job", lambda: sj.decided(client, path), 120)
    later = sj.request(client, path, key="build-4711")  # decided: the same answer, still
    assert later["id"] == first["id"] and later["job"]["attempts"] == 1
    assert later["state"] == "failed" and later["job"]["state"] == "succeeded"
    requests = client.get(f"{path}/certification").json()
    assert [r["id"] for r in requests] == [first["id"]]
    # Another key is another request (the failed version may be requested again).
    anew = sj.request(client, path, key="build-4712")
    assert anew["id"] != first["id"] and anew["job"]["id"] != first["job"]["id"]
    with service.store().read() as session:
        count = session.scalar(select(func.count()).select_from(Job).where(
            Job.idempotency_key == f"certification:{first['id']}"))
    assert count == 1
    assert len(_saved_reports(service, first["id"])) == 2  # one run, one JSON + one HTML


def test_no_more_jobs_than_allowed_run_at_once(service: Service, tmp_path: Path) -> None:
    log = tmp_path / "sleep.log"
    store = service.store()
    ids = [sj.submit_sleep(store, log, 0.8) for _ in range(5)]
    twin = sj.submit_sleep(store, log, 0.8, key="twice")
    assert sj.submit_sleep(store, log, 0.8, key="twice") == twin  # one job per key
    ids.append(twin)
    rows = sj.wait_for("six jobs", lambda: (r := [sj.job(store, i) for i in ids]) and all(
        x.state == "succeeded" for x in r) and r, 60)
    assert sj.max_overlap(rows) == 2  # --jobs 2: two at a time, and never three
    for job_id in ids:
        assert len(sj.lines(log, "start", job_id)) == 1 == len(sj.lines(log, "done", job_id))


def test_a_run_that_lost_its_lease_records_nothing(tmp_path: Path) -> None:
    """The job table's own guarantees, on a database of its own (no server takes the jobs):
    one job per key, one holder at a time, an end (and its effect) recorded once, by the
    holder, and a job whose process died in every attempt given up."""
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}", state_dir=tmp_path)
    try:
        jobs = DatabaseJobStore(store)
        job, new = jobs.submit(JobSpec("test-none", "key-1", {"n": 1}), 2)
        twin, again = jobs.submit(JobSpec("test-none", "key-1", {"n": 2}), 2)
        assert new and not again and twin.id == job.id and twin.payload == {"n": 1}
        assert jobs.claim(job.id, "A", 0.3) is not None
        assert jobs.claim(job.id, "B", 0.3) is None  # A holds it
        time.sleep(0.4)  # A stopped renewing: its lease expired
        taken = sj.wait_for("B's claim", lambda: jobs.claim(job.id, "B", 30), 5, every=0.05)
        assert taken.attempts == 2 and taken.lease_owner == "B"
        assert jobs.renew("A", [job.id], 30) == set() and jobs.renew("B", [job.id], 30) == {
            job.id}
        applied: list[str] = []
        assert not jobs.complete(job.id, "A", Done({"by": "A"}, lambda _: applied.append("A")))
        assert jobs.complete(job.id, "B", Done({"by": "B"}, lambda _: applied.append("B")))
        assert not jobs.complete(job.id, "B", Done({"by": "B"}, lambda _: applied.append("B")))
        assert not jobs.fail(job.id, "B", "late")
        assert applied == ["B"]
        row = sj.job(store, job.id)
        assert (row.state, row.result, row.error, row.lease_owner) == (
            "succeeded", {"by": "B"}, None, None)
        # Two attempts, both ended with their process: the third claim gives up instead.
        doomed, _ = jobs.submit(JobSpec("test-none", "key-2", {}), 2)
        for owner in ("A", "B"):
            sj.wait_for("a claim", lambda o=owner: jobs.claim(doomed.id, o, 0.2), 5, every=0.05)
        time.sleep(0.3)
        assert sj.wait_for("the job to be given up", lambda: jobs.claim(doomed.id, "C", 30)
                           is None and sj.job(store, doomed.id).state == "failed", 5)
        assert "given up" in (sj.job(store, doomed.id).error or "")
    finally:
        store.close()


def test_a_failing_job_records_one_line_without_its_secret(service: Service) -> None:
    store = service.store()
    signature = "c2VjcmV0LXNpZ25hdHVyZS1mb3ItYS1mYWlsaW5nLWpvYg%3D%3D"
    spec = JobSpec(FAIL, f"test:{uuid.uuid4().hex}",
                   {"url": f"https://a.blob.core.windows.net/c/os.vhd?sv=1&sig={signature}"})
    job_id = DatabaseJobStore(store).submit(spec, 3)[0].id
    row = sj.wait_for("the job to fail", lambda: (r := sj.job(store, job_id)).state
                      == "failed" and r, 30)
    assert row.attempts == 1 and row.result is None and row.error is not None
    assert row.error == "RuntimeError: could not read https://a.blob.core.windows.net/c/" \
                        "os.vhd?sv=1&sig=REDACTED"
    assert signature not in service.logs()


def test_a_server_killed_in_the_middle_of_a_job_finishes_it_once_restarted(
        tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'service.db'}"
    log = tmp_path / "sleep.log"
    first = sj.start_server(database, tmp_path, "--job-lease", "2", profile=PROFILE)
    try:
        job_id = sj.submit_sleep(first.store(), log, 2.5)
        sj.wait_for("the job to start", lambda: sj.lines(log, "start", job_id), 30)
        row = sj.job(first.store(), job_id)
        assert row.state == "running" and sj.owner_pid(row) == first.process.pid
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()
    with sj.serving(database, tmp_path, "--job-lease", "2", profile=PROFILE) as second:
        row = sj.wait_for("the job to finish", lambda: (
            r := sj.job(second.store(), job_id)).state == "succeeded" and r, 60)
        assert row.attempts == 2 and row.result is not None
        assert row.result["pid"] == second.process.pid
    assert len(sj.lines(log, "start", job_id)) == 2  # run again from the start...
    assert sj.lines(log, "done", job_id) == [f"done {job_id} {second.process.pid}"]  # once


@pytest.mark.parametrize(("args", "problem"), [
    (("serve", "--allow-endpoint", "http://127.0.0.1:1/x", "--migrate-only"),
     "--allow-endpoint: 'http://127.0.0.1:1/x' is not HOST[:PORT]"),
    (("serve", "--jobs", "-1", "--migrate-only"), "--jobs: must be between 0 and 256"),
    (("serve", "--job-lease", "0.5", "--migrate-only"), "--job-lease: must be between"),
    (("serve", "--redis", "http://127.0.0.1:1", "--migrate-only"), "--redis: not a Redis URL"),
    (("serve", "worker"), "--redis: a worker takes its jobs from Redis"),
    (("serve", "worker", "--redis", "redis://127.0.0.1:1/0", "--processes", "0"),
     "--processes: must be between 1 and 64"),
    (("serve", "worker", "--redis", "redis://127.0.0.1:1/0", "--threads", "0"),
     "--threads: must be between"),
])
def test_job_options_refuse_what_they_cannot_use(tmp_path: Path, args: tuple[str, ...],
                                                 problem: str) -> None:
    res = run_cli(*args, "--state-dir", tmp_path)
    assert res.code == 2, res.stdout + res.stderr
    assert problem in res.stderr and res.stderr.count("\n") == 1, res.stderr
