#!/usr/bin/env python3
"""Load: 200 concurrent API clients and 20 concurrent certification jobs against `vmimage
serve` on PostgreSQL with Redis workers, for a fixed time, with one and with two workers.

    python3 bench/bench_service_load.py [--seconds 60] [--clients 200] [--jobs 20]
                                        [--workers 1 2] [--threads 10]

Everything is real and on this machine (2 cores here): PostgreSQL and redis-server from
Debian's packages (tests/postgres.py, tests/redis_server.py), Azurite over HTTPS holding the
compliant 30 GiB image (tests/imagebuild.py) and a blank data disk, `vmimage serve --jobs 0
--redis` (the server runs no job) and N `vmimage serve worker --threads T` processes.

- API clients: each loops over `GET /me`, `/offers`, `/offers/{o}/skus`, a SKU's versions and
  a version, as fast as it is answered (httpx, asyncio, one connection each).
- Certification: 20 slots, each in its own plan and SKU; a slot adds a version (both disks by
  blob URL), gives it its SAS URIs, requests certification (real checks of both VHDs by range
  reads, on a worker) and polls until the version is certified or failed, then starts again.

After the time is up the slots finish what they started, then it is verified that nothing
was lost: every request decided, every version certified, every job succeeded at its first
attempt, no answer 5xx. Printed: a Markdown section for docs/benchmarks.md. Not a test:
nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchenv
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import imagebuild as ib
from tests import postgres, redis_server
from tests import service_jobs_support as sj
from tests.azurite import Azurite
from tests.service_support import sku

from vmimage.app.publishing.store import open_store
from vmimage.app.publishing.tokens import create_publisher_token
from vmimage.catalog.jobs import Job

OFFER = "contoso-load"


@dataclass
class Tally:
    """What the clients saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    #: Requests that got no answer at all (the connection closed or reset): lost.
    transport_errors: int = 0
    jobs_done: int = 0
    job_seconds: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def api_client(client: httpx.AsyncClient, paths: list[str], deadline: float,
                     tally: Tally) -> None:
    i = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = await client.get(paths[i % len(paths)])
        except httpx.TransportError:
            tally.transport_errors += 1
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.count(response.status_code)
        i += 1


async def slot(client: httpx.AsyncClient, index: int, os_url: str, d0_url: str,
               sas: list[str], deadline: float, tally: Tally) -> None:
    sku_id, n = f"load-{index:02d}", 0
    while time.monotonic() < deadline:
        n += 1
        number = f"1.0.{n}"
        started = time.perf_counter()
        base = f"/offers/{OFFER}/skus/{sku_id}/versions"
        r = await client.post(base, json={"version": number, "os_disk": {"url": os_url},
                                          "data_disks": [{"lun": 0, "url": d0_url}]})
        tally.count(r.status_code)
        r = await client.put(f"{base}/{number}/sas", json={"sas": sas})
        tally.count(r.status_code)
        r = await client.post(f"{base}/{number}/certification")
        tally.count(r.status_code)
        if r.status_code != 202:
            raise SystemExit(f"certification request refused: {r.status_code} {r.text[:300]}")
        while True:
            await asyncio.sleep(0.5)
            got = await client.get(f"{base}/{number}")
            tally.count(got.status_code)
            state = got.json()["state"]
            if state in ("certified", "failed"):
                break
        tally.jobs_done += 1
        tally.job_seconds.append(time.perf_counter() - started)
        tally.outcomes[state] = tally.outcomes.get(state, 0) + 1


async def load(url: str, token: str, seconds: float, clients: int, jobs: int, os_url: str,
               d0_url: str, sas: list[str]) -> tuple[Tally, float]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients + jobs, max_keepalive_connections=clients + jobs)
    tally = Tally()
    paths = ["/me", "/offers", f"/offers/{OFFER}/skus", f"/offers/{OFFER}/skus/load-00/versions",
             f"/offers/{OFFER}"]
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers=headers, limits=limits,
                                 timeout=120) as client:
        started = time.monotonic()
        deadline = started + seconds
        tasks = [api_client(client, paths, deadline, tally) for _ in range(clients)]
        tasks += [slot(client, i, os_url, d0_url, sas, deadline, tally) for i in range(jobs)]
        await asyncio.gather(*tasks)
        return tally, time.monotonic() - started


