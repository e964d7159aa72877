"""The service's guard rails, on a real ``vmimage serve``: every endpoint refuses a request
without a token (401) and another publisher's resources (404); bad bodies get 400, 413, 415
or 422 with one clear line, never a 500; secrets never reach the log or an answer; the
OpenAPI description is valid and documents every route.

The endpoints are read from the application's own OpenAPI description, so a route added
later is tested here at once (and a route whose body this module cannot make fails the
table test, instead of going untested).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.offer_support import GOOD
from tests.service_support import BLOBS, Service, running, sas_token, sku, version
from vmimage.service.app import build

SPEC: dict[str, Any] = build(None).openapi()  # type: ignore[arg-type]  # the description only
#: The JSON API's operations. The classic Create VM Image API's (XML, Azure's status codes:
#: 403 ForbiddenError where this API says 401) are guarded in tests/test_service_classic.py.
OPERATIONS = sorted((method, path) for path, item in SPEC["paths"].items() for method in item
                    if path.startswith("/api/v1/"))
PUBLIC = {("get", "/api/v1/health")}
MAX_BODY = 256 * 1024
REPORT = '{"not": "a report"}'


@dataclass
class World:
    """A publisher with an offer, a SKU, a version with SAS URIs and a report."""

    namespace: str
    token: str
    token_id: int
    report_id: int
    signature: str
    offer: str = "contoso-web"
    job_id: str = "no-job"
    certificate_id: int = 0

    def values(self) -> dict[str, str]:
        """Path parameters naming this publisher's resources."""
        return {"offer": self.offer, "sku": "web-gen1", "version": "1.0.0", "plan": "web",
                "report": str(self.report_id), "token_id": str(self.token_id),
                "job_id": self.job_id, "certificate_id": str(self.certificate_id)}


def _certificate() -> str:
    """A new self-signed management certificate, PEM (each one unique)."""
    import tempfile
    from pathlib import Path

    from tests.tlscerts import client_certificate

    with tempfile.TemporaryDirectory() as directory:
        return client_certificate(Path(directory), "guard").pem


def _world(service: Service, prefix: str, offer: str = "contoso-web") -> World:
    namespace, token = service.token(prefix)
    sas = sas_token()
    with service.client(token) as client:
        assert client.post("/offers", json={"id": offer, "title": "T"}).status_code == 201
        assert client.post(f"/offers/{offer}/skus",
                           json=sku(versions=[version()])).status_code == 201
        base = f"/offers/{offer}/skus/web-gen1/versions/1.0.0"
        assert client.put(f"{base}/sas", json={"sas": [f"{BLOBS}?{sas}"]}).status_code == 200
        report = client.post(f"{base}/reports", content=b"<p>evidence</p>",
                             headers={"Content-Type": "text/html"})
        assert report.status_code == 201, report.text
        token_id = client.get("/me").json()["token"]["id"]
        cert = client.post("/certificates", json={"certificate": _certificate()})
        assert cert.status_code == 201, cert.text
    return World(namespace, token, token_id, report.json()["id"], sas.rsplit("sig=", 1)[1],
                 offer, certificate_id=cert.json()["id"])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    state = tmp_path_factory.mktemp("guard")
    # --jobs 0: certification requests get their jobs, which this server never runs (they
    # would try to read the example blobs on the Internet).
    with running(f"sqlite:///{state / 'service.db'}", state, "--max-body",
                 str(MAX_BODY), "--jobs", "0") as server:
        yield server
        # SIGTERM stops it gracefully (143: terminated, as every vmimage command says it)...
        assert server.stop() in (0, 143)
        assert "Finished server process" in server.logs()
        # ... and whatever the tests sent, it never failed on it.
        assert "internal error" not in server.logs() and "Traceback" not in server.logs()


@pytest.fixture(scope="module")
def owner(service: Service) -> World:
    """A publisher whose version waits for certification: its job is one of its resources."""
    world = _world(service, "owner")
    with service.client(world.token) as client:
        made = client.post("/offers/contoso-web/skus/web-gen1/versions/1.0.0/certification")
        assert made.status_code == 202, made.text
        world.job_id = made.json()["job"]["id"]
    return world


