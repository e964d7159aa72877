"""The portal's image tab and certification page over HTTP, against a real ``vmimage serve``
whose job runs the real checks on VHDs in a real Azurite (HTTPS):

- SAS URIs are opened before they are saved (the online SAS rules: a page blob whose end is no
  fixed VHD footer is refused by SAS-URI-FOOTER; an endpoint the server may not read is
  refused without a connection), the refusal never shows a signature, nothing is saved;
- a version whose OS disk is blank is certified *failed*; the page lists each failed check
  with its remediation and a link to the rule's page, frames the HTML report (sandboxed,
  framable by this site only), takes the questionnaire (an explanation per failed check), and
  offers the certification package: a zip with the reports, the log, the questionnaire (each
  explanation tied to its failed check) and a summary;
- the listing is edited until staging; another publisher gets 404 for all of it.

The whole path to a certified, published SKU in a real browser is tests/test_portal_browser.py.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import service_jobs_support as sj
from tests.azurite import Azurite, assert_no_secrets, server
from tests.service_support import Service, sku
from tests.test_portal import PASSWORD, TOKENS, _account, _csrf, _sign_in

Setup = tuple[Service, Azurite, str, Path]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    az = server(True)
    assert az.cert is not None
    container = az.container()
    work = tmp_path_factory.mktemp("portal-cert")
    state = work / "state"
    with sj.serving(f"sqlite:///{state / 'service.db'}", state, "--jobs", "1",
                    "--allow-endpoint", f"127.0.0.1:{az.port}", profile="azure-current",
                    env={"SSL_CERT_FILE": str(az.cert),
                         "REQUESTS_CA_BUNDLE": str(az.cert)}) as running:
        yield running, az, container, work
        logs = running.logs()
        assert "Traceback" not in logs and PASSWORD not in logs
        assert_no_secrets(logs)
    az.service().delete_container(container)


def _browser(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=60, follow_redirects=False)


def _version(service: Service, token: str, offer: str, os_url: str) -> str:
    """An offer with one SKU and version 1.0.0 on ``os_url`` (no data disk), by the API."""
    with service.client(token) as api:
        assert api.post("/offers", json={"id": offer, "title": "Contoso"}).status_code == 201
        body = sku(versions=[{"version": "1.0.0", "os_disk": {"url": os_url},
                              "data_disks": []}])
        made = api.post(f"/offers/{offer}/skus", json=body)
        assert made.status_code == 201, made.text
    return f"/portal/offers/{offer}/skus/web-gen1"


def _wait_decided(browser: httpx.Client, page: str) -> str:
    for _ in range(240):
        shown = browser.get(page)
        assert shown.status_code == 200
        if "refresh" not in shown.headers:
            return shown.text
        time.sleep(1)
    raise AssertionError(f"{page} still running after 240 s")


def test_sas_is_opened_before_it_is_saved(setup: Setup) -> None:
    service, az, container, _ = setup
    namespace, email = _account(service, "sas")
    # A page blob whose last 512 bytes are zeros: no VHD footer.
    az.blob(container, "zeros.vhd").create_page_blob(1024 * 1024)
    not_vhd = az.sas(container, "zeros.vhd", permission="r", scope="b")
    page = _version(service, TOKENS[namespace], "sas-offer", az.url(container, "zeros.vhd"))
    with _browser(service) as browser:
        assert _sign_in(browser, email).status_code == 303
        csrf = _csrf(browser.get(page).text)
        refused = browser.post(f"{page}/versions/1.0.0/sas", data={"csrf": csrf,
                                                                   "sas": not_vhd})
        assert refused.status_code == 422, refused.text
        assert "SAS-URI-FOOTER" in refused.text and "Fix:" in refused.text
        assert not_vhd.split("sig=")[1] not in refused.text
        assert "<em>none</em>" in browser.get(page).text  # nothing saved
        # An endpoint this server may not read: refused before any connection.
        elsewhere = not_vhd.replace(f"127.0.0.1:{az.port}", "127.0.0.1:9")
        far_page = _version(service, TOKENS[namespace], "far-offer", elsewhere.split("?")[0])
        far = browser.post(f"{far_page}/versions/1.0.0/sas", data={"csrf": csrf,
                                                                   "sas": elsewhere})
        assert far.status_code == 422 and "is not an Azure blob endpoint" in far.text, far.text
        assert "vmimage serve --allow-endpoint 127.0.0.1:9" in far.text
        assert_no_secrets(refused.text, far.text)


def test_a_failed_certification_shows_its_fixes_takes_the_questionnaire_and_packages(
        setup: Setup) -> None:
    service, az, container, work = setup
    namespace, email = _account(service, "cert")
    _, stranger_email = _account(service, "other")
    url, sas = sj.put_vhd(az, container, sj.blank_vhd(work / "blank.vhd", "1G"), "blank.vhd")
    page = _version(service, TOKENS[namespace], "cert-offer", url)
    version = f"{page}/versions/1.0.0"
    with _browser(service) as browser:
        assert _sign_in(browser, email).status_code == 303
        csrf = _csrf(browser.get(page).text)
        saved = browser.post(f"{version}/sas", data={"csrf": csrf, "sas": sas})
        assert saved.status_code == 303, saved.text
        assert "sig=REDACTED" in browser.get(page).text
        asked = browser.post(f"{version}/certification", data={"csrf": csrf})
        assert asked.status_code == 303
        shown = _wait_decided(browser, asked.headers["location"])
        # The verdict, each failed check with its fix and its rule's page.
        assert "<strong>failed</strong>" in shown
        assert "OFFER-OS-FAMILY" in shown and "Fix:" in shown
        assert browser.get("/portal/checks/offer-os-family").status_code == 200
        assert browser.get("/portal/checks/NO-SUCH-RULE").status_code == 404
        # The HTML report, framed and sandboxed; only this site may frame it.
        frame = re.search(r'<iframe class="report"[^>]* src="([^"]+)" sandbox>', shown)
        assert frame is not None, shown
        framed = browser.get(frame.group(1))
        assert framed.status_code == 200 and framed.headers["x-frame-options"] == "SAMEORIGIN"
        assert "frame-ancestors 'self'" in framed.headers["content-security-policy"]
        assert framed.headers["content-security-policy"].startswith("sandbox")
        assert "OFFER-OS-FAMILY" in framed.text
        # The questionnaire: an explanation for the failed check, how to reach the VM.
        assert 'name="explain-OFFER-OS-FAMILY"' in shown
        answered = browser.post(f"{version}/certification/questionnaire", data={
            "csrf": _csrf(shown), "question-0": "Which software does the image add?",
            "answer-0": "nginx 1.22", "remote_access": "ssh azureuser@vm (key on request)",
            "explain-OFFER-OS-FAMILY": "a test of the failure path"})
        assert answered.status_code == 303, answered.text
        again = browser.get(f"{version}/certification").text
        assert "a test of the failure path" in again and "nginx 1.22" in again
        forged = browser.post(f"{version}/certification/questionnaire",
                              data={"csrf": "forged", "answer-0": "x"})
        assert forged.status_code == 403
        # The package: reports, log, questionnaire, summary.
        got = browser.get(f"{version}/certification/package")
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert "attachment" in got.headers["content-disposition"]
        members = _unzipped(got.content)
        assert "failed: OFFER-OS-FAMILY" in members["summary.txt"]
        answers = json.loads(members["questionnaire.json"])
        assert answers["explanations"] == [{"check": "OFFER-OS-FAMILY",
                                            "explanation": "a test of the failure path",
                                            "check_failed": True}]
        assert answers["answers"][0]["answer"] == "nginx 1.22"
        reports = {n for n in members if n.startswith("results/report-")}
        assert {n.rsplit(".", 1)[1] for n in reports} == {"json", "html"}
        report: dict[str, Any] = json.loads(next(members[n] for n in reports
                                                 if n.endswith(".json")))
        assert report["summary"]["verdict"] == "fail"
        assert "certification requested" in members["logs/certification.log"]
        assert_no_secrets(*members.values())
        assert sas.split("sig=")[1] not in "".join(members.values())
        # The same package and answers through the API.
        with service.client(TOKENS[namespace]) as api:
            path = "/offers/cert-offer/skus/web-gen1/versions/1.0.0/certification"
            assert api.get(f"{path}/package").status_code == 200
            put = api.put(f"{path}/questionnaire", json={"remote_access": "by the API"})
            assert put.status_code == 200 and put.json()["questionnaire"]["remote_access"] \
                == "by the API"
    with _browser(service) as stranger:
        assert _sign_in(stranger, stranger_email).status_code == 303
        csrf = _csrf(stranger.get("/portal/").text)
        assert stranger.get(f"{version}/certification").status_code == 404
        assert stranger.get(f"{version}/certification/package").status_code == 404
        assert stranger.post(f"{version}/certification/questionnaire",
                             data={"csrf": csrf, "answer-0": "x"}).status_code == 404
        assert stranger.post(f"{page}/edit", data={"csrf": csrf, "title": "Mine"}
                             ).status_code == 404


def test_the_listing_is_edited_on_its_page(setup: Setup) -> None:
    service, az, container, _ = setup
    namespace, email = _account(service, "edit")
    page = _version(service, TOKENS[namespace], "edit-offer",
                    az.url(container, "edit-os.vhd"))
    with _browser(service) as browser:
        assert _sign_in(browser, email).status_code == 303
        csrf = _csrf(browser.get(page).text)
        edited = browser.post(f"{page}/edit", data={
            "csrf": csrf, "title": "Contoso Web, edited", "summary": "Edited summary.",
            "friendly_name": "Debian 12", "sizes": "Standard_D2s_v5\nStandard_D4s_v5\n"
                                                  "Standard_E4s_v5"})
        assert edited.status_code == 303, edited.text
        shown = browser.get(page).text
        assert "Contoso Web, edited" in shown and "Standard_E4s_v5" in shown
        assert "The rules now" in shown and "Every offer rule passes" in shown
        # What the offer rules say of the listing is shown on the page, as `offer validate`
        # says it: a size that is no VM size name fails OFFER-SIZES, with its fix.
        sized = browser.post(f"{page}/edit", data={
            "csrf": csrf, "title": "Contoso Web", "summary": "Edited summary.",
            "friendly_name": "Debian 12", "sizes": "Standard_D2s_v5\nbig machine"})
        assert sized.status_code == 303
        shown = browser.get(page).text
        assert "OFFER-SIZES" in shown and "&#39;big machine&#39; is not a VM size name" in shown
        assert 'href="/portal/checks/OFFER-SIZES"' in shown
        # A field no form of the portal sends (too long) gets a page, not an API answer.
        bad = browser.post(f"{page}/edit", data={
            "csrf": csrf, "title": "x" * 5000, "summary": "ok", "friendly_name": "Debian"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
        assert "The form was not taken" in bad.text
        retitled = browser.post("/portal/offers/edit-offer/edit",
                                data={"csrf": csrf, "title": "Contoso, renamed"})
        assert retitled.status_code == 303
        assert "Contoso, renamed" in browser.get("/portal/offers/edit-offer").text


def _unzipped(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        return {n: archive.read(n).decode() for n in archive.namelist()}
