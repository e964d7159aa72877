"""The guide's classic Create VM Image API (REG-CREATE, REG-ASYNC, REG-GENERALIZED) on a real
``vmimage serve`` over HTTPS, with the VHDs in a real Azurite (HTTPS).

- The real classic client, ``azure-servicemanagement-legacy`` (the SDK the guide's generation
  used), authenticates by a self-signed management certificate over mutual TLS, creates the
  image, waits for its operation and lists it: the peer is the oracle of the XML shapes.
- ``vmimage register offer.yaml`` (API token, SAS tokens in the MediaLinks): registered, and
  a rerun says "registered before".
- The registration job reads every MediaLink by range requests and refuses a specialized OS
  disk (host keys left in it: ImageNotGeneralized), a dynamic VHD (InvalidVhd), a blank disk
  (InvalidOSDisk): each as a Failed operation with its ``<Error>``.
- Refusals in Azure's XML: no credentials or another subscription (403 ForbiddenError), an
  unregistered client certificate (the handshake fails), an old or missing x-ms-version, a
  malformed body, an entity bomb, a specialized OSState (400 BadRequest), a name taken (409),
  an unknown operation (404).

Secrets: no SAS signature in any answer, log or record shown.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as ET
import httpx
import pytest

from tests import imagebuild as ib
from tests import service_jobs_support as sj
from tests import tlscerts
from tests.azurite import Azurite, assert_no_secrets, server
from tests.offer_support import write
from tests.service_support import (
    ROOT,
    START_TIMEOUT,
    Service,
    answering,
    first_line,
    one_sku_manifest,
)

NS = "{http://schemas.microsoft.com/windowsazure}"
VERSION = {"x-ms-version": "2014-06-01"}
#: What a POST carries (the classic client sends application/atom+xml; the guide application/xml).
POST = {**VERSION, "Content-Type": "application/xml"}


@dataclass
class Setup:
    """The service over HTTPS, its CA, and the VHDs in Azurite."""

    service: Service
    ca: tlscerts.Made
    az: Azurite
    container: str
    blobs: dict[str, tuple[str, str]]
    work: Path

    def client(self, token: str | None = None, cert: tlscerts.Made | None = None,
               base: str = "") -> httpx.Client:
        """A client of the service's root (the classic paths; ``base`` "/api/v1" for the
        JSON API), trusting its CA."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.service.url + base, verify=context, headers=headers,
                            timeout=60)


def _start(state: Path, bundle: Path, server_cert: tlscerts.Made, endpoint: str) -> Service:
    state.mkdir(parents=True, exist_ok=True)
    log = state / "server.log"
    env = {**os.environ, "XDG_STATE_HOME": str(state), "SSL_CERT_FILE": str(bundle)}
    deadline = time.monotonic() + START_TIMEOUT
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "vmimage", "serve", "--state-dir", str(state), "--bind",
             "127.0.0.1:0", "--tls-cert", str(server_cert.cert), "--tls-key",
             str(server_cert.key), "--allow-endpoint", endpoint, "--jobs", "2"],
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    line = first_line(process, log, "vmimage serve", deadline)
    assert line.startswith("vmimage serve: listening on https://127.0.0.1:"), line
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(bundle)  # answering() polls /health over HTTPS
    try:
        return answering(line, f"sqlite:///{state / 'service.db'}", state, log, process,
                         "azure-current", deadline)
    finally:
        if old is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = old


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, compliant_vhd: Path) -> Iterator[Setup]:
    """The server (TLS, allowed to read this Azurite), and the VHDs: compliant, specialized
    (an SSH host key left in it), dynamic, blank."""
    work = tmp_path_factory.mktemp("classic")
    ca, server_cert = tlscerts.server_pair(work)
    az = server(True)
    assert az.cert is not None
    bundle = work / "bundle.pem"
    bundle.write_text(ca.cert.read_text() + az.cert.read_text())
    container = az.container()
    blobs = {"os.vhd": sj.put_vhd(az, container, compliant_vhd, "os.vhd")}
    with ib.compliant_disk_copy() as disk:
        ib.put_file(disk.path, disk.root_offset, "/etc/ssh/ssh_host_ed25519_key",
                    "-----BEGIN OPENSSH PRIVATE KEY-----\n", mode=0o600)
        special = ib.to_vhd(disk, work / "special.vhd", method="vmimage")
    blobs["special.vhd"] = sj.put_vhd(az, container, special, "special.vhd")
    special.unlink()
    dynamic = work / "dynamic.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic",
                    str(dynamic), "1G"], check=True)
    blobs["dynamic.vhd"] = sj.put_vhd(az, container, dynamic, "dynamic.vhd",
                                      "azure-current", "--allow-any")
    blobs["blank.vhd"] = sj.put_vhd(az, container, sj.blank_vhd(work / "blank.vhd", "30G"),
                                    "blank.vhd")
    blobs["d0.vhd"] = sj.put_vhd(az, container, sj.blank_vhd(work / "d0.vhd", "1G"), "d0.vhd")
    service = _start(work / "state", bundle, server_cert, f"127.0.0.1:{az.port}")
    try:
        yield Setup(service, ca, az, container, blobs, work)
    finally:
        service.stop()
        logs = service.logs()
        az.service().delete_container(container)
        assert "Traceback" not in logs and "internal error" not in logs
        assert_no_secrets(logs)


