"""``vmimage offer push``: send a manifest to a publishing service and get back the report
``vmimage offer validate`` would print.

The manifest is read exactly as ``offer validate`` reads it (a regular UTF-8 file of at most
4 MiB) and sent with the name it was given, so the service's findings name the same file;
the report comes back as the JSON report and is rebuilt here, so every ``--format``,
``--output``, ``--waivers`` and ``--fail-on`` works as for ``offer validate``. The API token is
read from an environment variable, never from an argument (``ps`` shows arguments).

Only httpx is imported: no database, no server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmimage.errors import InputError
from vmimage.findings import Evidence, Finding, Severity, Status
from vmimage.inputs import read_bounded_text
from vmimage.offer.manifest import MAX_MANIFEST_BYTES
from vmimage.report.model import Report
from vmimage.secrets import redact
from vmimage.textsafe import printable

API = "/api/v1"
TIMEOUT = 60.0


@dataclass(frozen=True)
class PushResult:
    """The service's report, and whether it stored the manifest."""

    report: Report
    stored: bool
    offer: str | None


def read_token(env: str) -> str:
    """The API token from the environment variable ``env``.

    Raises:
        InputError: the variable is unset or empty.
    """
    value = os.environ.get(env, "").strip()
    if not value:
        raise InputError("--token-env", f"environment variable {env} is not set or empty (it "
                                         "holds the token `vmimage serve token create` printed)")
    return value


def _finding(data: dict[str, Any]) -> Finding:
    evidence = tuple(Evidence(e.get("path"), e.get("line"), e.get("seen"), e.get("required"))
                     for e in data.get("evidence", []))
    return Finding(str(data["check_id"]), str(data["title"]), Status(data["status"]),
                   str(data["message"]), tuple(data.get("covers", [])),
                   str(data.get("remediation", "")), evidence,
                   Severity(data.get("severity", "fail")), data.get("waiver"))


def report_from_json(data: dict[str, Any]) -> Report:
    """A JSON report (``schemas/report-v1.json``) as a report object again.

    Raises:
        ValueError, KeyError, TypeError: not such a report.
    """
    target = data["target"]
    return Report(tool_version=str(data["tool"]["version"]), target=str(target["path"]),
                  target_kind=str(target["kind"]), profile=str(data["profile"]),
                  started=datetime.fromisoformat(data["started"]),
                  duration_s=float(data["duration_s"]),
                  findings=[_finding(f) for f in data["findings"]], role=str(target["role"]),
                  mode=str(data["mode"]), system=dict(data.get("system") or {}))


def _server(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError("--server", "the service's URL starts with http:// or https://")
    return url


def _error(response: Any, server: str) -> InputError:  # noqa: ANN401 - an httpx.Response
    try:
        message = str(response.json().get("error", ""))
    except ValueError:
        message = ""
    message = printable(redact(" ".join(message.split())))[:300] or response.reason_phrase
    if response.status_code == 401:
        return InputError("--token-env", f"the service refused the token (401): {message}")
    return InputError(server, f"the service refused the manifest ({response.status_code}): "
                              f"{message}")


def push(manifest: str | os.PathLike[str], server: str, token: str,
         dry_run: bool = False) -> PushResult:
    """Send ``manifest`` to the service at ``server``; with ``dry_run`` it is only judged.

    Raises:
        InputError: the manifest cannot be read (as for ``offer validate``), the service
            cannot be reached, refuses the token, or refuses the request (one line).
    """
    import httpx

    text = read_bounded_text(manifest, MAX_MANIFEST_BYTES)
    base = _server(server)
    path = f"{API}/manifests/validate" if dry_run else f"{API}/manifests"
    try:
        response = httpx.post(base + path, json={"name": os.fspath(manifest), "text": text},
                              headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT,
                              follow_redirects=False)
    except httpx.HTTPError as exc:
        raise InputError(base, f"cannot reach the service: {type(exc).__name__}: "
                               f"{printable(redact(str(exc)))[:200]}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    # 200: judged (and stored, for a push); 422 with a report: a rule failed, nothing stored.
    if not isinstance(body, dict) or response.status_code not in (200, 422) or \
            (response.status_code == 422 and "stored" not in body):
        raise _error(response, base)
    try:
        report = report_from_json(body if dry_run else body["report"])
    except (ValueError, KeyError, TypeError):
        raise InputError(base, "the service's answer is not a vmimage report") from None
    if dry_run:
        return PushResult(report, False, None)
    offer = body.get("offer")
    return PushResult(report, bool(body.get("stored")), str(offer) if offer else None)