@pytest.fixture(scope="module")
def sender(service: Service) -> World:
    """The publisher the bad bodies are sent as (its resources exist, so a body is judged)."""
    return _world(service, "bodies")


@pytest.fixture(scope="module")
def stranger(service: Service) -> World:
    """Another publisher, whose offer has another ID: the owner's addresses name nothing of
    its own."""
    return _world(service, "stranger", "stranger-web")


def _body(method: str, path: str, world: World) -> dict[str, Any]:
    """A valid request body for the operation (httpx keyword arguments)."""
    manifest = GOOD.replace("publisher: contoso", f"publisher: {world.namespace}").replace(
        "id: contoso-web", f"id: {world.offer}-pushed")
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/tokens"): {"json": {"label": "ci"}},
        ("post", "/certificates"): {"json": {"certificate": _certificate()}},
        ("post", "/offers"): {"json": {"id": "another-offer", "title": "T"}},
        ("patch", "/offers/{offer}"): {"json": {"title": "Renamed"}},
        ("post", "/offers/{offer}/skus"): {"json": sku("web-new")},
        ("patch", "/offers/{offer}/skus/{sku}"): {"json": {"summary": "Changed."}},
        ("post", "/offers/{offer}/skus/{sku}/versions"): {"json": version("1.0.1")},
        ("put", "/offers/{offer}/skus/{sku}/versions/{version}"): {"json": version()},
        ("put", "/offers/{offer}/skus/{sku}/versions/{version}/sas"):
            {"json": {"sas": [f"{BLOBS}?{sas_token()}"]}},
        ("post", "/offers/{offer}/skus/{sku}/versions/{version}/certification"): {"json": {}},
        ("put", "/offers/{offer}/skus/{sku}/versions/{version}/certification/questionnaire"):
            {"json": {"remote_access": "ssh azureuser@vm"}},
        ("post", "/offers/{offer}/skus/{sku}/versions/{version}/reports"):
            {"content": b"<p>x</p>", "headers": {"Content-Type": "text/html"}},
        ("post", "/manifests"): {"json": {"name": "offer.yaml", "text": manifest}},
        ("post", "/manifests/validate"): {"json": {"name": "offer.yaml", "text": manifest}},
    }
    return bodies.get((method, path.removeprefix("/api/v1")), {})


def _takes_body(method: str, path: str) -> bool:
    return "requestBody" in SPEC["paths"][path][method]


def _url(path: str, world: World) -> str:
    return path.removeprefix("/api/v1").format(**world.values())


def _call(service: Service, method: str, path: str, token: str | None,
          world: World, **kwargs: Any) -> httpx.Response:
    arguments = kwargs or _body(method, path, world)
    return service.session(token).request(method.upper(), _url(path, world), **arguments)


def test_every_operation_has_a_test_body() -> None:
    world = World("ns", "t", 1, 1, "s")
    missing = [(m, p) for m, p in OPERATIONS if _takes_body(m, p) and not _body(m, p, world)]
    assert missing == []
    assert len(OPERATIONS) >= 35


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op not in PUBLIC])
def test_no_token_no_access(service: Service, owner: World, method: str, path: str) -> None:
    for token in (None, owner.token + "x"):
        r = _call(service, method, path, token, owner)
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert owner.token not in r.text


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if "{" in op[1]])
def test_another_publishers_resource_is_not_found(service: Service, owner: World,
                                                  stranger: World, method: str,
                                                  path: str) -> None:
    """The stranger names the owner's resources (the owner's token ID, report ID...): 404,
    and nothing of the owner's changed."""
    before = _call(service, "get", "/api/v1/offers/{offer}/skus/{sku}/versions/{version}",
                   owner.token, owner).json()
    r = service.session(stranger.token).request(method.upper(), _url(path, owner),
                                                **_body(method, path, stranger))
    assert r.status_code == 404, r.text
    assert owner.namespace not in r.text
    after = _call(service, "get", "/api/v1/offers/{offer}/skus/{sku}/versions/{version}",
                  owner.token, owner).json()
    assert after == before
    assert _call(service, "get", "/api/v1/me", owner.token, owner).status_code == 200


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS
                                              if "{" not in op[1] and op not in PUBLIC])
