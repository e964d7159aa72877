"""``vmimage register``: the guide's Create VM Image requests (REG-CREATE) sent to a service
that speaks the classic API (``vmimage serve``), each operation waited for (REG-ASYNC).

As the classic clients did, it authenticates by a management certificate over TLS (a PEM
holding the certificate and its key, ``--cert``); an API token (``Authorization: Bearer``,
from an environment variable) works too. The server's certificate is verified (``--ca-file``
for a private CA). Only httpx is imported: no database, no server.
"""

from __future__ import annotations

import os
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmimage.app.publishing.classicxml import local_name
from vmimage.errors import InputError
from vmimage.secrets import redact
from vmimage.textsafe import printable

#: The version the guide sends; the service accepts every later one as Azure did.
X_MS_VERSION = "2014-06-01"
CONTENT_TYPE = "application/xml"
TIMEOUT = 60.0
#: Operation polls: every few seconds, as the classic client's ``wait_for_operation_status``.
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Credentials:
    """How ``vmimage register`` authenticates and whom it trusts."""

    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class Outcome:
    """One image's registration: Succeeded, Failed (with the service's error), or
    AlreadyRegistered (a name registered before: a rerun)."""

    name: str
    status: str
    operation: str | None
    error: tuple[str, str] | None = None
    seconds: float = 0.0