def run(workers: int, threads: int, seconds: float, clients: int, jobs: int, pg: postgres.Postgres,
        redis: redis_server.Redis, az: Azurite, os_disk: tuple[str, str],
        d0: tuple[str, str], work: Path) -> dict[str, object]:
    database = pg.create_database("load")
    state = work / f"state-{workers}"
    state.mkdir()
    env = {"SSL_CERT_FILE": str(az.cert)}
    allow = f"127.0.0.1:{az.port}"
    server = sj.start_server(database, state, "--jobs", "0", "--redis", redis.url,
                             "--allow-endpoint", allow, profile="azure-current", env=env)
    started = [sj.start_worker(database, state, redis.url, "--threads", str(threads),
                               "--allow-endpoint", allow, profile="azure-current", env=env)
               for _ in range(workers)]
    try:
        sj.wait_for("the workers", lambda: all(w.consuming() for w in started), 60)
        store = open_store(database, state_dir=state, migrate_schema=False)
        token = create_publisher_token(store, "contoso").token
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.post("/offers", json={"id": OFFER, "title": "Load"}).status_code == 201
            for i in range(jobs):
                r = client.post(f"/offers/{OFFER}/skus", json=sku(f"load-{i:02d}",
                                                                    plan=f"plan-{i:02d}"))
                assert r.status_code == 201, r.text
        tally, elapsed = asyncio.run(load(server.url, token, seconds, clients, jobs,
                                          os_disk[0], d0[0], [os_disk[1], d0[1]]))
        from sqlalchemy import select

        with store.read() as session:
            rows = list(session.scalars(select(Job).where(Job.kind == "certification")))
        lost = [r.id for r in rows if r.state != "succeeded" or r.attempts != 1]
        store.close()
    finally:
        for worker in started:
            worker.stop()
        server.stop()
    errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    refused = sum(n for status, n in tally.statuses.items() if 400 <= status < 500)
    return {"workers": workers, "threads": threads, "seconds": elapsed,
            "requests": len(tally.latencies),
            "p50": percentile(tally.latencies, 0.5) * 1000,
            "p95": percentile(tally.latencies, 0.95) * 1000,
            "max": max(tally.latencies) * 1000, "rps": len(tally.latencies) / seconds,
            "5xx": errors, "4xx": refused, "unanswered": tally.transport_errors,
            "jobs": tally.jobs_done,
            "per_minute": tally.jobs_done / (elapsed / 60),
            "job_p50": statistics.median(tally.job_seconds) if tally.job_seconds else 0.0,
            "outcomes": tally.outcomes, "job_rows": len(rows), "lost": lost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=10)
    args = ap.parse_args()
    image = ib.scratch_dir() / "bench-sample.vhd"
    if not image.exists():
        ib.to_vhd(ib.compliant_copy(image.with_suffix(".raw")), image, method="vmimage")
    work = Path(tempfile.mkdtemp(prefix="vmimage-bench-load-", dir=ib.scratch_dir()))
    info = benchenv.machine(work)
    az = Azurite(tls=True, workdir=work / "azurite")
    az.workdir.mkdir()
    pg = redis = None
    try:
        az.start()
        os.environ.update({k: v for k, v in az.env().items() if k.startswith(("SSL_", "REQ"))})
        container = az.container("load")
        os_disk = sj.put_vhd(az, container, image, "os.vhd")
        d0 = sj.put_vhd(az, container, sj.blank_vhd(work / "d0.vhd", "1G"), "d0.vhd")
        pg, redis = postgres.start(), redis_server.start()
        results = [run(n, args.threads, args.seconds, args.clients, args.jobs, pg, redis, az,
                       os_disk, d0, work) for n in args.workers]
    finally:
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        az.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"## The publishing service under load ({args.clients} API clients, {args.jobs} "
          f"certification slots, {args.seconds:.0f} s)\n")
    print(f"`python3 bench/bench_service_load.py --seconds {args.seconds:.0f} --clients "
          f"{args.clients} --jobs {args.jobs} --threads {args.threads}`\n")
    print("| workers (threads each) | API requests | req/s | p50 | p95 | max | 5xx | unanswered "
          "| jobs done | jobs/min | job p50 (request to decided) | outcomes | jobs lost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} ({r['threads']}) | {r['requests']} | {r['rps']:.0f} | "
              f"{r['p50']:.0f} ms | {r['p95']:.0f} ms | {r['max']:.0f} ms | {r['5xx']} | "
              f"{r['unanswered']} | "
              f"{r['jobs']} | {r['per_minute']:.1f} | {r['job_p50']:.1f} s | {r['outcomes']} | "
              f"{len(r['lost'])} of {r['job_rows']} |")  # type: ignore[arg-type]
    print("\n" + " · ".join(f"{k}: {v}" for k, v in info.items()))


if __name__ == "__main__":
    main()
