"""The request log: one JSON line per request the guest made, and the verdict read back from it.

Every server thread appends to one file (:class:`_Log`), bounded so that a guest cannot fill
the host's disk; a line keeps only chosen headers, never a body, and masks password-like
values. :func:`read_log`, :func:`health_reports` and :func:`provisioning_state` read it back:
the verdict comes from what the guest did, not from anything the guest says about itself
elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from vmimage.vm.endpoints.config import _MAX_HEADER
from vmimage.vm.endpoints.reports import HealthReport, Telemetry

MAX_LOG = 16 * 1024 * 1024  # then only health posts are still logged...
MAX_LOG_HARD = 64 * 1024 * 1024  # ...up to here
_MAX_PATH = 2048

Kind = str  # "versions", "goalstate", "hosting-env", "shared-config", "full-config", "health",
# "telemetry", "hostplugin", "imds-instance", "imds-compute", "imds-network", "imds-versions",
# "imds-other", "unknown"
_LOGGED_HEADERS = (
    "host", "user-agent", "content-type", "content-length", "transfer-encoding", "metadata",
    "x-forwarded-for", "x-ms-agent-name", "x-ms-version", "x-ms-containerid",
    "x-ms-host-config-name", "x-ms-client-correlationid", "x-ms-cipher-name",
)
_SENSITIVE_PARAM = re.compile(r"pass|pwd|secret|token|auth|cookie|credential|sig|key", re.I)


@dataclass(frozen=True)
class Request:
    """One line of the request log: one request the guest made, and how it was answered."""

    time: float  # seconds since the epoch
    client: str  # the guest's address and port
    server: str  # the address and port it reached
    method: str
    path: str  # password-like query values masked
    kind: Kind
    headers: Mapping[str, str]
    status: int
    body_bytes: int = 0
    note: str | None = None  # "malformed", "too-large", "no-metadata-header", "bad-api-version"...
    detail: str | None = None
    health: HealthReport | None = None
    telemetry: Telemetry | None = None


@dataclass(frozen=True)
class ProvisioningState:
    """What the guest's requests say about provisioning, for the verdict.

    ``ready``: a Ready health report for this VM (``time``: the first). ``not-ready``: health
    reports, none Ready (``substatus``/``description``: the last). ``silent``: no health report;
    ``touched`` says how far the guest got (e.g. ``("versions", "goalstate")``, or nothing).
    """

    state: Literal["ready", "not-ready", "silent"]
    time: float | None
    substatus: str | None
    description: str | None
    touched: tuple[Kind, ...]
    requests: int

    def describe(self) -> str:
        """One line for a person."""
        if self.state == "ready":
            return "the guest reported Ready"
        if self.state == "not-ready":
            why = ": ".join(t for t in (self.substatus, self.description) if t)
            return f"the guest reported NotReady ({why or 'no details'})"
        if not self.touched:
            return "no request from the guest reached the WireServer or IMDS"
        return f"the guest never reported health (it reached: {', '.join(self.touched)})"


class _Log:
    """The JSON-lines log, appended by every server thread: one ``write`` per line, so a reader
    sees whole lines (or a last, partial one, which :func:`read_log` skips)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._lock = threading.Lock()
        self._full = False

    def write(self, record: Mapping[str, Any], *, essential: bool) -> None:
        """Append ``record``; past MAX_LOG only essential ones (health posts), past the hard
        limit nothing, so a guest cannot fill the host's disk."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                return
            limit = MAX_LOG_HARD if essential else MAX_LOG
            if self._size + len(line) > limit:
                self._mark_full()
                return
            os.write(self._fd, line)
            self._size += len(line)

    def _mark_full(self) -> None:
        if not self._full:
            self._full = True
            marker = json.dumps({"event": "log-full", "ts": time.time()}).encode() + b"\n"
            os.write(self._fd, marker)
            self._size += len(marker)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _record(req: Request) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(req.time, UTC).isoformat(timespec="microseconds")
    record: dict[str, Any] = {
        "time": stamp.replace("+00:00", "Z"), "ts": req.time, "client": req.client,
        "server": req.server, "method": req.method, "path": req.path, "kind": req.kind,
        "headers": dict(req.headers), "status": req.status, "body_bytes": req.body_bytes,
    }
    for name in ("note", "detail"):
        if getattr(req, name) is not None:
            record[name] = getattr(req, name)
    if req.health is not None:
        record["health"] = {k: v for k, v in vars(req.health).items() if k != "time"}
    if req.telemetry is not None:
        record["telemetry"] = {"providers": list(req.telemetry.providers),
                               "events": req.telemetry.events}
    return record


def _from_record(data: Mapping[str, Any]) -> Request:
    """A log line back as a Request; KeyError/TypeError/ValueError if it is not one."""
    when = float(data["ts"])
    health = data.get("health")
    telemetry = data.get("telemetry")
    return Request(
        time=when, client=str(data["client"]), server=str(data["server"]),
        method=str(data["method"]), path=str(data["path"]), kind=str(data["kind"]),
        headers={str(k): str(v) for k, v in dict(data.get("headers") or {}).items()},
        status=int(data["status"]), body_bytes=int(data.get("body_bytes", 0)),
        note=data.get("note"), detail=data.get("detail"),
        health=HealthReport(time=when, **health) if isinstance(health, dict) else None,
        telemetry=(Telemetry(tuple(telemetry["providers"]), int(telemetry["events"]))
                   if isinstance(telemetry, dict) else None))


def read_log(path: str | os.PathLike[str]) -> list[Request]:
    """Every request in the log, in order. Lines that are not requests (a partial last line
    while the server writes, the log-full marker) are skipped. A missing log is no requests."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    requests = []
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            data = json.loads(line)
            if isinstance(data, dict) and "kind" in data:
                requests.append(_from_record(data))
    return requests


def health_reports(path: str | os.PathLike[str]) -> list[HealthReport]:
    """The well-formed health posts in the log, in order (malformed ones are requests only)."""
    return [r.health for r in read_log(path) if r.health is not None]


def provisioning_state(path: str | os.PathLike[str]) -> ProvisioningState:
    """Ready, not ready or silent, from the log (see :class:`ProvisioningState`)."""
    requests = read_log(path)
    touched = tuple(dict.fromkeys(r.kind for r in requests))
    reports = [r.health for r in requests if r.health is not None]
    ready = next((h for h in reports if h.state == "Ready" and h.matches), None)
    if ready is not None:
        return ProvisioningState("ready", ready.time, None, None, touched, len(requests))
    if not reports:
        return ProvisioningState("silent", None, None, None, touched, len(requests))
    last = reports[-1]
    if not any(h.matches for h in reports):
        return ProvisioningState("not-ready", last.time, last.substatus,
                                 "every health report named another container or role instance",
                                 touched, len(requests))
    return ProvisioningState("not-ready", last.time, last.substatus, last.description, touched,
                             len(requests))


def _safe_path(target: str) -> str:
    """The request target for the log: bounded, password-like query values masked."""
    url = urlsplit(target[:_MAX_PATH])
    if not url.query:
        return target[:_MAX_PATH]
    parts = []
    for item in url.query.split("&"):
        name, eq, _value = item.partition("=")
        parts.append(f"{name}=***" if eq and _SENSITIVE_PARAM.search(unquote(name)) else item)
    return url._replace(query="&".join(parts)).geturl()


def _logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Only the headers that say who asked and how: never Authorization, cookies or certs."""
    return {name: headers[name][:_MAX_HEADER] for name in _LOGGED_HEADERS if name in headers}