def _server(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError("--server", "the service's URL starts with https:// (or http://)")
    return url


def _tls(credentials: Credentials) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=credentials.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(str(credentials.ca_file), f"is not a CA bundle: {exc}") from None
    if credentials.cert is not None:
        try:
            context.load_cert_chain(credentials.cert, credentials.key)
        except FileNotFoundError as exc:
            raise InputError(str(exc.filename), "no such file") from None
        except (OSError, ssl.SSLError) as exc:
            raise InputError(str(credentials.cert), "is not a PEM certificate with its "
                                                    f"private key: {exc}") from None
    return context


def _headers(credentials: Credentials) -> dict[str, str]:
    headers = {"x-ms-version": X_MS_VERSION}
    if credentials.token:
        headers["Authorization"] = f"Bearer {credentials.token}"
    return headers


def _fields(elements: Any) -> dict[str, str]:  # noqa: ANN401 - an element, or an iterator
    """Each element's text by its local name (the last one wins)."""
    return {local_name(e.tag): (e.text or "").strip() for e in elements}


def _error_of(response: Any) -> tuple[str, str]:  # noqa: ANN401 - an httpx.Response
    """The ``<Error>`` of a classic answer (code, message), or the HTTP reason."""
    try:
        from defusedxml.ElementTree import fromstring

        root = fromstring(response.content, forbid_dtd=True)
        fields = _fields(root.iter())
        code, message = fields.get("Code", ""), fields.get("Message", "")
    except Exception:
        code = message = ""
    line = printable(redact(" ".join(message.split())))[:600]
    return code or str(response.status_code), line or response.reason_phrase


class ClassicClient:
    """One service, one subscription."""

    def __init__(self, server: str, subscription: str, credentials: Credentials) -> None:
        import httpx

        self.base = _server(server)
        self.subscription = subscription
        self._client = httpx.Client(verify=_tls(credentials), headers=_headers(credentials),
                                    timeout=TIMEOUT, follow_redirects=False)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401
        import httpx

        try:
            return self._client.request(method, f"{self.base}/{self.subscription}{path}",
                                        **kwargs)
        except httpx.HTTPError as exc:
            raise InputError(self.base, f"cannot reach the service: {type(exc).__name__}: "
                                        f"{printable(redact(str(exc)))[:200]}") from None

    def create(self, body: str) -> str:
        """POST a ``VMImage`` body; the operation ID.

        Raises:
            Refusal: the service refused it (4xx/5xx with its ``<Error>``).
        """
        response = self._call("POST", "/services/vmimages", content=body.encode("utf-8"),
                              headers={"Content-Type": CONTENT_TYPE})
        if response.status_code >= 300:
            raise Refusal(response.status_code, *_error_of(response))
        operation = response.headers.get("x-ms-request-id")
        if not operation:
            raise InputError(self.base, "the service accepted the request but named no "
                                        "operation (no x-ms-request-id)")
        return str(operation)

    def operation(self, operation: str) -> tuple[str, tuple[str, str] | None]:
        """An operation's status and, when it failed, its error."""
        from defusedxml.ElementTree import fromstring

        response = self._call("GET", f"/operations/{operation}")
        if response.status_code >= 300:
            raise Refusal(response.status_code, *_error_of(response))
        try:
            root = fromstring(response.content, forbid_dtd=True)
        except Exception:
            raise InputError(self.base, "the operation's status is not XML") from None
        fields = _fields(root.iter())
        error = None
        if any(local_name(e.tag) == "Error" for e in root.iter()):
            error = (fields.get("Code", ""), printable(redact(fields.get("Message", "")))[:1000])
        return fields.get("Status", ""), error

    def registered(self, name: str) -> bool:
        """Whether ``name`` is listed as registered (VMImageState Ready)."""
        from defusedxml.ElementTree import fromstring

        response = self._call("GET", "/services/vmimages")
        if response.status_code >= 300:
            return False
        root = fromstring(response.content, forbid_dtd=True)
        for image in root:
            fields = _fields(image)
            if fields.get("Name") == name:
                return fields.get("VMImageState") == "Ready"
        return False


class Refusal(Exception):
    """The service answered a request with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def image_name(body: str) -> str:
    """The ``<Name>`` of a body this tool rendered."""
    root = ET.fromstring(body)  # our own rendering, never input
    for element in root:
        if local_name(element.tag) == "Name":
            return element.text or ""
    return ""


def wait(client: ClassicClient, operation: str, timeout: float,
         clock: Callable[[], float] = time.monotonic) -> tuple[str, tuple[str, str] | None]:
    """Poll an operation until it succeeds or fails, or ``timeout`` seconds pass.

    Raises:
        InputError: the timeout passed with the operation in progress.
    """
    deadline = clock() + timeout
    while True:
        status, error = client.operation(operation)
        if status == "Succeeded" or error is not None:
            return status, error
        if clock() >= deadline:
            raise InputError("--timeout", f"operation {operation} is still {status or 'pending'}"
                                          f" after {timeout:.0f} s: check it later with the "
                                          "same command (it will say AlreadyRegistered)")
        time.sleep(POLL_SECONDS)


def register_one(client: ClassicClient, body: str, timeout: float) -> Outcome:
    """Send one body and wait for its operation."""
    name, started = image_name(body), time.monotonic()
    try:
        operation = client.create(body)
    except Refusal as refusal:
        if refusal.status == 409 and client.registered(name):
            return Outcome(name, "AlreadyRegistered", None)
        if refusal.status in (401, 403):
            raise InputError(client.base, f"the service refused the credentials "
                                          f"({refusal.status} {refusal.code}): "
                                          f"{refusal.message}") from None
        return Outcome(name, "Refused", None, (refusal.code, refusal.message))
    status, error = wait(client, operation, timeout)
    return Outcome(name, status, operation, error, time.monotonic() - started)


def subscription_of(server: str, credentials: Credentials) -> str:
    """The subscription of the API token's publisher (``GET /api/v1/me``).

    Raises:
        InputError: no token, or the service refuses it.
    """
    import httpx

    if not credentials.token:
        raise InputError("--subscription", "name the subscription (--subscription or "
                                           "$VMIMAGE_SUBSCRIPTION): with a certificate alone "
                                           "it cannot be looked up")
    base = _server(server)
    try:
        response = httpx.get(f"{base}/api/v1/me", verify=_tls(credentials),
                             headers={"Authorization": f"Bearer {credentials.token}"},
                             timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise InputError(base, f"cannot reach the service: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise InputError("--token-env", f"the service refused the token "
                                        f"({response.status_code})")
    return str(response.json().get("subscription", ""))


def token_from(env: str | None) -> str | None:
    """The API token in the environment variable ``env``, if set."""
    if env is None:
        return None
    value = os.environ.get(env, "").strip()
    return value or None