def _publisher(setup: Setup) -> tuple[str, str, str]:
    """A new publisher: (namespace, token, subscription)."""
    namespace, token = setup.service.token("classic")
    with setup.client(token) as client:
        me = client.get("/api/v1/me").json()
    return namespace, token, me["subscription"]


def _body(name: str, media: str, os_state: str = "Generalized", data: str = "") -> bytes:
    disks = f"<DataDiskConfigurations>{data}</DataDiskConfigurations>" if data else ""
    return (f'<VMImage xmlns="http://schemas.microsoft.com/windowsazure"><Name>{name}</Name>'
            f"<Label>{name}</Label><OSDiskConfiguration><HostCaching>ReadWrite</HostCaching>"
            f"<OSState>{os_state}</OSState><OS>Linux</OS><MediaLink>{media}</MediaLink>"
            f"</OSDiskConfiguration>{disks}<ShowInGui>false</ShowInGui></VMImage>").encode()


def _fields(xml: bytes) -> dict[str, str]:
    root = ET.fromstring(xml)
    return {e.tag.removeprefix(NS): (e.text or "") for e in root.iter()}


def _operation(client: httpx.Client, subscription: str, operation: str,
               timeout: float = 180) -> dict[str, str]:
    def done() -> dict[str, str] | None:
        r = client.get(f"/{subscription}/operations/{operation}", headers=VERSION)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        fields = _fields(r.content)
        return fields if fields["Status"] != "InProgress" else None

    found: dict[str, str] = sj.wait_for("the registration", done, timeout, every=0.5)
    return found


def _escaped(url: str) -> str:
    return url.replace("&", "&amp;")


