"""Helpers for the service's tests: a real ``vmimage serve`` process on 127.0.0.1 (a free port),
on an SQLite file or a real PostgreSQL database, and what the tests send it.

The server is the command a user runs (``python -m vmimage serve --bind 127.0.0.1:0``); it
prints the address it listens on, and :meth:`Service.stop` ends it with SIGTERM (SIGKILL if it
does not stop). Publishers' first tokens are made the way ``vmimage serve token create`` makes
them, through the application layer on the same database, in this process (a second process
start per test would cost seconds).
"""

from __future__ import annotations

import base64
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from vmimage.app.publishing.store import Store, open_store
from vmimage.app.publishing.tokens import create_publisher_token

ROOT = Path(__file__).resolve().parent.parent
BLOBS = "https://contosovhds.blob.core.windows.net/vhds"
START_TIMEOUT = 120.0


@dataclass
class Service:
    """A running ``vmimage serve``."""

    url: str
    database: str
    state_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    profile: str
    _store: Store | None = field(default=None, repr=False)
    _sessions: dict[str | None, httpx.Client] = field(default_factory=dict, repr=False)

    @property
    def api(self) -> str:
        """The API's base address."""
        return f"{self.url}/api/v1"

    def store(self) -> Store:
        """The same database and key, opened in this process (not migrated: the server did)."""
        if self._store is None:
            self._store = open_store(self.database, state_dir=self.state_dir,
                                     profile=self.profile, migrate_schema=False)
        return self._store

    def token(self, prefix: str = "pub") -> tuple[str, str]:
        """A new publisher (a unique namespace) and its first token."""
        namespace = f"{prefix}-{uuid.uuid4().hex[:10]}"
        return namespace, create_publisher_token(self.store(), namespace).token

    def client(self, token: str | None = None) -> httpx.Client:
        """A client of the API, with the token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60.0)

    def session(self, token: str | None = None) -> httpx.Client:
        """A client kept open for the server's life (making one costs more than a request)."""
        if token not in self._sessions:
            self._sessions[token] = self.client(token)
        return self._sessions[token]

    def logs(self) -> str:
        """Everything the server wrote on stdout and stderr so far."""
        return self.log.read_text("utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 20 s; the exit code."""
        if self._store is not None:
            self._store.close()
        for client in self._sessions.values():
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(20)


def start(database: str, state_dir: Path, *args: str, profile: str = "azure-2015") -> Service:
    """``vmimage serve --db DATABASE`` on a free port of 127.0.0.1, ready to answer."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "server.log"
    env = {**os.environ, "XDG_STATE_HOME": str(state_dir)}
    deadline = time.monotonic() + START_TIMEOUT
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "vmimage", "serve", "--db", database, "--state-dir",
             str(state_dir), "--bind", "127.0.0.1:0", "--profile", profile, *args],
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    return answering(first_line(process, log, "vmimage serve", deadline), database, state_dir,
                     log, process, profile, deadline)


def answering(text: str, database: str, state_dir: Path, log: Path,
              process: subprocess.Popen[bytes], profile: str, deadline: float) -> Service:
    """The service whose first line was ``text``, once it answers ``/health`` (by
    ``deadline``); stopped, and the test failed, if it never does."""
    url = text.split("listening on ", 1)[1].split(" ", 1)[0]
    service = Service(url, database, state_dir, log, process, profile)
    _relay(process, log)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{service.api}/health", timeout=5).status_code == 200:
                return service
        except httpx.HTTPError:
            time.sleep(0.1)
    service.stop()
    raise AssertionError("vmimage serve does not answer /health")


def first_line(process: subprocess.Popen[bytes], log: Path, what: str,
               deadline: float | None = None) -> str:
    """The first line a starting server prints (its address), or the end of its log."""
    assert process.stdout is not None
    deadline = deadline if deadline is not None else time.monotonic() + START_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 1) if ready else b""
        if not chunk:
            process.kill()
            raise AssertionError(f"{what} did not start: {log.read_text()[-3000:]}")
        line += chunk
    return line.decode()


def _relay(process: subprocess.Popen[bytes], log: Path) -> None:
    """Keep the server's stdout flowing into its log (a full pipe would block it)."""
    import threading

    def pump() -> None:
        assert process.stdout is not None
        with log.open("ab") as sink:
            for chunk in iter(lambda: process.stdout.read1(4096), b""):  # type: ignore[union-attr]
                sink.write(chunk)
                sink.flush()

    threading.Thread(target=pump, daemon=True).start()


@contextmanager
def running(database: str, state_dir: Path, *args: str,
            profile: str = "azure-2015") -> Iterator[Service]:
    """A server for the block, always stopped."""
    service = start(database, state_dir, *args, profile=profile)
    try:
        yield service
    finally:
        service.stop()


def sas_token(days: int = 40, resource: str = "c") -> str:
    """A SAS token that every offline SAS rule accepts (read+list on a container, started two
    days ago, valid ``days`` more); its signature is random."""
    now = datetime.now(UTC).replace(microsecond=0)
    start_at = (now - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    end_at = (now + timedelta(days=days)).isoformat().replace("+00:00", "Z")
    signature = base64.b64encode(os.urandom(32)).decode()
    permissions = "rl" if resource == "c" else "r"
    from urllib.parse import quote

    return (f"sv=2022-11-02&sr={resource}&sp={permissions}&st={start_at}&se={end_at}"
            f"&spr=https&sig={quote(signature, safe='')}")


def sku(sku_id: str = "web-gen1", *, image_type: str = "gen1", plan: str = "web",
        versions: list[dict[str, object]] | None = None) -> dict[str, object]:
    """A SKU body as ``offer.yaml`` writes it."""
    return {"id": sku_id, "plan": plan, "title": "Contoso Web on Debian 12",
            "summary": "Nginx on Debian 12, hardened and ready to serve.",
            "os": {"family": "linux", "type": "debian", "friendly_name": "Debian 12 (bookworm)"},
            "image_type": image_type,
            "recommended_sizes": ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_E2s_v5"],
            "versions": versions or []}


def version(number: str = "1.0.0", name: str = "web", data_disks: int = 1) -> dict[str, object]:
    """A version body with an OS disk and ``data_disks`` data disks, by blob URL."""
    return {"version": number, "os_disk": {"url": f"{BLOBS}/{name}-{number}-os.vhd"},
            "data_disks": [{"lun": i, "url": f"{BLOBS}/{name}-{number}-d{i}.vhd"}
                           for i in range(data_disks)]}


def one_sku_manifest(publisher: str, offer: str, title: str, versions: list[str], os_url: str,
                     data_url: str) -> str:
    """An ``offer.yaml`` (dedent it) with one Gen1 SKU whose ``versions`` all name these two
    blobs (the OS disk, a data disk at LUN 0)."""
    entries = "\n".join(f"""\
              - version: "{v}"
                os_disk: {{url: "{os_url}"}}
                data_disks: [{{lun: 0, url: "{data_url}"}}]""" for v in versions)
    return f"""\
        publisher: {publisher}
        offer: {{id: {offer}, title: {title}}}
        skus:
          - id: web-gen1
            plan: web
            title: Contoso Web on Debian 12
            summary: Nginx on Debian 12, hardened and ready to serve.
            os: {{family: linux, type: debian, friendly_name: "Debian 12 (bookworm)"}}
            image_type: gen1
            recommended_sizes: [Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]
            versions:
{entries}
        """
