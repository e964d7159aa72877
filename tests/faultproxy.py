"""A small fault-injecting HTTP proxy between the storage client and Azurite.

It forwards every request to the upstream server and can, on purpose: answer the next N
matching requests with 503 (a busy service), hold matching requests until the client hangs up
(a stalled network: the client's timeout fires, or the test SIGKILLs the client), flip one byte
in the body of the next N Put Page calls (a corrupting network), and count the Put Page bytes
that really reach the server.

Azure checks a Put Page body against its transactional ``Content-MD5`` header and answers
400 ``Md5Mismatch``; Azurite 3.35 does not check it at all (its handler leaves it as a TODO).
So the proxy plays Azure's part: a Put Page whose body does not match its ``Content-MD5``
is answered 400 ``Md5Mismatch`` and never forwarded. Plain HTTP on 127.0.0.1 only (rulings: the proxy
runs over HTTP). The client talks to it through path-style URLs, so the shared-key signature,
which covers the path and not the host, stays valid.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
        "trailer", "content-length", "host"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, and what became of it."""

    method: str
    path: str
    comp: str | None
    body: int
    outcome: str  # "forwarded 201", "injected 503", "held, dropped"


def is_put_page(method: str, query: dict[str, list[str]]) -> bool:
    return method == "PUT" and query.get("comp") == ["page"]


class FaultProxy:
    """Start with ``FaultProxy(upstream_port)``; URLs use ``proxy.port``; ``close()`` ends it."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cond = threading.Condition()
        self.log: list[Seen] = []
        self.page_bytes = 0  # Put Page bytes the server accepted
        self.page_puts = 0
        self.inflight = 0
        self.page_inflight = 0
        self.held = 0
        self._fail: list[tuple[Callable[[str, dict[str, list[str]]], bool], int, int]] = []
        self._stall_after: int | None = None
        self._hold_next = 0
        self._corrupt_next = 0
        self.corrupted = 0  # Put Page bodies flipped on purpose
        self.md5_rejected = 0  # Put Page calls refused for a Content-MD5 mismatch
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- what the tests ask for -----------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503,
                  match: Callable[[str, dict[str, list[str]]], bool] = is_put_page) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead of forwarding."""
        with self.cond:
            self._fail.append((match, count, status))

    def stall_after_pages(self, pages: int) -> None:
        """Forward ``pages`` Put Page calls, then hold every later one until its client hangs
        up (it is never forwarded)."""
        with self.cond:
            self._stall_after = pages

    def hold_next_pages(self, count: int) -> None:
        """Hold the next ``count`` Put Page calls until their client hangs up (a timeout)."""
        with self.cond:
            self._hold_next = count

    def corrupt_next_pages(self, count: int) -> None:
        """Flip one bit in the body of the next ``count`` Put Page calls, as a bad link would."""
        with self.cond:
            self._corrupt_next = count

    def wait_for(self, predicate: Callable[[FaultProxy], bool], timeout: float = 120) -> None:
        """Block until ``predicate(self)`` holds (checked on every change)."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"proxy state never reached: {self.describe()}")

    def describe(self) -> str:
        return (f"page_puts={self.page_puts} page_bytes={self.page_bytes} held={self.held} "
                f"inflight={self.inflight} requests={len(self.log)}")

    def reset_counts(self) -> None:
        with self.cond:
            self.log.clear()
            self.page_bytes = self.page_puts = 0
            self._stall_after = None
            self._hold_next = 0
            self._corrupt_next = 0
            self._fail.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the proxy itself -----------------------------------------------------------------------

    def _decide(self, method: str, query: dict[str, list[str]]) -> tuple[str, int]:
        """("fail", status), ("hold", 0) or ("forward", 0); counts in-flight forwards."""
        with self.cond:
            for i, (match, count, status) in enumerate(self._fail):
                if count > 0 and match(method, query):
                    self._fail[i] = (match, count - 1, status)
                    return "fail", status
            if is_put_page(method, query):
                if self._hold_next > 0:
                    self._hold_next -= 1
                    return "hold", 0
                if self._stall_after is not None and \
                        self.page_puts + self.page_inflight >= self._stall_after:
                    return "hold", 0
                self.page_inflight += 1
            self.inflight += 1
            return "forward", 0

    def _record(self, seen: Seen, forwarded: bool = False, page: bool = False,
                page_ok: bool = False) -> None:
        with self.cond:
            self.log.append(seen)
            if forwarded:
                self.inflight -= 1
            if page:
                self.page_inflight -= 1
            if page_ok:
                self.page_puts += 1
                self.page_bytes += seen.body
            self.cond.notify_all()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        comp = query.get("comp", [None])[0]
        action, status = self._decide(h.command, query)
        if action == "forward" and is_put_page(h.command, query):
            body = self._maybe_corrupt(body)
            if not _md5_matches(h.headers.get("Content-MD5"), body):
                action, status = "md5", 400
                with self.cond:
                    self.md5_rejected += 1
                    self.inflight -= 1
                    self.page_inflight -= 1
        if action in ("fail", "md5"):
            h.send_response(status)
            h.send_header("x-ms-error-code", "ServerBusy" if action == "fail" else "Md5Mismatch")
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(Seen(h.command, parts.path, comp, len(body), f"injected {status}"))
            return
        if action == "hold":
            with self.cond:
                self.held += 1
                self.cond.notify_all()
            _wait_for_hangup(h.connection)
            h.close_connection = True
            with self.cond:
                self.held -= 1
            self._record(Seen(h.command, parts.path, comp, len(body), "held, dropped"))
            return
        try:
            resp_status, reason, headers, data = self._forward(h, body)
        except OSError:
            self._record(Seen(h.command, parts.path, comp, len(body), "upstream error"),
                         forwarded=True, page=is_put_page(h.command, query))
            h.close_connection = True
            return
        ok = is_put_page(h.command, query) and 200 <= resp_status < 300
        self._record(Seen(h.command, parts.path, comp, len(body), f"forwarded {resp_status}"),
                     forwarded=True, page=is_put_page(h.command, query), page_ok=ok)
        try:
            h.send_response(resp_status, reason)
            for name, value in headers:
                if name.lower() not in _HOP:
                    h.send_header(name, value)
            length = len(data)
            if h.command == "HEAD":  # a HEAD tells the blob's length, and sends no body
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
            h.send_header("Content-Length", str(length))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        except OSError:
            h.close_connection = True

    def _maybe_corrupt(self, body: bytes) -> bytes:
        with self.cond:
            if self._corrupt_next <= 0 or not body:
                return body
            self._corrupt_next -= 1
            self.corrupted += 1
        flipped = bytearray(body)
        flipped[len(flipped) // 2] ^= 0x01
        return bytes(flipped)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes
                 ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
            headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
            conn.request(h.command, h.path, body=body if body or h.command == "PUT" else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()


def _md5_matches(header: str | None, body: bytes) -> bool:
    """Azure's check of a transactional Content-MD5 (no header: nothing to check)."""
    if not header:
        return True
    return base64.b64encode(hashlib.md5(body).digest()).decode() == header.strip()


def _wait_for_hangup(sock: socket.socket) -> None:
    """Return when the peer closes the connection (a timeout, or the process was killed)."""
    while True:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return
            except OSError:
                return
            return  # the client sent more (it gave up and reused the socket): drop it too
