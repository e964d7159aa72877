"""The publishing service's core paths, on a real ``vmimage serve`` over SQLite and over a real
PostgreSQL: offers, SKUs, versions judged by the one rule registry, SAS URIs sealed and
masked, ``offer push`` answering as ``offer validate``, and an image version taken through
every state to published.

The job engine's own runs are tested in ``test_service_jobs*.py``; these servers run no job
(``--jobs 0``: the requests' jobs wait), and where a run's outcome is needed the test plays the
engine through its seam (``record_certification_outcome``) with a report.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests import postgres
from tests.offer_support import GOOD, run_cli, write
from tests.report_samples import sample_report
from tests.service_support import BLOBS, Service, running, sas_token, sku, version
from vmimage.app.publishing.certification import record_certification_outcome


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server per database kind for the module (profile azure-2015: the guide's rules)."""
    state = tmp_path_factory.mktemp(f"service-{request.param}")
    if request.param == "sqlite":
        with running(f"sqlite:///{state / 'service.db'}", state, "--jobs", "0") as server:
            yield server
        return
    cluster = postgres.start()
    try:
        with running(cluster.create_database(), state, "--jobs", "0") as server:
            yield server
    finally:
        cluster.stop()


def _offer(client: Any, offer_id: str = "contoso-web", **extra: object) -> dict[str, Any]:
    r = client.post("/offers", json={"id": offer_id, "title": "Contoso Web Server", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _with_versions(service: Service, client: Any, offer_id: str = "contoso-web") -> None:
    """An offer with one plan of two SKUs (gen1, gen2), each with 1.0.0 and its SAS URIs."""
    _offer(client, offer_id)
    for sku_id, kind, name in (("web-gen1", "gen1", "web"), ("web-gen2", "gen2", "web2")):
        r = client.post(f"/offers/{offer_id}/skus",
                        json=sku(sku_id, image_type=kind, versions=[version("1.0.0", name)]))
        assert r.status_code == 201, r.text
        r = client.put(f"/offers/{offer_id}/skus/{sku_id}/versions/1.0.0/sas",
                       json={"sas": [f"{BLOBS}?{sas_token()}"]})
        assert r.status_code == 200, r.text


def test_health_names_the_database(service: Service) -> None:
    health = service.client().get("/health").json()
    assert health["status"] == "ok" and health["schema_revision"] == "0004"
    assert health["database"] == ("sqlite" if service.database.startswith("sqlite") else
                                  "postgresql")
    assert health["profile"] == "azure-2015"


def test_offer_sku_version_round_trip(service: Service) -> None:
    namespace, token = service.token()
    with service.client(token) as client:
        assert client.get("/me").json()["publisher"] == namespace
        offer = _offer(client, container_url=BLOBS)
        assert offer["state"] == "draft" and offer["skus"] == []
        r = client.post("/offers/contoso-web/skus", json=sku(versions=[version()]))
        assert r.status_code == 201, r.text
        assert r.json()["versions"] == [{"version": "1.0.0", "state": "draft"}]
        assert client.post("/offers", json={"id": "contoso-web", "title": "x"}).status_code == 409
        got = client.get("/offers/contoso-web/skus/web-gen1/versions/1.0.0").json()
        assert got["os_disk"]["blob_url"] == f"{BLOBS}/web-1.0.0-os.vhd"
        assert got["data_disks"][0]["lun"] == 0 and got["editable"] is True
        assert client.get("/offers/contoso-web/plans").json() == [
            {"id": "web", "skus": [{"id": "web-gen1", "image_type": "gen1"}]}]
        manifest = client.get("/offers/contoso-web/manifest")
        assert manifest.headers["content-type"].startswith("application/json")
        data = json.loads(manifest.text)
        assert data["publisher"] == namespace and data["skus"][0]["versions"][0]["version"] == "1.0.0"
        report = client.get("/offers/contoso-web/validation").json()
        assert report["target"]["path"] == "/api/v1/offers/contoso-web/manifest"
        assert report["summary"]["counts"]["fail"] == 0, report["summary"]
        r = client.patch("/offers/contoso-web/skus/web-gen1", json={"summary": "A new summary."})
        assert r.status_code == 200 and r.json()["summary"] == "A new summary."
        r = client.patch("/offers/contoso-web/skus/web-gen1", json={"plan": "other"})
        assert [p["id"] for p in client.get("/offers/contoso-web/plans").json()] == ["other"]
        assert client.delete("/offers/contoso-web/skus/web-gen1/versions/1.0.0").status_code == 204
        assert client.delete("/offers/contoso-web/skus/web-gen1").status_code == 204
        assert client.delete("/offers/contoso-web").status_code == 204
        assert client.get("/offers").json() == []


def test_versions_are_judged_by_the_offer_rules(service: Service) -> None:
    _, token = service.token()
    with service.client(token) as client:
        _offer(client)
        assert client.post("/offers/contoso-web/skus",
                           json=sku(versions=[version()])).status_code == 201
        versions = "/offers/contoso-web/skus/web-gen1/versions"
        minor = client.post(versions, json=version("1.1.0"))
        assert minor.status_code == 422, minor.text
        assert "OFFER-VERSION-PATCH" in minor.json()["error"]  # azure-2015: only Z rises
        failed = {f["check_id"] for f in minor.json()["report"]["findings"]
                  if f["status"] == "fail"}
        assert failed == {"OFFER-VERSION-PATCH"}
        assert client.post(versions, json=version("1.0")).json()["error"].count(
            "OFFER-VERSION-FORMAT") == 1
        gap = version("1.0.2")
        gap["data_disks"] = [{"lun": 1, "url": f"{BLOBS}/gap.vhd"}]
        assert "OFFER-LUNS" in client.post(versions, json=gap).json()["error"]
        token_in_url = version("1.0.3")
        token_in_url["os_disk"] = {"url": f"{BLOBS}/x.vhd?{sas_token()}"}
        refused = client.post(versions, json=token_in_url)
        assert refused.status_code == 422 and "OFFER-DISK-SOURCE" in refused.json()["error"]
        assert "sig=" not in refused.text.replace("sig=REDACTED", "")
        assert client.post(versions, json=version("1.0.1")).status_code == 201
        assert [v["version"] for v in client.get(versions).json()] == ["1.0.0", "1.0.1"]
        shape = client.post(versions, json={"version": "1.0.4"})
        assert shape.status_code == 422 and "os_disk" in shape.json()["error"]


def test_sas_uris_are_sealed_and_masked(service: Service) -> None:
    _, token = service.token()
    sas = sas_token()
    signature = sas.rsplit("sig=", 1)[1]
    with service.client(token) as client:
        _offer(client)
        client.post("/offers/contoso-web/skus", json=sku(versions=[version()]))
        path = "/offers/contoso-web/skus/web-gen1/versions/1.0.0"
        r = client.put(f"{path}/sas", json={"sas": [f"{BLOBS}?{sas}"]})
        assert r.status_code == 200, r.text
        disk = r.json()["os_disk"]["sas"]
        assert disk["uri"].endswith("sig=REDACTED") and disk["fields"]["sp"] == "rl"
        for url in (path, "/offers/contoso-web/skus/web-gen1/versions",
                    "/offers/contoso-web/skus", "/offers/contoso-web/manifest",
                    "/offers/contoso-web/validation"):
            body = client.get(url).text
            assert signature not in body and sas not in body
        expired = sas_token(days=2)
        refused = client.put(f"{path}/sas", json={"sas": [f"{BLOBS}?{expired}"]})
        assert refused.status_code == 422 and "SAS-URI-EXPIRY" in refused.json()["error"]
        assert expired.rsplit("sig=", 1)[1] not in refused.text
        elsewhere = client.put(f"{path}/sas", json={"sas": [f"https://other.blob.core.windows."
                                                           f"net/c/x.vhd?{sas}"]})
        assert elsewhere.status_code == 422 and "no SAS URI applies" in elsewhere.json()["error"]
    with service.store().engine.connect() as conn:
        sealed = conn.execute(text("SELECT sas_sealed FROM disks")).scalars().all()
    assert sealed and all(s is None or signature.encode() not in bytes(s) for s in sealed)
    key = service.state_dir / "service.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert signature not in service.logs()


def _findings(report: dict[str, Any]) -> list[tuple[object, ...]]:
    return [(f["check_id"], f["status"], f["message"],
             tuple((e["path"], e["line"], e["seen"], e["required"]) for e in f["evidence"]))
            for f in report["findings"]]


def test_push_answers_with_the_clis_findings(service: Service, tmp_path: Path) -> None:
    namespace, token = service.token()
    env = {"VMIMAGE_TOKEN": token}
    bad = write(tmp_path, GOOD.replace("publisher: contoso", f"publisher: {namespace}")
                .replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]", "[A1]", 1),
                "bad.yaml")
    good = write(tmp_path, GOOD.replace("publisher: contoso", f"publisher: {namespace}"))
    for manifest, code in ((bad, 1), (good, 0)):
        cli = run_cli("offer", "validate", manifest, "--no-disks", "--profile", "azure-2015",
                      "--format", "json")
        pushed = run_cli("offer", "push", manifest, "--server", service.url, "--format", "json",
                         env=env)
        assert (cli.code, pushed.code) == (code, code), pushed.stderr
        local, remote = json.loads(cli.stdout), json.loads(pushed.stdout)
        assert _findings(remote) == _findings(local)
        assert remote["summary"]["verdict_line"] == local["summary"]["verdict_line"]
        assert remote["target"] == local["target"] and remote["profile"] == "azure-2015"
    assert "stored offer contoso-web" in pushed.stderr
    with service.client(token) as client:
        assert client.get("/offers/contoso-web").json()["skus"] == ["web-gen1", "web-gen2"]
    missing = tmp_path / "nope.yaml"
    local_err = run_cli("offer", "validate", missing)
    remote_err = run_cli("offer", "push", missing, "--server", service.url, env=env)
    assert (remote_err.code, remote_err.stderr) == (2, local_err.stderr)


def _request(client: Any, sku_id: str, answers: dict[str, Any] | None = None) -> int:
    body = {"questionnaire": answers} if answers is not None else None
    r = client.post(f"/offers/contoso-web/skus/{sku_id}/versions/1.0.0/certification", json=body)
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_a_version_goes_from_draft_to_published(service: Service, tmp_path: Path) -> None:
    namespace, token = service.token()
    store = service.store()
    gen1 = "/offers/contoso-web/skus/web-gen1"
    with service.client(token) as client:
        _with_versions(service, client)
        answers = {"answers": [{"question": "Default accounts?", "answer": "None."}],
                   "remote_access": "SSH on 22", "explanations": {}}
        first = _request(client, "web-gen1", answers)
        got = client.get(f"{gen1}/versions/1.0.0").json()
        assert got["state"] == "certification-requested" and got["editable"] is False
        assert got["certification"]["questionnaire"] == answers
        assert client.put(f"{gen1}/versions/1.0.0", json=version()).status_code == 409
        busy = client.patch(gen1, json={"os": {"family": "linux", "type": "ubuntu",
                                               "friendly_name": "Ubuntu 24.04"}})
        assert busy.status_code == 409 and "being certified" in busy.json()["error"]
        assert client.delete(f"{gen1}/versions/1.0.0/certification").json()["state"] == "withdrawn"
        assert client.get(f"{gen1}/versions/1.0.0").json()["state"] == "draft"
        assert client.post("/offers/contoso-web/staging").status_code == 409
        request = _request(client, "web-gen1")
        assert request != first
        record_certification_outcome(store, request, sample_report(failing=False), "job-1")
        assert client.get(f"{gen1}/versions/1.0.0").json()["state"] == "certified"
        failing = _request(client, "web-gen2")
        record_certification_outcome(store, failing, sample_report(failing=True))
        gen2 = client.get("/offers/contoso-web/skus/web-gen2/versions/1.0.0").json()
        assert gen2["state"] == "failed" and gen2["certification"]["state"] == "failed"
        staging = client.post("/offers/contoso-web/staging")
        assert staging.status_code == 409 and "OFR-PARENT" in staging.json()["error"]
        r = client.put("/offers/contoso-web/skus/web-gen2/versions/1.0.0", json=version("1.0.0",
                                                                                       "web2"))
        assert r.json()["state"] == "draft" and r.json()["os_disk"]["sas"] is not None
        record_certification_outcome(store, _request(client, "web-gen2"),
                                     sample_report(failing=False))
        staged = client.post("/offers/contoso-web/staging")
        assert staged.status_code == 200, staged.text
        assert {m["state"] for m in staged.json()["moved"]} == {"staging"}
        frozen = client.patch(gen1, json={"summary": "Changed after staging."})
        assert frozen.status_code == 409 and "OFR-SUMMARY" in frozen.json()["error"]
        assert client.patch(gen1, json={"summary": "Nginx on Debian 12, hardened and ready "
                                                   "to serve."}).status_code == 200
        assert client.patch("/offers/contoso-web", json={"title": "Renamed"}).status_code == 409
        published = client.post("/offers/contoso-web/publish")
        assert published.status_code == 200 and published.json()["state"] == "published"
        assert client.post("/offers/contoso-web/publish").status_code == 409
        assert client.delete("/offers/contoso-web").status_code == 409
        assert client.delete(f"{gen1}/versions/1.0.0").status_code == 409
        minor = client.post(f"{gen1}/versions", json=version("1.1.0"))
        assert minor.status_code == 422 and "OFFER-VERSION-PATCH" in minor.json()["error"]
        assert client.post(f"{gen1}/versions", json=version("1.0.1")).json()["state"] == "draft"
        reports = client.get(f"{gen1}/versions/1.0.0/reports").json()
        assert sorted(r["format"] for r in reports) == ["html", "json"]
        assert {r["source"] for r in reports} == {"service"}
        downloaded = client.get(reports[0]["download"].removeprefix("/api/v1"))
        assert downloaded.status_code == 200 and "attachment" in downloaded.headers[
            "content-disposition"]
        offer = client.get("/offers/contoso-web").json()
        assert offer["state"] == "published" and offer["listing_locked"] is True
        assert offer["versions"] == {"draft": 1, "published": 2}
    # A push must keep what is published as it was.
    with service.client(token) as client:
        current = json.loads(client.get("/offers/contoso-web/manifest").text)
    changed = json.loads(json.dumps(current))
    changed["skus"][0]["versions"][0]["os_disk"]["url"] = f"{BLOBS}/other.vhd"
    path = tmp_path / "offer.yaml"
    path.write_text(json.dumps(changed))
    refused = run_cli("offer", "push", path, "--server", service.url,
                      env={"VMIMAGE_TOKEN": token})
    assert refused.code == 2 and "published" in refused.stderr, refused.stderr
    path.write_text(json.dumps(current))
    assert run_cli("offer", "push", path, "--server", service.url,
                   env={"VMIMAGE_TOKEN": token}).code == 0
    assert namespace in current["publisher"]


def test_reports_are_kept_and_downloaded_as_uploaded(service: Service, tmp_path: Path) -> None:
    _, token = service.token()
    report = run_cli("offer", "validate", write(tmp_path, GOOD), "--no-disks", "--format", "json")
    with service.client(token) as client:
        _offer(client)
        client.post("/offers/contoso-web/skus", json=sku(versions=[version()]))
        reports = "/offers/contoso-web/skus/web-gen1/versions/1.0.0/reports"
        uploaded = client.post(reports, content=report.stdout.encode(),
                               headers={"Content-Type": "application/json"})
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["source"] == "publisher"
        got = client.get(uploaded.json()["download"].removeprefix("/api/v1"))
        assert got.content == report.stdout.encode()
        html = "<!doctype html><title>r</title><script>alert(1)</script>"
        page = client.post(reports, content=html.encode(), headers={"Content-Type": "text/html"})
        served = client.get(page.json()["download"].removeprefix("/api/v1"))
        assert served.text == html and served.headers["content-type"].startswith("text/html")
        assert "sandbox" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
        not_ours = client.post(reports, json={"a": 1})
        assert not_ours.status_code == 422 and "report-v1" in not_ours.json()["error"]
        assert client.post(reports, content=b"x", headers={"Content-Type": "image/png"}
                           ).status_code == 422
        assert len(client.get(reports).json()) == 2


def test_the_migrated_schema_is_the_models_schema(service: Service) -> None:
    """Alembic's autogenerate finds nothing to add: the shipped migration makes exactly the
    models' tables, columns, types, indexes and constraints, on this database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from vmimage.catalog.models import Base

    with service.store().engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_push_refusals_are_one_line(service: Service, tmp_path: Path) -> None:
    namespace, token = service.token()
    manifest = write(tmp_path, GOOD)  # publisher: contoso, not this token's
    res = run_cli("offer", "push", manifest, "--server", service.url,
                  env={"VMIMAGE_TOKEN": token})
    assert res.code == 2 and "(403)" in res.stderr and "contoso" in res.stderr, res.stderr
    res = run_cli("offer", "push", manifest, "--server", service.url,
                  env={"VMIMAGE_TOKEN": token + "x"})
    assert res.code == 2 and "refused the token (401)" in res.stderr
    assert token not in res.stderr
    mine = write(tmp_path, GOOD.replace("publisher: contoso", f"publisher: {namespace}"), "m.yaml")
    dry = run_cli("offer", "push", mine, "--server", service.url, "--dry-run",
                  env={"VMIMAGE_TOKEN": token})
    assert dry.code == 0 and "stored" not in dry.stderr
    with service.client(token) as client:
        assert client.get("/offers").json() == []


def test_the_server_never_looks_at_its_own_disk_for_a_manifests_files(service: Service,
                                                                     tmp_path: Path) -> None:
    """A disk named by a local file is on the publisher's machine: the service neither opens
    nor looks up that path on its own disk, so a file that exists there and one that does not
    get the same answer (the rules about local files skip, with the reason)."""
    namespace, token = service.token()
    answers = []
    here = tmp_path / "here.vhd"  # a file the server could see
    here.write_bytes(b"\0" * 512)
    for path in (str(here), str(tmp_path / "missing.vhd"), "~/os.vhd"):
        text = GOOD.replace("publisher: contoso", f"publisher: {namespace}").replace(
            'os_disk: {url: "https://contosovhds.blob.core.windows.net/vhds/web-1.0.0-os.vhd"}',
            f'os_disk: {{file: "{path}"}}')
        r = service.session(token).post("/manifests/validate", json={"name": "o.yaml",
                                                                      "text": text})
        findings = {f["check_id"]: f for f in r.json()["findings"]}
        assert findings["OFFER-DISK-FILE"]["status"] == "skip"
        assert "publisher's machine" in findings["OFFER-DISK-FILE"]["message"]
        answers.append({k: (f["status"], f["message"].replace(path, "PATH"))
                        for k, f in findings.items()})
    assert answers[0] == answers[1] == answers[2]


def test_a_new_container_forgets_the_sas_of_blobs_that_moved(service: Service) -> None:
    _, token = service.token()
    client = service.session(token)
    _offer(client, container_url=BLOBS)
    by_file = {"version": "1.0.0", "os_disk": {"file": "build/os.vhd"},
               "data_disks": [{"lun": 0, "url": f"{BLOBS}/d0.vhd"}]}
    assert client.post("/offers/contoso-web/skus", json=sku(versions=[by_file])).status_code == 201
    path = "/offers/contoso-web/skus/web-gen1/versions/1.0.0"
    r = client.put(f"{path}/sas", json={"sas": [f"{BLOBS}?{sas_token()}"]})
    assert r.json()["os_disk"]["blob_url"] == f"{BLOBS}/os.vhd" and r.json()["os_disk"]["sas"]
    moved = client.patch("/offers/contoso-web", json={"container_url": f"{BLOBS}2"})
    assert moved.status_code == 200
    got = client.get(path).json()
    assert got["os_disk"]["blob_url"] == f"{BLOBS}2/os.vhd" and got["os_disk"]["sas"] is None
    assert got["data_disks"][0]["sas"] is not None  # its own URL: it did not move


def test_requests_at_once_for_one_version_make_one_request(service: Service) -> None:
    """Eight certification requests for the same draft sent at once (PostgreSQL runs them
    in parallel: the version's row is locked, so they take turns): one is made, the others
    are refused by the state the first left (409), and the version has one request."""
    from concurrent.futures import ThreadPoolExecutor

    _, token = service.token()
    with service.client(token) as client:
        _with_versions(service, client, "contoso-race")
    path = "/offers/contoso-race/skus/web-gen1/versions/1.0.0/certification"

    def request(_: int) -> int:
        with service.client(token) as client:
            return client.post(path).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(request, range(8)))
    assert codes == [202] + [409] * 7, codes
    with service.client(token) as client:
        assert len(client.get(path).json()) == 1
