"""The request-body guard: every body is size-limited and, when it is JSON, parsed strictly
before any router sees it.

- A body larger than the limit is refused with 413 and never kept: one a little over it is
  read to its end and dropped (so the client, still sending, hears the 413), one far over it
  (by ``Content-Length`` or by the bytes received so far) is refused at once.
- A JSON body must be UTF-8 JSON with no key given twice (Python's parser keeps the last one
  silently, as PyYAML does in YAML: the rulings refuse that for manifests, and the API holds
  manifests), no ``NaN`` or ``Infinity`` (not JSON), and no nesting so deep that a parser
  recurses out of its stack. Each is a 400 naming the problem and where.
- A body that is not JSON goes only to the routes that take raw uploads (reports); anywhere
  else it is a 415.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``): the body is buffered once
and replayed to the application.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Nesting deeper than this is refused before Python's parser recurses into it.
MAX_DEPTH = 64
#: Bodies up to this size are parsed on the event loop (a few milliseconds at most).
_INLINE = 64 * 1024


class BodyProblem(Exception):
    """Why a body is refused: the status and the one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BodyProblem(400, f"malformed JSON: key {key[:80]!r} is given twice")
        out[key] = value
    return out


def _constant(name: str) -> Any:  # noqa: ANN401 - json's parse_constant
    raise BodyProblem(400, f"malformed JSON: {name} is not a JSON number")


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (cheap: one pass, no recursion)."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_json(body: bytes) -> None:
    """Refuse a body that is not strict JSON.

    Raises:
        BodyProblem: 400 with what is wrong and where.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyProblem(400, f"malformed JSON: not UTF-8 (byte {exc.start})") from None
    if _depth(text) > MAX_DEPTH:
        raise BodyProblem(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
    try:
        json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise BodyProblem(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column "
                               f"{exc.colno}") from None
    except RecursionError:
        raise BodyProblem(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits, say
        raise BodyProblem(400, f"malformed JSON: {str(exc)[:120]}") from None


def _is_json(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or (base.startswith("application/")
                                          and base.endswith("+json"))


class BodyGuard:
    """Size-limit every body, parse JSON bodies strictly, refuse other bodies except on
    ``raw_paths``; add the headers every answer carries."""

    def __init__(self, app: ASGIApp, max_body: int, raw_paths: re.Pattern[str]) -> None:
        self.app = app
        self.max_body = max_body
        self.raw_paths = raw_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            await self._judge(scope, body)
        except BodyProblem as problem:
            await _refuse(send, problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        """The body, or 413. A body a little over the limit is read to its end and dropped,
        so that a client still sending it hears the 413 instead of a reset connection; one
        far over it (:meth:`_drain`) is refused before it is read."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = BodyProblem(413, f"the request body is larger than {self.max_body} bytes")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BodyProblem(400, "Content-Length is not a number") from None
            if length > self._drain:
                raise too_big
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyProblem(400, "the client went away")
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self._drain:
                raise too_big
            if total <= self.max_body:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if total > self.max_body:
            raise too_big
        return b"".join(chunks)

    @property
    def _drain(self) -> int:
        """How much of an oversized body is still read (and dropped) before the 413."""
        return self.max_body + max(self.max_body, 1024 * 1024)

    async def _judge(self, scope: Scope, body: bytes) -> None:
        if not body:
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not content_type or _is_json(content_type):
            if len(body) > _INLINE:  # a large body is parsed off the event loop
                await run_in_threadpool(check_json, body)
            else:
                check_json(body)
        elif not self.raw_paths.search(scope["path"]):
            raise BodyProblem(415, f"send JSON (Content-Type: application/json), not "
                                   f"{content_type.split(';', 1)[0][:60]!r}")


def _with_headers(send: Send) -> Send:
    """Every answer: no sniffing of content types, no caching of publisher data."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            for name, value in ((b"x-content-type-options", b"nosniff"),
                                (b"cache-control", b"no-store"),
                                (b"referrer-policy", b"no-referrer")):
                if name not in names:
                    headers.append((name, value))
            message["headers"] = headers
        await send(message)

    return wrapped


async def _refuse(send: Send, problem: BodyProblem) -> None:
    body = json.dumps({"error": problem.message}).encode()
    await send({"type": "http.response.start", "status": problem.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