def test_a_publisher_sees_only_its_own(service: Service, owner: World, stranger: World,
                                       method: str, path: str) -> None:
    r = _call(service, method, path, stranger.token, stranger)
    assert r.status_code < 500 and owner.namespace not in r.text and owner.token not in r.text
    if method == "get":
        assert r.status_code == 200
    if path.startswith("/api/v1/manifests"):
        # The owner's manifest pushed with the stranger's token is refused outright.
        foreign = _call(service, method, path, stranger.token, owner,
                        json=_body(method, path, owner)["json"])
        assert foreign.status_code == 403 and "publisher" in foreign.json()["error"]


def test_revoked_token_is_refused(service: Service) -> None:
    _, token = service.token("revoker")
    with service.client(token) as client:
        second = client.post("/tokens", json={"label": "spare"}).json()
        assert second["token"].startswith("vmi_") and second["prefix"] == second["token"][:8]
        listed = client.get("/tokens").json()
        assert all("token" not in t for t in listed) and len(listed) == 2
        assert client.delete(f"/tokens/{second['id']}").json()["revoked"] is True
    with service.client(second["token"]) as client:
        assert client.get("/me").status_code == 401


# ---------------------------------------------------------------------------------------------
# Bad bodies: a corpus sent to every operation that takes a body.

