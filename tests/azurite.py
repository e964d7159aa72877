"""Azurite for the storage tests: one emulator per xdist worker, over HTTP and HTTPS.

Azurite is the npm package pinned in package-lock.json (scripts/install-azurite.sh runs
``npm ci``). Each worker process starts its own on a free port with ``--location`` in a temp
dir (it writes into the current directory otherwise), ``--skipApiVersionCheck`` (npm's 3.35
refuses the SDK's newest API version) and an account with a random key, so a test that greps
output for the key proves something. The HTTPS instance uses a self-signed certificate made
with openssl at test time. Processes are ours alone and stopped by their own process group.

Helpers here also run the real ``vmimage`` CLI and check that no secret (the account key, any
signature) shows in what it prints.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.ports import free_port as _free_port
from tests.vhd_util import VMIMAGE
from vmimage.disk import vhd

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "vmtest"
MiB = 1024 * 1024

#: The CLI under test; VMIMAGE_CLI lets a developer point at another entry point.
CLI = os.environ.get("VMIMAGE_CLI", VMIMAGE)

_SIG = re.compile(r"sig=(?!REDACTED)[^&\s\"'<>]+", re.IGNORECASE)




@dataclass
class Azurite:
    """One running Azurite blob service."""

    tls: bool
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vmimage-az-")))
    key: str = field(default_factory=lambda: base64.b64encode(os.urandom(64)).decode())
    port: int = 0
    cert: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"{AZURITE_BIN} is missing: run scripts/install-azurite.sh")
        data = self.workdir / "data"
        data.mkdir()
        cmd = [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--location", str(data),
               "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        if self.tls:
            self.cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(key), "-out", str(self.cert), "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True, stdin=subprocess.DEVNULL)
            cmd += ["--cert", str(self.cert), "--key", str(key)]
        env = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{self.key}"}
        for attempt in range(3):  # a free port may be taken between probe and bind
            self.port = _free_port()
            log = open(self.workdir / f"azurite-{attempt}.log", "wb")  # noqa: SIM115
            self.proc = subprocess.Popen([*cmd, "--blobPort", str(self.port)], env=env,
                                         cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            log.close()
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"Azurite did not start: see {self.workdir}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    # -- URLs and clients ---------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def account_url(self, port: int | None = None) -> str:
        return f"{self.scheme}://127.0.0.1:{port or self.port}/{ACCOUNT}"

    def url(self, container: str, blob: str, port: int | None = None) -> str:
        return f"{self.account_url(port)}/{container}/{blob}"

    def service(self):
        from azure.storage.blob import BlobServiceClient

        kwargs = {"connection_verify": str(self.cert)} if self.cert else {}
        return BlobServiceClient(self.account_url(), credential={
            "account_name": ACCOUNT, "account_key": self.key}, retry_total=1, **kwargs)

    def container(self, name: str | None = None) -> str:
        """A new, empty container (one per test keeps tests apart)."""
        name = name or f"c{os.urandom(6).hex()}"
        self.service().create_container(name)
        return name

    def blob(self, container: str, blob: str):
        return self.service().get_blob_client(container, blob)

    def download(self, container: str, blob: str) -> bytes:
        return bytes(self.blob(container, blob).download_blob().readall())

    def sas(self, container: str, blob: str, permission: str = "rl",
            start: datetime | None = None, expiry: datetime | None = None,
            scope: str = "c", **extra: str) -> str:
        """A SAS URI made directly with the SDK, for the bad cases ``sas create`` refuses."""
        from azure.storage.blob import generate_blob_sas, generate_container_sas

        now = datetime.now(UTC)
        start = start or now - timedelta(days=2)
        expiry = expiry or now + timedelta(days=40)
        if scope == "c":
            token = generate_container_sas(ACCOUNT, container, account_key=self.key,
                                           permission=permission, start=start, expiry=expiry,
                                           **extra)
        else:
            token = generate_blob_sas(ACCOUNT, container, blob, account_key=self.key,
                                      permission=permission, start=start, expiry=expiry,
                                      **extra)
        remember_sas(token)
        return f"{self.url(container, blob)}?{token}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a CLI run needs: the key, and the CA for HTTPS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE")}
        env.update(NO_COLOR="1", TERM="dumb", COLUMNS="200", AZURE_STORAGE_KEY=self.key,
                   NO_PROXY="127.0.0.1,localhost")
        if self.cert:
            env.update(REQUESTS_CA_BUNDLE=str(self.cert), SSL_CERT_FILE=str(self.cert))
        env.update(extra)
        return env


_lock = threading.Lock()
_servers: dict[bool, Azurite] = {}
_secrets: set[str] = set()


def server(tls: bool = False) -> Azurite:
    """This worker's Azurite (started on first use, stopped when the worker exits)."""
    with _lock:
        if tls not in _servers:
            az = Azurite(tls)
            az.start()
            _servers[tls] = az
            _secrets.add(az.key)
            atexit.register(_cleanup, az)
        return _servers[tls]


