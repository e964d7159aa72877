"""The HTTP servers: :class:`Endpoints` serves the WireServer and IMDS on its addresses.

Each request is read bounded (413 over :data:`MAX_BODY`, 411 for a chunked body, a timeout
for a guest that stops sending), answered by :mod:`vmimage.vm.endpoints.app` and logged
exactly once, the HTTP base class's own refusals included; nothing reaches stderr.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vmimage.vm.endpoints.app import _App, _Incoming, _Reply
from vmimage.vm.endpoints.config import _MAX_HEADER, EndpointConfig
from vmimage.vm.endpoints.log import Kind, Request, _Log, _logged_headers, _record, _safe_path

MAX_BODY = 1024 * 1024  # a health report is under 5 KiB, a telemetry batch under 64 KiB
_TIMEOUT = 30.0  # a guest that stops sending mid-request holds a thread this long at most


class _Handler(BaseHTTPRequestHandler):
    """Reads a bounded request, asks the app, answers, logs: nothing reaches stderr."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "vmimage-endpoints"
    sys_version = ""
    timeout = _TIMEOUT
    _logged = False

    def do_GET(self) -> None:
        """GET: the documents."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """HEAD: as GET, without the body."""
        self._dispatch()

    def do_POST(self) -> None:
        """POST: health and telemetry."""
        self._dispatch()

    def do_PUT(self) -> None:
        """PUT: nothing here (404), but logged."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """DELETE: nothing here (404), but logged."""
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: the JSON log is the record."""

    def _lower_headers(self) -> dict[str, str]:
        headers = getattr(self, "headers", None)
        if headers is None:
            return {}
        return {k.lower(): v for k, v in headers.items()}

    def handle_one_request(self) -> None:
        """One request of the connection: logged once, by ``_reply`` or ``send_error``."""
        self._logged = False
        super().handle_one_request()

    def _dispatch(self) -> None:
        when = time.time()
        headers = self._lower_headers()
        body, refusal = self._read_body(headers)
        if refusal is not None:
            self._reply(refusal, when, headers, len(body))
            return
        try:
            reply = self.server.app.answer(_Incoming(self.command, self.path, headers, body, when))
        except Exception as exc:  # a bug here must not take the server down
            reply = _Reply(500, "unknown", b"", note="internal-error", detail=repr(exc)[:_MAX_HEADER])
        self._reply(reply, when, headers, len(body))

    def _read_body(self, headers: Mapping[str, str]) -> tuple[bytes, _Reply | None]:
        """The body, at most MAX_BODY; otherwise the refusal (411, 413, 400) and the connection
        is closed, as the rest of the body is never read."""
        if "transfer-encoding" in headers:
            self.close_connection = True
            return b"", _Reply(411, "unknown", note="chunked")
        length = headers.get("content-length", "0").strip() or "0"
        if not length.isdigit():
            self.close_connection = True
            return b"", _Reply(400, "unknown", note="bad-content-length")
        if int(length) > MAX_BODY:
            self.close_connection = True
            return b"", _Reply(413, "unknown", note="too-large", detail=f"{length} bytes")
        return self.rfile.read(int(length)), None

    def _reply(self, reply: _Reply, when: float, headers: Mapping[str, str], body_bytes: int) -> None:
        self._log(reply.status, reply.kind, when, headers, body_bytes, reply)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _log(self, status: int, kind: Kind, when: float, headers: Mapping[str, str], body_bytes: int,
             reply: _Reply | None = None) -> None:
        self._logged = True
        host, port = self.client_address[:2]
        local = self.connection.getsockname()
        entry = Request(
            time=when, client=f"{host}:{port}", server=f"{local[0]}:{local[1]}",
            method=(self.command or "")[:16], path=_safe_path(getattr(self, "path", "") or ""),
            kind=kind, headers=_logged_headers(headers), status=status, body_bytes=body_bytes,
            note=reply.note if reply else "bad-request", detail=reply.detail if reply else None,
            health=reply.health if reply else None, telemetry=reply.telemetry if reply else None)
        self.server.app.log.write(_record(entry), essential=kind == "health")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own refusals (a garbled request line, an unknown method...) are
        requests too: logged before they are answered."""
        if not self._logged:
            self._log(code, "unknown", time.time(), self._lower_headers(), 0)
        super().send_error(code, message, explain)


class _Server(ThreadingHTTPServer):
    """One listening socket; every server of an :class:`Endpoints` shares its app and log."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # a guest's agent and cloud-init may connect at once, and retry

    def __init__(self, app: _App, address: tuple[str, int] | None = None,
                 sock: socket.socket | None = None) -> None:
        self.app = app
        if sock is not None:
            self.address_family = sock.family
            super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()[:2]
            self.server_activate()
            return
        assert address is not None
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (slow or hanging in a
        network namespace with no resolver)."""
        socketserver.TCPServer.server_bind(self)
        self.server_address = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class Endpoints:
    """The WireServer and IMDS on one or more addresses, logging to one file.

    ``with Endpoints(config, log) as ep: ep.listen("127.0.0.1", 0)`` (or ``adopt`` a socket
    bound elsewhere, e.g. in another network namespace); serving starts with the first
    address and stops when the block ends. Every address serves every path (Azure's IMDS
    client falls back to the WireServer's address).
    """

    def __init__(self, config: EndpointConfig, log_path: str | os.PathLike[str]) -> None:
        self.config = config
        self.log_path = Path(log_path)
        self._app = _App(config, _Log(log_path))
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound addresses, in the order they were added (port 0 resolved)."""
        return [(str(s.server_address[0]), int(s.server_address[1])) for s in self._servers]

    def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind ``host:port`` (port 0: any free port) and serve it; the bound address."""
        return self._serve(_Server(self._app, address=(host, port)))

    def adopt(self, sock: socket.socket) -> tuple[str, int]:
        """Serve an already bound TCP socket (it is listened on and owned from now on)."""
        return self._serve(_Server(self._app, sock=sock))

    def _serve(self, server: _Server) -> tuple[str, int]:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name=f"endpoints-{server.server_address[1]}", daemon=True)
        self._servers.append(server)
        self._threads.append(thread)
        thread.start()
        return self.addresses[-1]

    def close(self) -> None:
        """Stop serving, close the sockets and the log; requests in flight may be cut."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
        self._app.log.close()

    def __enter__(self) -> Endpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
