#!/usr/bin/env python3
"""The portal's pages with 1,000 SKUs in the database: server time per page.

    python3 bench/bench_portal.py [--offers 50] [--skus 20] [--rounds 20]

The records are written straight into a fresh SQLite database (50 offers of 20 SKUs, each
with two versions and their disks), a portal account is made, and each page is asked for
`--rounds` times through the application in this process (httpx's ASGI transport: no
socket), timing the handler from request to the last byte. Prints a Markdown section for
docs/benchmarks.md. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmimage.app.publishing.accounts import create_user, sign_in
from vmimage.app.publishing.store import open_store
from vmimage.app.publishing.tokens import create_publisher_token
from vmimage.catalog.models import Disk, ImageVersion, Offer, Plan, Publisher, Sku
from vmimage.service.app import build

BLOBS = "https://contosovhds.blob.core.windows.net/vhds"


def fill(store: object, namespace: str, offers: int, skus: int) -> None:
    with store.write() as session:  # type: ignore[attr-defined]
        publisher = session.query(Publisher).filter_by(namespace=namespace).one()
        for o in range(offers):
            offer = Offer(publisher=publisher, offer_id=f"offer-{o:03d}", title=f"Offer {o}")
            session.add(offer)
            for s in range(skus):
                plan = Plan(offer=offer, plan_id=f"plan-{s:03d}")
                sku = Sku(offer=offer, plan=plan, sku_id=f"sku-{s:03d}", position=s,
                          title=f"SKU {s}", summary="Nginx on Debian 12.", os_family="linux",
                          os_type="debian", os_name="Debian 12 (bookworm)", image_type="gen1",
                          recommended_sizes=["Standard_D2s_v5", "Standard_D4s_v5",
                                             "Standard_E2s_v5"],
                          properties={}, open_ports=[], questionnaire={})
                for v in range(2):
                    version = ImageVersion(version=f"1.0.{v}", position=v,
                                           state="published" if v == 0 else "draft")
                    version.disks = [Disk(position=0, lun=None,
                                          url=f"{BLOBS}/o{o}-s{s}-v{v}-os.vhd"),
                                     Disk(position=1, lun=0,
                                          url=f"{BLOBS}/o{o}-s{s}-v{v}-d0.vhd")]
                    sku.versions.append(version)
                session.add(sku)
        session.flush()
        certified(session, offer_id="offer-007", sku_id="sku-007")


def certified(session: object, offer_id: str, sku_id: str) -> None:
    """One version with a decided (failed) certification and its stored JSON and HTML report:
    a real report of real rules (the SAS rules on a token that breaks some), no network."""
    from vmimage.app.publishing.reports import store_report
    from vmimage.app.sas import verify_report
    from vmimage.catalog.models import CertificationRequest

    version = (session.query(ImageVersion).join(Sku).join(Offer)  # type: ignore[attr-defined]
               .filter(Offer.offer_id == offer_id, Sku.sku_id == sku_id,
                       ImageVersion.version == "1.0.1").one())
    request = CertificationRequest(state="failed", questionnaire={}, message="2 rules failed")
    version.certifications.append(request)
    version.state = "failed"
    session.flush()  # type: ignore[attr-defined]
    report = verify_report([f"{BLOBS}/x.vhd?sv=2022-11-02&sr=b&sp=rwd&se=2020-01-01&sig=x"],
                           "azure-current", online=False)
    store_report(session, version, report, request)  # type: ignore[arg-type]


async def measure(app: object, cookie: str, paths: list[str], rounds: int
                  ) -> dict[str, list[float]]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    times: dict[str, list[float]] = {p: [] for p in paths}
    async with httpx.AsyncClient(transport=transport, base_url="http://portal",
                                 cookies={"vmimage_session": cookie}) as client:
        for path in paths:
            for _ in range(rounds + 1):
                started = time.perf_counter()
                response = await client.get(path)
                took = time.perf_counter() - started
                assert response.status_code == 200, (path, response.status_code)
                times[path].append(took)
            times[path].pop(0)  # the first: caches warming
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offers", type=int, default=50)
    ap.add_argument("--skus", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmimage-bench-portal-"))
    store = open_store(f"sqlite:///{work / 'service.db'}", state_dir=work)
    create_publisher_token(store, "contoso")
    fill(store, "contoso", args.offers, args.skus)
    create_user(store, "contoso", "ana@contoso.com", "correct horse battery staple")
    signed = sign_in(store, "ana@contoso.com", "correct horse battery staple")
    assert signed is not None
    app = build(store)
    paths = ["/portal/", "/portal/?q=sku-007", "/portal/offers/offer-007",
             "/portal/offers/offer-007/skus/sku-007",
             "/portal/offers/offer-007/skus/sku-007/versions/1.0.1/certification",
             "/portal/offers/offer-007/skus/sku-007/versions/1.0.1/certification/package",
             "/marketplace/partners/contoso/offer-007-sku-007"]
    times = asyncio.run(measure(app, signed.token, paths, args.rounds))
    total = args.offers * args.skus
    print(f"## The portal's pages with {total:,} SKUs (issue 15)\n")
    print(f"`python3 bench/bench_portal.py --offers {args.offers} --skus {args.skus} "
          f"--rounds {args.rounds}`\n")
    print("| page | median | p95 | max |")
    print("|---|---:|---:|---:|")
    for path, values in times.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"| `{path}` | {statistics.median(values) * 1000:.0f} ms | {p95 * 1000:.0f} ms | "
              f"{max(values) * 1000:.0f} ms |")
    store.close()


if __name__ == "__main__":
    main()
