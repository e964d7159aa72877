"""Answering a request: which document, refusal or 404 each path and method gets.

The WireServer's routes (versions, goal state, the role's configuration documents, health and
telemetry posts), the HostGAPlugin's paths (all 404: "FastTrack not supported") and IMDS with
Azure's rules for the ``Metadata`` header, ``X-Forwarded-For`` and ``api-version``. No sockets
here (:mod:`vmimage.vm.endpoints.server` reads and writes them), so every rule is plain code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from vmimage.vm.endpoints.config import _MAX_HEADER, WIRESERVER_IP, EndpointConfig
from vmimage.vm.endpoints.documents import (
    full_config_xml,
    goal_state_xml,
    hosting_env_xml,
    imds_document,
    shared_config_xml,
    versions_xml,
)
from vmimage.vm.endpoints.log import Kind, _Log
from vmimage.vm.endpoints.reports import HealthReport, Telemetry, parse_health, parse_telemetry

#: The HostGAPlugin's API (port 32526): all answered 404, as a plugin without FastTrack does.
_HOSTPLUGIN_PATHS = ("/versions", "/vmSettings", "/health", "/status", "/extensionArtifact",
                     "/vmAgentLog")
_HOST_HEADER = re.compile(r"[A-Za-z0-9.-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")


@dataclass(frozen=True)
class _Incoming:
    method: str
    target: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    when: float


@dataclass(frozen=True)
class _Reply:
    status: int
    kind: Kind
    body: bytes = b""
    content_type: str = "text/xml; charset=utf-8"
    note: str | None = None
    detail: str | None = None
    health: HealthReport | None = None
    telemetry: Telemetry | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())


def _json_reply(status: int, kind: Kind, document: object, note: str | None = None) -> _Reply:
    body = json.dumps(document).encode()
    return _Reply(status, kind, body, "application/json; charset=utf-8", note=note)


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class _App:
    """Routes a request to its answer; no sockets here, so every rule is plain code."""

    def __init__(self, config: EndpointConfig, log: _Log) -> None:
        self.config = config
        self.log = log

    def answer(self, req: _Incoming) -> _Reply:
        url = urlsplit(req.target)
        query = parse_qs(url.query, keep_blank_values=True)
        path = unquote(url.path)
        if path == "/metadata" or path.startswith("/metadata/"):
            return self._imds(req, path.rstrip("/"), query)
        return self._wire(req, path, query)

    # WireServer

    def _wire(self, req: _Incoming, path: str, query: Mapping[str, list[str]]) -> _Reply:
        comp = _first(query, "comp")
        machine = path in ("/machine", "/machine/")
        if req.method == "GET" and path == "/" and comp == "versions":
            return _Reply(200, "versions", versions_xml())
        if req.method == "GET" and machine and comp == "goalstate":
            return _Reply(200, "goalstate", goal_state_xml(self.config, self._base(req)))
        if req.method == "GET" and comp == "config" and path == self._config_path():
            return self._config(_first(query, "type"))
        if req.method == "POST" and machine and comp == "health":
            return self._health(req)
        if req.method == "POST" and machine and comp == "telemetrydata":
            return self._telemetry(req)
        if path in _HOSTPLUGIN_PATHS:  # "FastTrack is not supported": waagent goes on without it
            return _Reply(404, "hostplugin", b"Not Found", "text/plain; charset=utf-8")
        return _Reply(404, "unknown", b"Not Found", "text/plain; charset=utf-8")

    def _base(self, req: _Incoming) -> str:
        """``http://HOST:PORT`` as the guest addressed us (the Host header), so that the goal
        state's URLs reach this server from the guest; 168.63.129.16:80 without one."""
        host = req.headers.get("host", "")
        if not _HOST_HEADER.fullmatch(host):
            host = WIRESERVER_IP
        if not re.search(r":\d+$", host):
            host += ":80"  # Azure's URLs name the port
        return f"http://{host}"

    def _config_path(self) -> str:
        return f"/machine/{self.config.container_id}/{self.config.role_instance_id}"

    def _config(self, kind: str | None) -> _Reply:
        documents = {"hostingEnvironmentConfig": ("hosting-env", hosting_env_xml),
                     "sharedConfig": ("shared-config", shared_config_xml),
                     "fullConfig": ("full-config", full_config_xml)}
        if kind not in documents:
            return _Reply(404, "unknown", b"Not Found", "text/plain; charset=utf-8")
        name, build = documents[kind]
        return _Reply(200, name, build(self.config))

    def _health(self, req: _Incoming) -> _Reply:
        try:
            report = parse_health(req.body, self.config, req.when)
        except ValueError as exc:
            return _Reply(400, "health", b"", note="malformed", detail=str(exc)[:_MAX_HEADER])
        return _Reply(200, "health", health=report)

    def _telemetry(self, req: _Incoming) -> _Reply:
        try:
            summary = parse_telemetry(req.body)
        except ValueError as exc:
            return _Reply(400, "telemetry", b"", note="malformed", detail=str(exc)[:_MAX_HEADER])
        return _Reply(200, "telemetry", telemetry=summary)

    # IMDS

    def _imds(self, req: _Incoming, path: str, query: Mapping[str, list[str]]) -> _Reply:
        kinds = {"/metadata/instance": "imds-instance", "/metadata/instance/compute": "imds-compute",
                 "/metadata/instance/network": "imds-network", "/metadata/versions": "imds-versions"}
        kind = kinds.get(path, "imds-other")
        refused = self._imds_refusal(req, kind)
        if refused is not None:
            return refused
        if kind == "imds-versions":
            return _json_reply(200, kind, {"apiVersions": list(self.config.imds_versions)})
        if kind == "imds-other":
            return _json_reply(404, kind, {"error": "Not found"})
        version = _first(query, "api-version")
        if version not in self.config.imds_versions:
            return self._bad_version(kind, version)
        if (_first(query, "format") or "json") != "json":
            return _json_reply(400, kind, {"error": "Bad request. Unsupported format"}, "bad-format")
        document = imds_document(self.config, version, extended=_first(query, "extended") == "true")
        part = path.rsplit("/", 1)[1]
        return _json_reply(200, kind, document if part == "instance" else document[part])

    def _imds_refusal(self, req: _Incoming, kind: Kind) -> _Reply | None:
        """Azure's checks before any document: GET only, ``Metadata: true`` (any case), and no
        ``X-Forwarded-For`` (IMDS refuses proxied requests)."""
        if req.method != "GET":
            return _json_reply(405, kind, {"error": "Method not allowed"}, "bad-method")
        if req.headers.get("metadata", "").strip().lower() != "true":
            return _json_reply(400, kind, {"error": "Bad request. Required metadata header not specified"},
                               "no-metadata-header")
        if "x-forwarded-for" in req.headers:
            return _json_reply(400, kind, {"error": "Bad request. Request rejected: X-Forwarded-For"},
                               "forwarded")
        return None

    def _bad_version(self, kind: Kind, version: str | None) -> _Reply:
        """400 with the newest versions, as Azure answers: cloud-init falls back on it."""
        newest = sorted(self.config.imds_versions, reverse=True)[:3]
        what = "was not specified" if version is None else "is invalid or was not specified"
        error = (f"Bad request. api-version {what} in the request. "
                 "For more information refer to aka.ms/azureimds")
        return _json_reply(400, kind, {"error": error, "newest-versions": newest},
                           "no-api-version" if version is None else "bad-api-version")
