"""A real Redis for the job engine's tests, from Debian's ``redis-server`` package
(``scripts/install-test-deps.sh`` installs it).

Each one listens on 127.0.0.1 on a free port, keeps nothing on disk (``--save ''``,
``--appendonly no``, its working directory a private temporary one) and runs in its own
process group; :meth:`Redis.stop` always ends it and removes the directory (the fixtures call
it in a ``finally``). A test without ``redis-server`` is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port as _free_port

MISSING = "redis-server is not installed (scripts/install-test-deps.sh installs Debian's " \
          "redis-server)"




@dataclass
class Redis:
    """A running ``redis-server``."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        """Whether it answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """End it (its whole process group) and remove its directory."""
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> Redis:
    """A fresh ``redis-server`` on 127.0.0.1, answering; skips the test when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(MISSING)
    root = Path(tempfile.mkdtemp(prefix="vmimage-redis-"))
    for _ in range(3):  # a free port may be taken between probe and bind
        port = _free_port()
        log = root / f"redis-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                 "--appendonly", "no", "--dir", str(root), "--daemonize", "no",
                 "--protected-mode", "yes", "--logfile", ""],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
                start_new_session=True)
        server = Redis(port, root, process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            if server.ping():
                return server
            time.sleep(0.05)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Redis]:
    """A Redis for the module, always stopped."""
    server = start()
    try:
        yield server
    finally:
        server.stop()
