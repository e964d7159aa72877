"""Our retry policy: short exponential backoff on the errors a busy storage service returns.

The SDK's default policy waits about 15 s before its first retry (rulings), which turns a
burst of 503s at high parallelism (the failure of Microsoft's azure-vhd-utils) into minutes of
idling. We switch it off (``retry_total=0``) and retry each request ourselves: on 408, 429,
500, 502, 503 and 504, on timeouts and broken connections, and on 400 ``Md5Mismatch`` (the
body was changed on the way: the transactional Content-MD5 caught it), waiting 0.25 s, 0.5 s, 1 s...
up to 15 s, with jitter, honouring ``Retry-After``. Put Page is idempotent, so repeating one is
always safe.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vmimage.storage.errors import error_code

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Error codes worth sending again whatever their status: a body corrupted in transit.
RETRY_CODES = frozenset({"Md5Mismatch"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request."""

    attempts: int = 8
    first_wait: float = 0.25
    max_wait: float = 15.0

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = min(self.max_wait, self.first_wait * 2 ** (attempt - 1))
        wait: float = base * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_wait))
        return wait


class Stopped(Exception):
    """The operation was abandoned because another part failed or the user interrupted."""


def transient(exc: BaseException) -> tuple[bool, float | None]:
    """Whether ``exc`` is worth retrying, and the server's ``Retry-After`` in seconds if any."""
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True, None  # connection refused or reset, timeouts
    if isinstance(exc, HttpResponseError):
        if error_code(exc) in RETRY_CODES:
            return True, None
        if exc.status_code not in RETRY_STATUS:
            return False, None
        headers = getattr(exc.response, "headers", None) or {}
        try:
            return True, float(headers.get("Retry-After", ""))
        except ValueError:
            return True, None
    return False, None


def call(fn: Callable[[], T], policy: RetryPolicy, stop: threading.Event | None = None,
         on_retry: Callable[[BaseException], None] | None = None) -> T:
    """``fn()``, retried on transient errors; the last error propagates.

    ``stop`` cuts a backoff short (raising :class:`Stopped`) when the run is being abandoned.
    """
    attempt = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped()
        try:
            return fn()
        except Exception as exc:
            attempt += 1
            retry, after = transient(exc)
            if not retry or attempt >= policy.attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            delay = policy.wait(attempt, after)
            if stop is not None:
                if stop.wait(delay):
                    raise Stopped() from exc
            else:
                threading.Event().wait(delay)