def _cleanup(az: Azurite) -> None:
    az.stop()
    shutil.rmtree(az.workdir, ignore_errors=True)


@pytest.fixture()
def azurite() -> Azurite:
    return server(False)


@pytest.fixture()
def azurite_tls() -> Azurite:
    return server(True)


def remember_sas(token: str) -> None:
    from urllib.parse import parse_qs, unquote

    for raw in re.findall(r"(?:^|[?&])sig=([^&]*)", token):
        _secrets.add(raw)
        _secrets.add(unquote(raw))
    for sig in parse_qs(token.lstrip("?")).get("sig", []):
        _secrets.add(sig)


def assert_no_secrets(*texts: str) -> None:
    """No account key and no signature in anything printed."""
    for text in texts:
        for secret in _secrets:
            assert secret not in text, "a secret was printed"
        found = _SIG.search(text)
        assert found is None, f"a SAS signature was printed: {found.group()[:8]}..."


def vmimage(*args: str | os.PathLike[str], env: dict[str, str],
            secret_stdout: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI; its output is checked for secrets (stdout too unless ``secret_stdout``)."""
    res = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    assert_no_secrets(res.stderr)
    if secret_stdout:
        for line in res.stdout.splitlines():
            remember_sas(line)
    else:
        assert_no_secrets(res.stdout)
    return res


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 and exactly one line on stderr starting ``vmimage:``; returns that line."""
    assert res.returncode == 2, f"exit {res.returncode}: {res.stderr}"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vmimage: "), res.stderr
    return lines[0]


# -- disks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disk:
    """A sparse fixed VHD made for a test, and what an upload of it must send."""

    path: Path
    size: int  # virtual size
    expected_sent: int  # bytes of non-zero 4 MiB-grid chunks, footer included

    @property
    def length(self) -> int:
        return self.size + vhd.FOOTER_SIZE

    def md5(self) -> str:
        h = hashlib.md5()
        with open(self.path, "rb") as f:
            while chunk := f.read(8 * MiB):
                h.update(chunk)
        return base64.b64encode(h.digest()).decode()

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def make_disk(path: Path, size: int, pieces: list[tuple[int, bytes]]) -> Disk:
    """A sparse fixed VHD of ``size`` holding ``pieces`` (offset, bytes), holes elsewhere.

    ``expected_sent`` is worked out here from the layout, independently of the uploader: every
    4 MiB grid cell holding a non-zero byte is sent, clipped to the allocated extents.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size + vhd.FOOTER_SIZE)
        for offset, data in pieces:
            os.pwrite(fd, data, offset)
        os.pwrite(fd, vhd.Footer.new(size).pack(), size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Disk(path, size, _expected(path))


def _expected(path: Path) -> int:
    """Bytes an upload must send: allocated extents cut on the 4 MiB grid, zero cells dropped."""
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            cell = start
            while cell < stop:
                cut = min(stop, (cell // (4 * MiB) + 1) * 4 * MiB)
                if os.pread(fd, cut - cell, cell).strip(b"\0"):
                    total += cut - cell
                cell = cut
            pos = stop
    finally:
        os.close(fd)
    return total
