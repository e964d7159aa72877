"""``vmimage submit push``: the Partner Center documents of a manifest sent to a
product-ingestion "configure" endpoint, and the job waited for.

One client for both ends: Partner Center itself
(``https://graph.microsoft.com/rp/product-ingestion``, with a Microsoft Entra ID token from
azure-identity's default credential chain) and ``vmimage serve``
(``https://HOST/rp/product-ingestion``, with the service's API token from an environment
variable). Only httpx (and, for Entra ID, azure-identity) is imported.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vmimage.errors import InputError
from vmimage.offer.partner_center import SCHEMA_HOST, SCHEMA_VERSION
from vmimage.secrets import redact
from vmimage.textsafe import printable

#: Partner Center's endpoint, and the audience of its tokens.
PARTNER_CENTER = "https://graph.microsoft.com/rp/product-ingestion"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SUBMISSION_SCHEMA = f"{SCHEMA_HOST}/submission/{SCHEMA_VERSION}"
TARGETS = ("draft", "preview", "live")
TIMEOUT = 60.0
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Pushed:
    """A configure job as it ended (or as it stood when the wait ended)."""

    job_id: str
    status: str
    result: str
    errors: list[dict[str, Any]] = field(default_factory=list)


def endpoint(url: str) -> str:
    """The configure endpoint's base (``.../rp/product-ingestion``).

    Raises:
        InputError: not an http(s) URL.
    """
    url = url.strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise InputError("--to", "the endpoint starts with https:// (Partner Center: "
                                 f"{PARTNER_CENTER})")
    return url


def is_partner_center(url: str) -> bool:
    """Whether ``url`` is Microsoft's endpoint (an Entra ID token is needed there)."""
    return (urlsplit(url).hostname or "").lower() == "graph.microsoft.com"


def bearer(url: str, auth: str, token_env: str) -> str:
    """The bearer token: ``entra`` (azure-identity's default credential chain: environment,
    workload identity, managed identity, Azure CLI...), or ``token`` (the API token in
    ``token_env``); ``auto`` picks Entra ID for Partner Center.

    Raises:
        InputError: no token in the variable, or no Entra ID credential available.
    """
    if auth == "auto":
        auth = "entra" if is_partner_center(url) else "token"
    if auth == "token":
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise InputError("--token-env", f"environment variable {token_env} is not set or "
                                            "empty (the service's API token)")
        return value
    try:
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import DefaultAzureCredential

        return str(DefaultAzureCredential().get_token(GRAPH_SCOPE).token)
    except ClientAuthenticationError as exc:
        raise InputError("--auth", "no Microsoft Entra ID credential: "
                                   f"{printable(redact(str(exc).splitlines()[0]))[:300]}"
                         ) from None


def with_submission(document: dict[str, Any], offer_id: str, target: str | None
                    ) -> dict[str, Any]:
    """The configure document, with a ``submission`` resource when ``target`` is given."""
    if target is None:
        return document
    submission = {"$schema": SUBMISSION_SCHEMA, "product": {"externalId": offer_id},
                  "target": {"targetType": target}}
    return {**document, "resources": [*document["resources"], submission]}


def _problem(response: Any, base: str) -> InputError:  # noqa: ANN401 - an httpx.Response
    try:
        err = response.json().get("error", {})
        message = err.get("message", "") if isinstance(err, dict) else str(err)
        details = [d.get("message", "") for d in err.get("details", [])] \
            if isinstance(err, dict) else []
    except (ValueError, AttributeError):
        message, details = "", []
    text = "; ".join([message, *details][:6]) or response.reason_phrase
    if response.status_code == 401:
        return InputError("--token-env", f"the endpoint refused the token (401): "
                                         f"{printable(redact(text))[:300]}")
    return InputError(base, f"the endpoint refused the request ({response.status_code}): "
                            f"{printable(redact(text))[:600]}")


def push(base: str, token: str, document: dict[str, Any], wait: float) -> Pushed:
    """POST the document, then poll the job until it is completed or ``wait`` seconds pass.

    Raises:
        InputError: the endpoint cannot be reached or refuses the request.
    """
    import httpx

    params = {"$version": SCHEMA_VERSION}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        with httpx.Client(headers=headers, timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.post(f"{base}/configure", params=params, json=document)
            if response.status_code >= 300:
                raise _problem(response, base)
            job = response.json()
            deadline = time.monotonic() + wait
            while job.get("jobStatus") != "completed" and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                response = client.get(f"{base}/configure/{job['jobId']}/status", params=params)
                if response.status_code >= 500:
                    continue  # as Partner Center's own clients: a 5xx is "still pending"
                if response.status_code >= 300:
                    raise _problem(response, base)
                job = response.json()
    except httpx.HTTPError as exc:
        raise InputError(base, f"cannot reach the endpoint: {type(exc).__name__}: "
                               f"{printable(redact(str(exc)))[:200]}") from None
    return Pushed(str(job.get("jobId")), str(job.get("jobStatus")), str(job.get("jobResult")),
                  list(job.get("errors") or []))
