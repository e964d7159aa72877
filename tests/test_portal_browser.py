"""The portal in a real browser (Debian's headless Chromium, driven by Playwright) against a
real ``vmimage serve`` whose jobs run the real checks on VHDs in a real Azurite: the whole
path of the guide from sign-in to a published SKU's public page, by the pages' own labels and
buttons, with the keyboard where a person would use it.

Screenshots of the main pages are saved beside the test (kept when it fails) and, with
``VMIMAGE_PORTAL_SHOTS=DIR``, into DIR (docs/portal/ holds the ones docs/portal.md shows).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import service_jobs_support as sj
from tests.azurite import assert_no_secrets, server
from tests.chromium import launched
from tests.service_support import ROOT, Service

PASSWORD = "correct horse battery staple"
WIDTH, HEIGHT = 1280, 800


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          compliant_vhd: Path) -> Iterator[tuple[Service, dict[str, tuple[str, str]]]]:
    az = server(True)
    assert az.cert is not None
    container = az.container()
    work = tmp_path_factory.mktemp("portal-browser")
    blobs = {"os": sj.put_vhd(az, container, compliant_vhd, "os.vhd"),
             "d0": sj.put_vhd(az, container, sj.blank_vhd(work / "d0.vhd", "1G"), "d0.vhd")}
    state = work / "state"
    with sj.serving(f"sqlite:///{state / 'service.db'}", state, "--jobs", "2",
                    "--allow-endpoint", f"127.0.0.1:{az.port}", profile="azure-current",
                    env={"SSL_CERT_FILE": str(az.cert),
                         "REQUESTS_CA_BUNDLE": str(az.cert)}) as running:
        yield running, blobs
        logs = running.logs()
        assert "Traceback" not in logs and PASSWORD not in logs
        assert_no_secrets(logs)
    az.service().delete_container(container)


def _account(service: Service) -> tuple[str, str]:
    namespace, _ = service.token("web")
    email = f"{namespace}@example.com"
    made = subprocess.run([sys.executable, "-m", "vmimage", "serve", "user", "create",
                           "--publisher", namespace, "--email", email, "--password-env", "PW",
                           "--db", service.database, "--state-dir", str(service.state_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PW": PASSWORD})
    assert made.returncode == 0, made.stderr
    return namespace, email


def _shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
    extra = os.environ.get("VMIMAGE_PORTAL_SHOTS")
    if extra:
        page.screenshot(path=str(Path(extra) / f"{name}.png"), full_page=False)


def test_sign_in_to_a_published_sku(setup: tuple[Service, dict[str, tuple[str, str]]],
                                    tmp_path: Path) -> None:
    service, blobs = setup
    namespace, email = _account(service)
    with launched() as browser:
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(f"{service.url}/portal/")
        assert page.url.endswith("/portal/sign-in")
        # Sign in with the keyboard: labels name the fields.
        page.get_by_label("E-mail address").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{service.url}/portal/")
        _shot(page, tmp_path, "dashboard-empty")
        # A new offer and its SKU (§1.1, §1.2).
        page.get_by_label("Offer ID").fill("contoso-web")
        page.get_by_label("Title").fill("Contoso Web Server")
        page.get_by_role("button", name="Create the offer").click()
        page.wait_for_url("**/portal/offers/contoso-web")
        page.get_by_label("SKU ID (in public addresses)").fill("web-gen1")
        page.get_by_label("Plan (default: the SKU ID)").fill("web")
        page.get_by_label("SKU title").fill("Contoso Web on Debian 12")
        page.get_by_label("Summary").fill("Nginx on Debian 12, hardened and ready to serve.")
        page.get_by_label("Operating system type").fill("debian")
        page.get_by_label("Operating system name").fill("Debian 12 (bookworm)")
        page.get_by_label("Three recommended sizes").fill(
            "Standard_D2s_v5\nStandard_D4s_v5\nStandard_E2s_v5")
        page.get_by_role("button", name="Create the SKU").click()
        page.wait_for_url("**/portal/offers/contoso-web/skus/web-gen1")
        # The VM Images tab (§5.3): a version by its VHD URLs, a wrong one first.
        page.get_by_label("Version (X.Y.Z)").fill("1.0.0")
        page.get_by_label("OS VHD URL").fill("ftp://not-a-blob/os.vhd")
        page.get_by_role("button", name="Add the version").click()
        assert page.get_by_role("alert").is_visible()
        page.get_by_label("Version (X.Y.Z)").fill("1.0.0")
        page.get_by_label("OS VHD URL").fill(blobs["os"][0])
        page.get_by_label("Data disks").fill(f"0 {blobs['d0'][0]}")
        page.get_by_role("button", name="Add the version").click()
        page.wait_for_load_state()
        # The SAS URIs pasted (§5.2), shown masked once saved.
        page.get_by_label("SAS URIs of 1.0.0").fill(f"{blobs['os'][1]}\n{blobs['d0'][1]}")
        page.get_by_role("button", name="Check and save the SAS URIs").click()
        page.wait_for_load_state()
        text = page.content()
        assert "sig=REDACTED" in text and blobs["os"][1].split("sig=")[1] not in text
        _shot(page, tmp_path, "vm-images")
        # Certification: the progress page reloads itself until the real checks end.
        page.get_by_role("button", name="Request certification of 1.0.0").click()
        page.wait_for_url("**/versions/1.0.0/certification")
        page.get_by_text("certified", exact=True).wait_for(timeout=180_000)
        # The run's HTML report in its sandboxed frame, the questionnaire, the package.
        frame = page.frame_locator("iframe.report")
        frame.get_by_text("PASSES").first.wait_for(timeout=30_000)
        _shot(page, tmp_path, "certified")
        page.get_by_label("Which software does the image add").fill("nginx 1.22 from Debian")
        page.get_by_label("How the certification team reaches").fill("ssh azureuser@HOST")
        page.get_by_role("button", name="Save the answers").click()
        page.wait_for_load_state()
        assert "nginx 1.22 from Debian" in page.content()
        with page.expect_download() as waited:
            page.get_by_role("link", name="Download the certification package").click()
        saved = tmp_path / waited.value.suggested_filename
        waited.value.save_as(saved)
        assert saved.name.endswith(".zip") and saved.stat().st_size > 1000
        # Staging, publishing, and what customers see.
        page.goto(f"{service.url}/portal/offers/contoso-web")
        page.get_by_role("button", name="Push to staging").click()
        page.wait_for_load_state()
        page.get_by_role("button", name="Publish").click()
        page.wait_for_load_state()
        assert "published" in page.content()
        # The listing is frozen once staged: the edit is refused on the page, with why.
        page.goto(f"{service.url}/portal/offers/contoso-web/skus/web-gen1")
        page.get_by_text("Edit the listing").click()
        page.get_by_label("Summary").fill("A late change.")
        page.get_by_role("button", name="Save the listing").click()
        page.wait_for_load_state()
        assert page.get_by_role("alert").is_visible() and "staging" in page.content()
        page.goto(f"{service.url}/marketplace/partners/{namespace}/contoso-web-web1")
        assert "Not found" in page.content()
        page.goto(f"{service.url}/marketplace/partners/{namespace}/contoso-web-web-gen1")
        assert page.get_by_role("heading", name="Contoso Web on Debian 12").is_visible()
        assert f"{namespace}:contoso-web:web-gen1:1.0.0" in page.content()
        _shot(page, tmp_path, "public-listing")
        page.goto(f"{service.url}/portal/")
        _shot(page, tmp_path, "dashboard")
        assert "published" in page.content()
        # A form that lost its CSRF token (as a forged one has none) is refused.
        page.goto(f"{service.url}/portal/offers/contoso-web")
        page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
        page.get_by_role("button", name="Push to staging").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Refused").is_visible()
        # Another publisher, in a browser of its own, cannot open these pages.
        _, stranger = _account(service)
        other = browser.new_context().new_page()
        other.goto(f"{service.url}/portal/sign-in")
        other.get_by_label("E-mail address").fill(stranger)
        other.get_by_label("Password").fill(PASSWORD)
        other.keyboard.press("Enter")
        other.wait_for_url(f"{service.url}/portal/")
        assert "contoso-web" not in other.content()
        for path in ("offers/contoso-web", "offers/contoso-web/skus/web-gen1",
                     "offers/contoso-web/skus/web-gen1/versions/1.0.0/certification"):
            answer = other.goto(f"{service.url}/portal/{path}")
            assert answer is not None and answer.status == 404
            assert other.get_by_role("heading", name="Not found").is_visible()
