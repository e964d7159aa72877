"""The portal's first pages on a real ``vmimage serve`` (SQLite): accounts made by ``vmimage
serve user create``, sign-in with a CSRF token, the session cookie, the dashboard of a
publisher's own SKUs (filterable), sign-out; refusals: no CSRF token, a wrong password (the
same answer as an unknown address), another publisher's SKUs never shown.

HTTP-level (httpx keeps the cookies as a browser does); the browser tests come with the rest
of the portal (issue 15)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service_support import ROOT, Service, running, sku, version

PASSWORD = "correct horse battery staple"
#: Each test publisher's API token, by namespace.
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    state = tmp_path_factory.mktemp("portal")
    with running(f"sqlite:///{state / 'service.db'}", state, "--jobs", "0") as server:
        yield server
        assert "Traceback" not in server.logs() and PASSWORD not in server.logs()


def _account(service: Service, prefix: str) -> tuple[str, str]:
    """A publisher with two SKUs (one with a version) and an account; (namespace, e-mail)."""
    namespace, token = service.token(prefix)
    TOKENS[namespace] = token
    with service.client(token) as api:
        assert api.post("/offers", json={"id": f"{prefix}-web", "title": "Web"}).status_code == 201
        assert api.post(f"/offers/{prefix}-web/skus",
                        json=sku("web-gen1", versions=[version("1.0.0")])).status_code == 201
        assert api.post(f"/offers/{prefix}-web/skus",
                        json=sku("web-gen2", image_type="gen2")).status_code == 201
    email = f"{namespace}@example.com"
    made = subprocess.run([sys.executable, "-m", "vmimage", "serve", "user", "create",
                           "--publisher", namespace, "--email", email.upper(), "--password-env",
                           "PORTAL_PASSWORD", "--db", service.database, "--state-dir",
                           str(service.state_dir)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PORTAL_PASSWORD": PASSWORD}, timeout=120)
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    return namespace, email


def _browser(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=60, follow_redirects=False)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def _sign_in(browser: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    form = browser.get("/portal/sign-in")
    assert form.status_code == 200
    assert "default-src 'self'" in form.headers["content-security-policy"]
    return browser.post("/portal/sign-in", data={"email": email, "password": password,
                                                 "csrf": _csrf(form.text)})


def test_sign_in_shows_the_publishers_own_skus_and_sign_out_ends_it(service: Service) -> None:
    namespace, email = _account(service, "alpha")
    other, _ = _account(service, "beta")
    with _browser(service) as browser:
        assert browser.get("/portal/").headers["location"] == "/portal/sign-in"
        signed = _sign_in(browser, email)
        assert signed.status_code == 303 and signed.headers["location"] == "/portal/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie
        home = browser.get("/portal/")
        assert home.status_code == 200 and email in home.text and namespace in home.text
        assert "alpha-web" in home.text and "web-gen2" in home.text and "1.0.0" in home.text
        assert other not in home.text and "beta-web" not in home.text
        only = browser.get("/portal/", params={"state": "none"}).text
        assert "web-gen2" in only and "web-gen1" not in only
        assert "No SKU matches" in browser.get("/portal/", params={"q": "nothing-like"}).text
        # The stylesheet is the package's own.
        css = browser.get("/portal/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        out = browser.post("/portal/sign-out", data={"csrf": _csrf(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/portal/sign-in"
        assert browser.get("/portal/").headers["location"] == "/portal/sign-in"


def test_refusals(service: Service) -> None:
    _, email = _account(service, "gamma")
    with _browser(service) as browser:
        # A wrong password and an unknown address get the same answer.
        wrong = _sign_in(browser, email, "not the password at all")
        unknown = _sign_in(browser, "nobody@example.com")
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong e-mail address or password." in wrong.text
        assert "Wrong e-mail address or password." in unknown.text
        # A form without its token (a cross-site post) is refused.
        browser.get("/portal/sign-in")
        forged = browser.post("/portal/sign-in", data={"email": email, "password": PASSWORD,
                                                       "csrf": "forged"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        assert _sign_in(browser, email).status_code == 303
        assert browser.post("/portal/sign-out", data={"csrf": "forged"}).status_code == 403
        assert browser.get("/portal/").status_code == 200  # still signed in


def test_account_creation_refuses_bad_input(service: Service, tmp_path: Path) -> None:
    namespace, _ = service.token("delta")
    for email, password, says in (("not-an-address", PASSWORD, "is not an e-mail address"),
                                  ("d@example.com", "short", "fewer than 12"),):
        res = subprocess.run([sys.executable, "-m", "vmimage", "serve", "user", "create",
                              "--publisher", namespace, "--email", email, "--password-env",
                              "PW", "--db", service.database, "--state-dir",
                              str(service.state_dir)], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PW": password}, timeout=120)
        assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr


def test_the_image_tab_adds_a_version_takes_its_sas_and_requests_certification(
        service: Service) -> None:
    """§5.3 in the browser: the version's number and VHD URLs, the SAS URIs pasted (then
    shown masked), certification requested; the progress page reloads itself while the job
    waits (this server runs no job). Refusals come back on the page with the rule."""
    from tests.service_support import BLOBS, sas_token

    namespace, email = _account(service, "eps")
    _, other_email = _account(service, "zeta")
    sku_page = "/portal/offers/eps-web/skus/web-gen2"
    with _browser(service) as browser:
        assert _sign_in(browser, email).status_code == 303
        page = browser.get(sku_page)
        assert page.status_code == 200 and "VM Images" in page.text
        csrf = _csrf(page.text)
        # A mistake is shown beside its field, and the values given stay in the form.
        bad = browser.post(f"{sku_page}/versions", data={
            "csrf": csrf, "version": "1.0", "os_disk": f"{BLOBS}/e-os.vhd", "data_disks": ""})
        assert bad.status_code == 422 and "Not done" in bad.text
        assert 'id="version-error"' in bad.text and 'aria-invalid="true"' in bad.text
        assert f'value="{BLOBS}/e-os.vhd"' in bad.text
        lines = browser.post(f"{sku_page}/versions", data={
            "csrf": csrf, "version": "1.0.0", "os_disk": f"{BLOBS}/x.vhd",
            "data_disks": "zero https://x"})
        assert lines.status_code == 422 and 'id="data_disks-error"' in lines.text
        assert "write &#39;LUN URL&#39;" in lines.text
        made = browser.post(f"{sku_page}/versions", data={
            "csrf": csrf, "version": "1.0.0", "os_disk": f"{BLOBS}/web2-1.0.0-os.vhd",
            "data_disks": f"0 {BLOBS}/web2-1.0.0-d0.vhd"})
        assert made.status_code == 303, made.text
        # Each SAS URI is opened before it is saved: a blob the server cannot reach (this
        # server allows no endpoint besides Azure's, and this account does not exist) is
        # refused in one line, and nothing is saved.
        sas = f"{BLOBS}?{sas_token()}"
        given = browser.post(f"{sku_page}/versions/1.0.0/sas", data={"csrf": csrf, "sas": sas})
        assert given.status_code == 422 and "contosovhds.blob.core.windows.net" in given.text
        assert sas.rsplit("sig=", 1)[1] not in given.text and "sig=REDACTED" not in given.text
        # Through the API (which judges the SAS rules offline), then shown masked.
        with service.client(TOKENS[namespace]) as api:
            assert api.put("/offers/eps-web/skus/web-gen2/versions/1.0.0/sas",
                           json={"sas": [sas]}).status_code == 200
        shown = browser.get(sku_page).text
        assert "sig=REDACTED" in shown and sas.rsplit("sig=", 1)[1] not in shown
        asked = browser.post(f"{sku_page}/versions/1.0.0/certification", data={"csrf": csrf})
        assert asked.status_code == 303
        progress = browser.get(asked.headers["location"])
        assert progress.status_code == 200 and "Running" in progress.text
        assert progress.headers["refresh"] == "3"
        # Staging needs a certified version of every SKU: refused, with the rule.
        staged = browser.post("/portal/offers/eps-web/staging", data={"csrf": csrf})
        assert staged.status_code == 422 and "Not done" in staged.text
        # Without the form's token nothing changes.
        forged = browser.post(f"{sku_page}/versions", data={
            "csrf": "forged", "version": "1.0.1", "os_disk": f"{BLOBS}/x.vhd"})
        assert forged.status_code == 403
    with _browser(service) as stranger:
        assert _sign_in(stranger, other_email).status_code == 303
        assert stranger.get(sku_page).status_code == 404
        assert stranger.get("/portal/offers/eps-web").status_code == 404
        assert namespace not in stranger.get("/portal/").text