CORPUS: list[tuple[str, bytes, str, set[int]]] = [
    ("truncated", b'{"id": ', "application/json", {400}),
    ("duplicate key", b'{"id": "a", "id": "b", "title": "t"}', "application/json", {400}),
    ("NaN", b'{"lun": NaN}', "application/json", {400}),
    ("Infinity", b'[Infinity]', "application/json", {400}),
    ("not UTF-8", b'{"id": "\xff\xfe"}', "application/json", {400}),
    ("deep", b"[" * 20000 + b"]" * 20000, "application/json", {400}),
    ("deep objects", b'{"a":' * 5000 + b"1" + b"}" * 5000, "application/json", {400}),
    ("trailing garbage", b'{"id": "a"} x', "application/json", {400}),
    ("null", b"null", "application/json", {400, 422}),
    ("array", b"[]", "application/json", {400, 422}),
    ("string", b'"offer"', "application/json", {400, 422}),
    ("unknown key", b'{"unknown": 1}', "application/json", {400, 422}),
    ("wrong types", b'{"id": 5, "title": true, "version": [], "sas": "x", "text": 1, '
                    b'"label": 5, "name": {}}', "application/json", {400, 422}),
    ("huge integer", b'{"lun": ' + b"9" * 5000 + b"}", "application/json", {400, 422}),
    ("no content type", b'{"id": ', "", {400}),
    ("form", b"id=x&title=y", "application/x-www-form-urlencoded", {415}),
    ("text", b"hello", "text/plain", {415}),
    ("xml bomb", b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><l>&a;</l>',
     "application/xml", {415}),
]


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if _takes_body(*op)])
def test_bad_bodies_get_a_clear_refusal(service: Service, sender: World, method: str,
                                        path: str) -> None:
    owner = sender
    reports = path.endswith("/reports")
    optional = SPEC["paths"][path][method]["requestBody"].get("required") is not True
    for name, content, media_type, expected in CORPUS:
        headers = {"Content-Type": media_type} if media_type else {}
        r = _call(service, method, path, owner.token, owner, content=content, headers=headers)
        allowed = {422} if reports and expected == {415} else expected
        if optional and name == "null":  # "no body" in JSON: the request itself is judged
            allowed = {202, 409}
        assert r.status_code in allowed, (name, r.status_code, r.text)
        if r.status_code < 300:
            continue
        error = r.json()["error"]
        assert error and "\n" not in error and "Traceback" not in error, name
    oversized = b'{"text": "' + b"x" * (MAX_BODY + 1) + b'"}'
    r = _call(service, method, path, owner.token, owner, content=oversized,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    r = _call(service, method, path, owner.token, owner, content=chunks(),
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # Far over the limit, the body is refused without being read: the client may see the 413
    # or the connection closed under it, never a server error.
    try:
        r = _call(service, method, path, owner.token, owner, content=b" " * (8 * MAX_BODY),
                  headers={"Content-Type": "application/json"})
        assert r.status_code == 413
    except httpx.TransportError:
        pass


def test_secrets_never_reach_the_log_or_an_answer(service: Service) -> None:
    world = _world(service, "secrets")
    expired = sas_token(days=1)
    with service.client(world.token) as client:
        base = "/offers/contoso-web/skus/web-gen1/versions/1.0.0"
        refused = client.put(f"{base}/sas", json={"sas": [f"{BLOBS}?{expired}"]})
        assert refused.status_code == 422
        bad_line = client.put(f"{base}/sas", json={"sas": [expired.replace("sig=", "sog=")]})
        assert bad_line.status_code == 422
        typed = client.put(f"{base}/sas", json={"sas": [f"{BLOBS}?{expired}"], "extra": 1})
        assert typed.status_code == 422
        answers = [refused.text, bad_line.text, typed.text]
        for url in ("/offers", "/offers/contoso-web", "/offers/contoso-web/skus", base,
                    f"{base}/reports", "/offers/contoso-web/manifest", "/me", "/tokens"):
            answers.append(client.get(url).text)
        client.get("/offers", params={"sig": world.signature})  # a secret in a query string
    expired_signature = expired.rsplit("sig=", 1)[1]
    for text in answers:
        assert world.signature not in text and expired_signature not in text
        assert world.token not in text
    log = service.logs()
    assert world.signature not in log and expired_signature not in log
    assert world.token not in log
    assert "GET /api/v1/offers?sig=REDACTED" in log


# ---------------------------------------------------------------------------------------------
# The OpenAPI description


def test_openapi_is_valid_and_documents_every_route(service: Service) -> None:
    live = httpx.get(f"{service.api}/openapi.json", timeout=30).json()
    assert live == SPEC
    assert live["openapi"].startswith("3.1")
    for name, schema in live["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)  # each is a JSON Schema 2020-12 (OpenAPI 3.1)
        assert schema.get("title") or schema.get("description"), name
    assert "HTTPBearer" in live["components"]["securitySchemes"]
    operation_ids = [op["operationId"] for item in live["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for method, path in OPERATIONS:
        op = live["paths"][path][method]
        assert op.get("summary") and op.get("description"), (method, path)
        assert any(code.startswith("2") for code in op["responses"]), (method, path)
        if (method, path) not in PUBLIC:
            assert "401" in op["responses"] and op.get("security"), (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)
        if _takes_body(method, path):
            assert "422" in op["responses"] and "413" in op["responses"], (method, path)
        for code, response in op["responses"].items():
            assert response.get("description"), (method, path, code)
    from vmimage.service.routes import jobs, manifests, meta, offers, publishers, versions

    routes = {(m.lower(), "/api/v1" + r.path) for module in (manifests, meta, offers, publishers,
                                                             versions, jobs)
              for r in module.router.routes for m in getattr(r, "methods", ())}
    assert routes == set(OPERATIONS)
    # The classic API (403 ForbiddenError) and Partner Center's configure API (401): their
    # own shapes, tested in test_service_classic.py and test_service_ingestion.py.
    from vmimage.service.routes import classic, ingestion

    others = {(m.lower(), r.path): refusal for module, refusal in ((classic, "403"),
                                                                    (ingestion, "401"))
              for r in module.router.routes for m in getattr(r, "methods", ())}
    assert {(m, p) for p, item in live["paths"].items() for m in item
            if not p.startswith("/api/v1/")} == set(others)
    for (method, path), refusal in others.items():
        op = live["paths"][path][method]
        assert op.get("summary") and op.get("description") and refusal in op["responses"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", live["info"]["version"])