def test_the_classic_client_registers_by_management_certificate(setup: Setup,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """REG-CREATE, REG-ASYNC with azure-servicemanagement-legacy as the guide's client: a
    self-signed management certificate registered by the publisher authenticates the mutual
    TLS connection; the MediaLink is the bare blob URL (the classic client does not escape
    values, so a SAS query could not travel in it): the service reads the blob with the SAS
    URI the publisher gave its version."""
    from azure.servicemanagement import OSDiskConfiguration, ServiceManagementService
    from azure.servicemanagement.models import VMImage

    _, token, subscription = _publisher(setup)
    url, sas = setup.blobs["os.vhd"]
    with setup.client(token, base="/api/v1") as api:
        sj.version_with(api, "contoso-classic", url, None, [sas])
    mgmt = tlscerts.client_certificate(setup.work, f"mgmt-{subscription[:8]}")
    with setup.client(token) as client:
        r = client.post("/api/v1/certificates", json={"certificate": mgmt.pem})
        assert r.status_code == 201, r.text
        shown = r.json()
        assert shown["subscription"] == subscription and shown["subject"].startswith("CN=mgmt")
        refused = client.post("/api/v1/certificates", json={"certificate": mgmt.both.read_text()})
        assert refused.status_code == 422 and "private key" in refused.json()["error"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(setup.ca.cert))
    sms = ServiceManagementService(subscription, str(mgmt.both),
                                   host=setup.service.url.removeprefix("https://"))
    image = VMImage("contoso-web-1.0.0", "Contoso Web 1.0.0", "Nginx on Debian 12")
    image.os_disk_configuration = OSDiskConfiguration()
    image.os_disk_configuration.os_state = "Generalized"
    image.os_disk_configuration.os = "Linux"
    image.os_disk_configuration.host_caching = "ReadWrite"
    image.os_disk_configuration.media_link = url
    result = sms.create_vm_image(image)
    assert result.request_id and len(result.request_id) == 32
    status = sms.wait_for_operation_status(result.request_id, timeout=180, sleep_interval=1)
    assert status.status == "Succeeded" and status.http_status_code == "200"
    assert status.error is None
    listed = {i.name: i for i in sms.list_vm_images()}
    got = listed["contoso-web-1.0.0"]
    assert got.label == "Contoso Web 1.0.0" and got.category == "User"
    assert got.os_disk_configuration.media_link == url
    assert got.os_disk_configuration.os == "Linux"
    assert got.os_disk_configuration.logical_disk_size_in_gb == 30
    # A certificate nobody registered fails the handshake; one deleted is refused (403).
    stranger = tlscerts.client_certificate(setup.work, f"stranger-{subscription[:8]}")
    # (TLS 1.3: the server's refusal comes after the client's side of the handshake.)
    with pytest.raises(httpx.TransportError), setup.client(cert=stranger) as client:
        client.get(f"/{subscription}/services/vmimages", headers=VERSION)
    with setup.client(token) as client:
        client.delete(f"/api/v1/certificates/{shown['id']}")
    with setup.client(cert=mgmt) as client:
        r = client.get(f"/{subscription}/services/vmimages", headers=VERSION)
        assert r.status_code == 403 and _fields(r.content)["Code"] == "ForbiddenError"


def test_vmimage_register_waits_for_each_image_and_a_rerun_is_no_error(setup: Setup) -> None:
    """``vmimage register`` with an API token, the SAS URIs in a file: one image per SKU
    version, each operation waited for; run again, it says each was registered before."""
    _, token, subscription = _publisher(setup)
    os_url, os_sas = setup.blobs["os.vhd"]
    d0_url, d0_sas = setup.blobs["d0.vhd"]
    manifest = write(setup.work, one_sku_manifest("contoso", "contoso-reg",
                                                  "Contoso Registered", ["1.0.0"], os_url,
                                                  d0_url), name=f"reg-{subscription[:8]}.yaml")
    sas_file = setup.work / f"sas-{subscription[:8]}.txt"
    sas_file.write_text(f"{os_sas}\n{d0_sas}\n")
    env = {**os.environ, "VMIMAGE_TOKEN": token, "SSL_CERT_FILE": str(setup.ca.cert)}
    command = [sys.executable, "-m", "vmimage", "register", str(manifest), "--server",
               setup.service.url, "--sas-file", str(sas_file)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert first.returncode == 0, first.stderr
    assert "contoso-reg-web-gen1-1.0.0: registered in " in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert again.returncode == 0, again.stderr
    assert "contoso-reg-web-gen1-1.0.0: registered before" in again.stdout
    with setup.client(token) as client:
        listed = client.get(f"/{subscription}/services/vmimages", headers=VERSION)
    assert listed.status_code == 200
    image = next(ET.fromstring(listed.content).iter(f"{NS}VMImage"))
    data = _fields(ET.tostring(image))
    assert data["VMImageState"] == "Ready" and data["Lun"] == "0"
    assert "sig=" not in listed.text  # MediaLinks shown without their SAS
    assert_no_secrets(first.stdout, first.stderr, again.stdout, listed.text)


@pytest.mark.parametrize(("blob", "code", "says"), [
    ("special.vhd", "ImageNotGeneralized", "LINUX-SSH-HOSTKEYS-ABSENT"),
    ("dynamic.vhd", "InvalidVhd", "VHD-FIXED-FORMAT"),
    ("blank.vhd", "InvalidOSDisk", "no"),
])
def test_a_disk_azure_would_not_register_fails_its_operation(setup: Setup, blob: str, code: str,
                                                              says: str) -> None:
    """REG-GENERALIZED: the OS disk is read by ranges; the operation fails with the reason."""
    _, token, subscription = _publisher(setup)
    url, sas = setup.blobs[blob]
    with setup.client(token) as client:
        r = client.post(f"/{subscription}/services/vmimages", headers=POST,
                        content=_body("img", _escaped(sas)))
        assert r.status_code == 202 and r.content == b"", r.text
        operation = r.headers["x-ms-request-id"]
        fields = _operation(client, subscription, operation)
        assert fields["Status"] == "Failed" and fields["HttpStatusCode"] == "400"
        assert fields["Code"] == code and says in fields["Message"], fields
        assert url in fields["Message"] and "sig=" not in fields["Message"]
        assert fields["ID"].replace("-", "") == operation
        # A failed registration is not an image, and frees its name.
        listed = client.get(f"/{subscription}/services/vmimages", headers=VERSION)
        assert b"<Name>img</Name>" not in listed.content
        assert client.post(f"/{subscription}/services/vmimages", headers=POST,
                           content=_body("img", _escaped(sas))).status_code == 202


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<VMImage><Name>&lol3;</Name></VMImage>"""


@pytest.mark.parametrize(("headers", "body", "says"), [
    ({"Content-Type": "application/xml"}, _body("a", "https://x.blob.core.windows.net/c/os.vhd"),
     "x-ms-version"),
    ({"x-ms-version": "2013-11-01", "Content-Type": "application/atom+xml;type=entry"},
     _body("a", "https://x.blob.core.windows.net/c/o.vhd"),
     "2014-06-01 or later"),
    (POST, BOMB, "DTD"),
    (POST, b"<VMImage><Name>a</Name>", "malformed XML"),
    (POST, b"", "no body"),
    (POST, b"<Image/>", "not <VMImage>"),
    (POST, _body("a", "https://x.blob.core.windows.net/c/o.vhd", "Specialized"),
     "REG-GENERALIZED"),
    (POST, _body("a b", "https://x.blob.core.windows.net/c/o.vhd"), "<Name>"),
    (POST, _body("a", "ftp://x/o.vhd"), "MediaLink"),
    (POST, _body("a", "https://x.blob.core.windows.net/c/o.vhd",
                    data="<DataDiskConfiguration><Lun>-1</Lun></DataDiskConfiguration>"),
     "<Lun> is required"),
])
def test_a_bad_request_is_a_400_in_azures_xml(setup: Setup, headers: dict[str, str],
                                              body: bytes, says: str) -> None:
    _, token, subscription = _publisher(setup)
    with setup.client(token) as client:
        r = client.post(f"/{subscription}/services/vmimages", headers=headers, content=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert len(r.headers["x-ms-request-id"]) == 32
    fields = _fields(r.content)
    assert fields["Code"] == "BadRequest" and says in fields["Message"], fields


def test_credentials_subscriptions_names_and_operations(setup: Setup) -> None:
    """No credentials or another publisher's subscription: 403 ForbiddenError; a name taken:
    409; an unknown or another subscription's operation: 404 / 403."""
    _, token, subscription = _publisher(setup)
    _, other_token, other_subscription = _publisher(setup)
    body = _body("dup", _escaped(setup.blobs["os.vhd"][1]))
    with setup.client() as anonymous:
        r = anonymous.get(f"/{subscription}/services/vmimages", headers=VERSION)
        assert r.status_code == 403 and _fields(r.content)["Code"] == "ForbiddenError"
    with setup.client(other_token) as other, setup.client(token) as client:
        r = other.post(f"/{subscription}/services/vmimages", headers=POST, content=body)
        assert r.status_code == 403 and _fields(r.content)["Code"] == "ForbiddenError"
        made = client.post(f"/{subscription}/services/vmimages", headers=POST, content=body)
        assert made.status_code == 202
        operation = made.headers["x-ms-request-id"]
        again = client.post(f"/{subscription}/services/vmimages", headers=POST, content=body)
        assert again.status_code == 409 and _fields(again.content)["Code"] == "ConflictError"
        r = other.get(f"/{other_subscription}/operations/{operation}", headers=VERSION)
        assert r.status_code == 404 and _fields(r.content)["Code"] == "ResourceNotFound"
        r = other.get(f"/{subscription}/operations/{operation}", headers=VERSION)
        assert r.status_code == 403
        assert _operation(client, subscription, operation)["Status"] == "Succeeded"
        assert client.delete(f"/{subscription}/services/vmimages/dup",
                             headers=VERSION).status_code == 200
        assert client.delete(f"/{subscription}/services/vmimages/dup",
                             headers=VERSION).status_code == 404


def _classic_routes() -> list[tuple[str, str]]:
    from vmimage.service.routes import classic

    return sorted((m, r.path) for r in classic.router.routes for m in getattr(r, "methods", ()))


@pytest.mark.parametrize(("method", "path"), _classic_routes())
def test_every_classic_route_refuses_strangers(setup: Setup, method: str, path: str) -> None:
    """No credentials, a wrong token, or another publisher's subscription: 403 ForbiddenError
    in Azure's XML, with an x-ms-request-id; nothing of the owner's is named."""
    owner, _, subscription = _publisher(setup)
    _, stranger_token, _ = _publisher(setup)
    url = path.format(subscription=subscription, name="img", operation="0" * 32)
    body = _body("img", "https://x.blob.core.windows.net/c/o.vhd") if method == "POST" else None
    for token in (None, "vmi_not-a-token", stranger_token):
        with setup.client(token) as client:
            r = client.request(method, url, headers=POST, content=body)
        assert r.status_code == 403, (token, r.text)
        assert _fields(r.content)["Code"] == "ForbiddenError"
        assert len(r.headers["x-ms-request-id"]) == 32 and owner not in r.text
