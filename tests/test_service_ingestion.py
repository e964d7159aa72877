"""Partner Center's product-ingestion "configure" API on a real ``vmimage serve`` (SQLite, jobs
in the server), and ``vmimage submit push`` as its client; the VHDs in a real Azurite.

- ``submit push --to URL/rp/product-ingestion --target preview`` sends the documents ``submit
  render --format partner-center`` renders, plus a submission: the job adds the new version
  with its SAS URIs and requests its certification, which runs the real checks.
- The job applies resources through the rules of the one registry: a version without the
  data disk the plan's other images have (OFFER-PLAN-DISKS) fails the job with a
  businessValidationError; an unknown product is invalidId; errors carry ``details`` lists
  as Partner Center's clients require.
- Refusals in Partner Center's shape: not a configure document, an unsupported or
  schema-invalid resource (400), no token (401), another publisher's job (404).

Partner Center's own endpoint (graph.microsoft.com) cannot be reached from here: the client's
Entra ID path is not exercised (docs/service.md says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import service_jobs_support as sj
from tests.azurite import Azurite, assert_no_secrets, server
from tests.offer_support import run_cli, write
from tests.service_support import ROOT, Service, one_sku_manifest

BASE = "/rp/product-ingestion"
CONFIGURE = "https://product-ingestion.azureedge.net/schema/configure/2022-03-01-preview2"
TECH = ("https://schema.mp.microsoft.com/schema/"
        "virtual-machine-plan-technical-configuration/2022-03-01-preview2")


@dataclass
class Setup:
    """The service, Azurite, and two VHDs in it (URL, SAS URI)."""

    service: Service
    az: Azurite
    os_disk: tuple[str, str]
    data_disk: tuple[str, str]
    work: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, compliant_vhd: Path) -> Iterator[Setup]:
    az = server(True)
    assert az.cert is not None
    container = az.container()
    work = tmp_path_factory.mktemp("ingestion")
    os_disk = sj.put_vhd(az, container, compliant_vhd, "os.vhd")
    data_disk = sj.put_vhd(az, container, sj.blank_vhd(work / "d0.vhd", "1G"), "d0.vhd")
    state = work / "state"
    with sj.serving(f"sqlite:///{state / 'service.db'}", state, "--jobs", "2",
                    "--allow-endpoint", f"127.0.0.1:{az.port}", profile="azure-current",
                    env={"SSL_CERT_FILE": str(az.cert)}) as running:
        yield Setup(running, az, os_disk, data_disk, work)
        logs = running.logs()
        assert "Traceback" not in logs and "internal error" not in logs
        assert_no_secrets(logs)
    az.service().delete_container(container)


def _manifest(setup: Setup, publisher: str, versions: list[str]) -> str:
    return one_sku_manifest(publisher, "contoso-pc", "Contoso via Partner Center", versions,
                            setup.os_disk[0], setup.data_disk[0])


def _publisher(setup: Setup, versions: list[str]) -> tuple[str, str, Path]:
    """A publisher whose offer holds ``versions`` (pushed by ``vmimage offer push``)."""
    namespace, token = setup.service.token("pc")
    manifest = write(setup.work, _manifest(setup, namespace, versions), f"{namespace}.yaml")
    res = run_cli("offer", "push", manifest, "--server", setup.service.url,
                  env={**os.environ, "VMIMAGE_TOKEN": token})
    assert res.code == 0, res.stderr
    return namespace, token, manifest


def _client(setup: Setup, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=setup.service.url + BASE, headers=headers, timeout=60)


def _tech(offer: str, version: str, os_uri: str, data_uri: str | None = None
          ) -> dict[str, Any]:
    return {"$schema": TECH, "product": {"externalId": offer}, "plan": {"externalId": "web"},
            "operatingSystem": {"family": "linux", "type": "debian",
                                "friendlyName": "Debian 12 (bookworm)"},
            "recommendedVmSizes": ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_E2s_v5"],
            "openPorts": [], "vmProperties": {"supportsExtensions": True},
            "skus": [{"imageType": "x64Gen1", "skuId": "web-gen1"}],
            "vmImageVersions": [{"versionNumber": version, "vmImages": [
                {"imageType": "x64Gen1",
                 "source": {"sourceType": "sasUri", "osDisk": {"uri": os_uri},
                            "dataDisks": [{"lunNumber": 0, "uri": data_uri}] if data_uri
                            else []}}]}]}


def _completed(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = client.get(f"/configure/{job_id}/status", params={"$version": "2022-07-01"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body if body["jobStatus"] == "completed" else None

    found: dict[str, Any] = sj.wait_for("the configure job", done, 120, every=0.3)
    return found


def test_submit_push_adds_the_version_and_submits_it_to_preview(setup: Setup) -> None:
    namespace, token, _ = _publisher(setup, ["1.0.0"])
    manifest = write(setup.work, _manifest(setup, namespace, ["1.0.0", "1.0.1"]),
                     f"{namespace}-next.yaml")
    sas_file = setup.work / f"{namespace}.sas"
    sas_file.write_text(f"{setup.os_disk[1]}\n{setup.data_disk[1]}\n")
    env = {**os.environ, "VMIMAGE_TOKEN": token}
    res = subprocess.run([sys.executable, "-m", "vmimage", "submit", "push", str(manifest),
                          "--to", setup.service.url + BASE, "--sas-file", str(sas_file),
                          "--target", "preview"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "succeeded (submitted to preview)" in res.stdout
    api = setup.service.session(token)
    versions = {v["version"]: v for v in
                api.get("/offers/contoso-pc/skus/web-gen1/versions").json()}
    # Both drafts were requested for certification (1.0.0 had no SAS URI before: now it has).
    assert {v["state"] for v in versions.values()} <= {"certification-requested", "certified"}, \
        versions
    new = api.get("/offers/contoso-pc/skus/web-gen1/versions/1.0.1").json()
    assert all(d["sas"] is not None for d in [new["os_disk"], *new["data_disks"]]), new
    assert_no_secrets(res.stdout, res.stderr, json.dumps(new))
    # The certification the submission requested runs the real checks and certifies it.
    path = "/offers/contoso-pc/skus/web-gen1/versions/1.0.1"
    done = sj.wait_for("certification", lambda: sj.decided(api, path), 180)
    assert done["state"] == "certified", json.dumps(done)


def test_a_rule_broken_by_a_resource_fails_the_job(setup: Setup) -> None:
    """A version without the data disk the plan's other images have (OFFER-PLAN-DISKS); an
    unknown product."""
    _, token, _ = _publisher(setup, ["1.0.0"])
    with _client(setup, token) as client:
        body = {"$schema": CONFIGURE, "resources": [
            _tech("contoso-pc", "1.0.1", setup.os_disk[1])]}
        made = client.post("/configure", json=body, params={"$version": "2022-07-01"})
        assert made.status_code == 202, made.text
        job = made.json()
        assert job["jobStatus"] == "notStarted" and job["jobResult"] == "pending"
        assert job["jobEnd"] == "0001-01-01T00:00:00" and job["errors"] == []
        ended = _completed(client, job["jobId"])
        assert ended["jobResult"] == "failed"
        assert all(isinstance(e["details"], list) for e in ended["errors"])
        assert any(e["code"] == "businessValidationError" and "OFFER-PLAN-DISKS"
                   in e["message"] for e in ended["errors"]), ended
        details = client.get(f"/configure/{job['jobId']}").json()
        assert details["jobId"] == job["jobId"] and details["resources"] == []
        unknown = client.post("/configure", json={"$schema": CONFIGURE, "resources": [
            _tech("no-such-offer", "1.0.1", setup.os_disk[1])]}).json()
        ended = _completed(client, unknown["jobId"])
        assert ended["jobResult"] == "failed" and ended["errors"][0]["code"] == "invalidId"
        assert_no_secrets(json.dumps(ended), made.text)


@pytest.mark.parametrize(("body", "code"), [
    ({"resources": []}, "badRequest"),
    ({"$schema": CONFIGURE, "resources": []}, "badRequest"),
    ({"$schema": CONFIGURE, "resources": [
        {"$schema": "https://schema.mp.microsoft.com/schema/product/2022-03-01-preview2",
         "identity": {"externalId": "x"}}]}, "invalidRequest"),
    ({"$schema": CONFIGURE, "resources": [
        {**_tech("contoso-pc", "1.0.1", "https://x.blob.core.windows.net/c/o.vhd"),
         "recommendedVmSizes": "Standard_D2s_v5"}]}, "invalidRequest"),
])
def test_a_request_that_is_not_usable_is_a_400(setup: Setup, body: dict[str, Any],
                                                code: str) -> None:
    _, token, _ = _publisher(setup, ["1.0.0"])
    with _client(setup, token) as client:
        r = client.post("/configure", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and isinstance(error["details"], list)


def test_tokens_and_publishers(setup: Setup) -> None:
    _, token, _ = _publisher(setup, ["1.0.0"])
    _, other, _ = _publisher(setup, ["1.0.0"])
    with _client(setup, None) as anonymous:
        r = anonymous.post("/configure", json={"$schema": CONFIGURE, "resources": []})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    with _client(setup, token) as client, _client(setup, other) as stranger:
        made = client.post("/configure", json={"$schema": CONFIGURE, "resources": [
            _tech("contoso-pc", "1.0.1", setup.os_disk[1], setup.data_disk[1])]}).json()
        r = stranger.get(f"/configure/{made['jobId']}/status")
        assert r.status_code == 404 and r.json()["error"]["code"] == "notFound"
        ended = _completed(client, made["jobId"])
        assert ended["jobResult"] == "succeeded", json.dumps(ended)
