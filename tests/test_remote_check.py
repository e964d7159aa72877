"""``vmimage check URL``: a VHD in blob storage certified by range requests, never downloaded.

Everything runs against a real Azurite (tests/azurite.py) with blobs put there by
``vmimage upload`` or the SDK, and the real CLI. The remote check of a file must give the
local check's findings, rule by rule; each refusal is one line on stderr with exit 2; no SAS
signature ever shows in stdout, stderr or a report file. The fetch policy's own rules (what
may be contacted at all) are tested on :mod:`vmimage.fetchpolicy` directly, with a resolver
standing in for DNS (no HTTP is involved there).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import targets_images as ti
from tests.azurite import (
    ACCOUNT,
    Azurite,
    assert_no_secrets,
    azurite,  # noqa: F401 - fixture
    azurite_tls,  # noqa: F401 - fixture
    one_line_error,
    remember_sas,
    server,
    vmimage,
)
from tests.faultproxy import FaultProxy
from vmimage.app.check import check_target
from vmimage.errors import InputError
from vmimage.fetchpolicy import FetchPolicy, FetchRefused, is_public

MiB = 1024 * 1024


def allow(az: Azurite) -> list[str]:
    return ["--allow-endpoint", f"127.0.0.1:{az.port}"]


def statuses(report: dict[str, object]) -> dict[str, tuple[str, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return {f["check_id"]: (f["status"], f["message"]) for f in findings}


def local_json(path: Path, role: str = "auto") -> dict[str, object]:
    """The JSON report of the same file checked locally."""
    from vmimage.report.render import render

    loaded: dict[str, object] = json.loads(render(check_target(str(path), "azure-current",
                                                               role), "json"))
    return loaded


def local_findings(path: Path, role: str = "auto") -> dict[str, tuple[str, str]]:
    return statuses(local_json(path, role))


def assert_same_identity(remote: dict[str, object], local: dict[str, object],
                         scheme: str) -> None:
    """The partition table's ID, read through the blob's pages, is the local file's."""
    got, expected = remote["target"], local["target"]
    assert isinstance(got, dict) and isinstance(expected, dict)
    assert expected["identity"]["partition_table"] == scheme, expected
    assert expected["identity"]["partition_table_id"]
    assert got["identity"] == expected["identity"]


def put_page_blob(az: Azurite, container: str, name: str, data: bytes) -> None:
    az.blob(container, name).upload_blob(data, blob_type="PageBlob", overwrite=True)


def remote_json(az: Azurite, url: str, tmp_path: Path, *extra: str,
                env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    """``vmimage --debug check URL -o remote.json``: every read logged, no secret in any of it
    (``vmimage`` checks stdout and stderr), nor in the report."""
    out = tmp_path / "remote.json"
    res = vmimage("--debug", "check", url, "-o", out, *extra, env=env or az.env())
    assert res.returncode in (0, 1), res.stderr
    # HEAD first, then ranges, each explicit (a suffix range crashes Azurite).
    head, first_get = res.stderr.find("HEAD blob: 200"), res.stderr.find("GET blob bytes=")
    assert 0 <= head < first_get, res.stderr[-2000:]
    assert "bytes=-" not in res.stderr
    assert url.split("?", 1)[1] not in out.read_text()
    return res.returncode, json.loads(out.read_text())


# ---- the compliant 30 GiB image ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compliant_blob(compliant_vhd: Path) -> Iterator[tuple[Azurite, str]]:
    """The compliant 30 GiB VHD uploaded by ``vmimage upload``; a read-only SAS URL to it."""
    az = server(False)
    container = az.container()
    res = vmimage("upload", compliant_vhd, az.url(container, "os.vhd"), env=az.env())
    assert res.returncode == 0, res.stderr
    yield az, az.sas(container, "os.vhd")
    az.service().delete_container(container)


@pytest.mark.slow
def test_a_remote_check_gives_the_local_findings_and_never_shows_the_token(
        compliant_vhd: Path, compliant_blob: tuple[Azurite, str], tmp_path: Path) -> None:
    az, url = compliant_blob
    reports = [tmp_path / name for name in ("r.json", "r.html", "r.sarif", "r.junit.xml")]
    outputs = [arg for path in reports for arg in ("-o", str(path))]
    res = vmimage("check", url, *allow(az), *outputs, "--format", "text", env=az.env())
    assert res.returncode == 0, res.stderr
    assert "PASSES" in res.stdout
    remote = json.loads(reports[0].read_text())
    base = url.split("?", 1)[0]
    assert remote["target"]["path"] == base
    assert remote["disk"]["path"] == base and remote["disk"]["format"] == "vhd-fixed"
    # The same rules with the same outcome and message as the same file checked locally, and
    # the same disk identity in the header.
    local_report = local_json(compliant_vhd)
    assert_same_identity(remote, local_report, "mbr")
    local = statuses(local_report)
    got = statuses(remote)
    assert sorted(got) == sorted(local)
    for rule, expected in local.items():
        assert got[rule] == expected, rule
    # Read by ranges: a few MiB of the 30 GiB, never the blob.
    assert isinstance(remote["bytes_read"], int) and 0 < remote["bytes_read"] < 64 * MiB
    token = url.split("?", 1)[1]
    for path in reports:
        text = path.read_text()
        assert base in text or path.suffix == ".sarif"
        assert token not in text
        assert_no_secrets(text)


@pytest.mark.slow
def test_the_library_reads_the_blob_with_the_allowlist_from_the_environment(
        compliant_blob: tuple[Azurite, str], monkeypatch: pytest.MonkeyPatch) -> None:
    az, url = compliant_blob
    monkeypatch.setenv("VMIMAGE_ALLOW_ENDPOINTS", f"localhost:1,127.0.0.1:{az.port}")
    report = check_target(url, "azure-current", "auto", only=["LINUX-SSH-CLIENT-ALIVE"])
    assert report.target == url.split("?", 1)[0]
    assert [(f.check_id, f.status.value) for f in report.findings] == \
        [("LINUX-SSH-CLIENT-ALIVE", "pass")]


# ---- other VHDs: dynamic, fixed over HTTPS -------------------------------------------------------


def test_a_dynamic_vhd_blob_is_read_and_judged_as_the_local_file(
        azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    """Azure refuses a dynamic VHD (VHD-FIXED-FORMAT fails) but every other rule still reads
    its contents: through its BAT and sector bitmaps, by ranges."""
    dynamic = ti.converted("vhd-dynamic")
    container = azurite.container()
    put_page_blob(azurite, container, "gpt.vhd", dynamic.read_bytes())
    url = azurite.sas(container, "gpt.vhd")
    env = azurite.env(VMIMAGE_ALLOW_ENDPOINTS=f"127.0.0.1:{azurite.port}")
    code, remote = remote_json(azurite, url, tmp_path, env=env)
    assert code == 1  # a dynamic VHD fails
    got = statuses(remote)
    assert got["VHD-FIXED-FORMAT"][0] == "fail"
    assert remote["disk"]["format"] == "vhd-dynamic"
    local = local_json(dynamic)
    assert got == statuses(local)
    assert_same_identity(remote, local, "gpt")


def test_a_fixed_vhd_over_https_its_url_in_a_file(azurite_tls: Azurite,  # noqa: F811
                                                  tmp_path: Path) -> None:
    fixed = ti.converted("vhd-fixed")
    container = azurite_tls.container()
    put_page_blob(azurite_tls, container, "gpt.vhd", fixed.read_bytes())
    url = azurite_tls.sas(container, "gpt.vhd")
    assert url.startswith("https://")
    (tmp_path / "url.txt").write_text(f"\n{url}\n")
    out = tmp_path / "remote.json"
    res = vmimage("check", f"@{tmp_path / 'url.txt'}", *allow(azurite_tls), "-o", out,
                  env=azurite_tls.env())
    assert res.returncode in (0, 1), res.stderr
    remote = json.loads(out.read_text())
    assert remote["target"]["path"] == url.split("?", 1)[0]
    local = local_json(fixed)
    assert statuses(remote) == statuses(local)
    assert_same_identity(remote, local, "gpt")


# ---- refusals: one line, exit 2, no token ------------------------------------------------------


@pytest.fixture(scope="module")
def small_blob() -> Iterator[tuple[Azurite, str]]:
    """A small fixed VHD as a page blob, for the refusals."""
    az = server(False)
    container = az.container()
    put_page_blob(az, container, "gpt.vhd", ti.converted("vhd-fixed").read_bytes())
    yield az, container
    az.service().delete_container(container)


def refused(az: Azurite, url: str, *extra: str) -> str:
    line = one_line_error(vmimage("check", url, *extra, env=az.env()))
    assert "sig=" not in line and "?" not in line, line
    return line


def test_an_expired_sas_is_named(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    past = datetime.now(UTC) - timedelta(days=1)
    url = az.sas(container, "gpt.vhd", scope="b", permission="r",
                 start=past - timedelta(days=2), expiry=past)
    line = refused(az, url, *allow(az))
    assert f"vmimage: {url.split('?')[0]}: the SAS token expired at " in line
    assert "403" in line


def test_a_wrong_signature_is_named(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    url = az.sas(container, "gpt.vhd")
    head = url.rsplit("sig=", 1)[0]
    forged = f"{head}sig={'A' * 43}%3D"
    remember_sas(forged.split("?", 1)[1])
    line = refused(az, forged, *allow(az))
    assert "the SAS token was refused (403" in line and "signature does not match" in line


def test_a_sas_without_read_permission_is_named(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    line = refused(az, az.sas(container, "gpt.vhd", permission="w", scope="b"), *allow(az))
    assert "does not grant read" in line


def test_no_such_blob_and_no_such_container(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    line = refused(az, az.sas(container, "missing.vhd"), *allow(az))
    assert line.endswith("missing.vhd: no such blob (404 BlobNotFound)")
    line = refused(az, az.sas("nocontainer", "os.vhd"), *allow(az))
    assert "no such container (404 ContainerNotFound)" in line


def test_a_block_blob_is_refused(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    az.blob(container, "block.vhd").upload_blob(ti.converted("vhd-fixed").read_bytes(),
                                                overwrite=True)
    line = refused(az, az.sas(container, "block.vhd"), *allow(az))
    assert "is a block blob: Azure takes a VHD only as a page blob" in line


def test_a_page_blob_that_is_no_vhd_is_refused(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    # Not random: random bytes may hold '?' or 'sig=', which the refusal's check of what it
    # shows (no SAS query) would take for a leak.
    put_page_blob(az, container, "raw.img", b"\xa5" * MiB)
    line = refused(az, az.sas(container, "raw.img"), *allow(az))
    assert "no VHD footer: the last 512 bytes start with b'\\xa5\\xa5" in line


def test_an_unreachable_host_is_named(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = az.sas(container, "gpt.vhd").replace(f":{az.port}/", f":{port}/")
    line = refused(az, url, "--allow-endpoint", f"127.0.0.1:{port}")
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in line


class _Recorder(ThreadingHTTPServer):
    hits: list[str]


def _http_server(redirect_to: str | None) -> _Recorder:
    """A tiny HTTP server on 127.0.0.1: a redirect to ``redirect_to`` for every request, or
    (None) a plain 200 that records being reached."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.server.hits.append(self.command)  # type: ignore[attr-defined]
            if redirect_to:
                self.send_response(302)
                self.send_header("Location", redirect_to)
            else:
                self.send_response(200)
                self.send_header("x-ms-blob-type", "PageBlob")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

    srv = _Recorder(("127.0.0.1", 0), Handler)
    srv.hits = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_a_redirect_is_never_followed(small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    elsewhere = _http_server(None)
    redirecting = _http_server(f"http://127.0.0.1:{elsewhere.server_port}/{ACCOUNT}/c/b.vhd")
    try:
        url = az.sas(container, "gpt.vhd").replace(f":{az.port}/",
                                                   f":{redirecting.server_port}/")
        line = refused(az, url, "--allow-endpoint", f"127.0.0.1:{redirecting.server_port}",
                       "--allow-endpoint", f"127.0.0.1:{elsewhere.server_port}")
        assert "answered 302 (a redirect); vmimage never follows redirects" in line
        assert redirecting.hits == ["HEAD"] and elsewhere.hits == []
    finally:
        for srv in (redirecting, elsewhere):
            srv.shutdown()
            srv.server_close()


def test_a_loopback_endpoint_not_allowed_is_refused_before_any_request(
        small_blob: tuple[Azurite, str]) -> None:
    az, container = small_blob
    url = az.sas(container, "gpt.vhd")
    line = refused(az, url)
    assert "127.0.0.1 is not an Azure blob endpoint: allow it with --allow-endpoint " \
           f"127.0.0.1:{az.port}" in line
    line = refused(az, url, "--allow-endpoint", f"127.0.0.1:{az.port + 1}")
    assert "is not an Azure blob endpoint" in line


def test_allow_endpoint_is_for_blob_urls_only() -> None:
    res = vmimage("check", ti.converted("vhd-fixed"), "--allow-endpoint", "127.0.0.1:1",
                  env=dict(os.environ))
    assert "--allow-endpoint: applies to blob URLs" in one_line_error(res)


# ---- the blob fails midway: no verdict on unread data -----------------------------------------


class _BreakingProxy(FaultProxy):
    """The fault proxy in front of Azurite, which forwards the first ``after`` range reads of
    the blob and then breaks every later one: answered 500 (a failing service), or the
    connection closed without an answer (a network that drops). HEAD and the page list pass."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.after: int | None = None
        self.fault = "500"
        self.reads = 0

    def _breaks(self, h: BaseHTTPRequestHandler) -> bool:
        if h.command != "GET" or "comp=" in h.path:
            return False
        with self.cond:
            self.reads += 1
            return self.after is not None and self.reads > self.after

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if not self._breaks(h):
            super()._handle(h)
        elif self.fault == "drop":
            h.close_connection = True  # no answer at all: the client sees the link go
        else:
            h.send_response(500)
            h.send_header("x-ms-error-code", "InternalError")
            h.send_header("Content-Length", "0")
            h.end_headers()


@pytest.mark.parametrize(("fault", "said", "tries"), [
    ("500", "the storage service answered 500 InternalError", 1),
    # A keep-alive connection the server closed is retried once, on a new connection.
    ("drop", "the connection to 127.0.0.1 was closed", 2),
])
def test_a_blob_that_fails_midway_ends_the_run_without_a_verdict(
        small_blob: tuple[Azurite, str], tmp_path: Path, fault: str, said: str,
        tries: int) -> None:
    """The filesystem readers (libyal) turn a failed read into "unreadable", and the rules
    that needed the file would skip: a verdict resting on data never read. The run ends
    instead, on one line naming the blob and what the service or the network did."""
    az, container = small_blob
    proxy = _BreakingProxy(az.port)
    try:
        url = az.sas(container, "gpt.vhd").replace(f":{az.port}/", f":{proxy.port}/")
        via = ["--allow-endpoint", f"127.0.0.1:{proxy.port}"]
        report = tmp_path / "r.json"
        res = vmimage("check", url, *via, "-o", report, env=az.env())
        assert res.returncode in (0, 1), res.stderr
        clean = proxy.reads  # range reads of a whole check: the footer, then the disk
        assert clean > 8, clean
        report.unlink()
        # Midway, and at the very last read (where, unchecked, a binding's "unable to read"
        # made a dozen rules fail on files that seemed empty: exit 1, a wrong verdict).
        for after in (clean // 2, clean - 1):
            proxy.reads, proxy.after, proxy.fault = 0, after, fault
            res = vmimage("check", url, *via, "-o", report, env=az.env())
            line = one_line_error(res)
            base = url.split("?", 1)[0]
            assert line.startswith(f"vmimage: {base}: reading the blob failed during the "
                                   "check, so no verdict is given: "), line
            assert said in line, line
            assert url.split("?", 1)[1] not in res.stderr + res.stdout
            assert not report.exists()  # no report rests on the unread data
            assert proxy.reads == after + tries  # the first failure ended the reading
    finally:
        proxy.close()


# ---- the fetch policy itself ------------------------------------------------------------------


def resolving(*addresses: str) -> FetchPolicy:
    return FetchPolicy(resolver=lambda host, port: addresses)


def test_azure_endpoints_are_allowed_over_https_on_443_to_public_addresses() -> None:
    for host in ("acct.blob.core.windows.net", "acct.blob.core.usgovcloudapi.net",
                 "acct.blob.core.chinacloudapi.cn", "acct.z12.blob.storage.azure.net"):
        dest = resolving("20.60.1.2").vet(f"https://{host}/c/os.vhd?sv=1&sig=abc")
        assert (dest.host, dest.port, dest.addresses, dest.tls) == \
            (host, 443, ("20.60.1.2",), True)
        assert dest.display == f"https://{host}/c/os.vhd"
    for url, why in [("http://acct.blob.core.windows.net/c/b", "plain http:// is refused"),
                     ("https://acct.blob.core.windows.net:8443/c/b", "port 8443"),
                     ("https://blob.core.windows.net.evil.example/c/b", "not an Azure blob"),
                     ("https://169.254.169.254/metadata", "not an Azure blob"),
                     ("ftp://acct.blob.core.windows.net/c/b", r"only http\(s\) URLs")]:
        with pytest.raises(FetchRefused, match=why):
            resolving("20.60.1.2").vet(url)


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "169.254.169.254", "::1",
                                     "fe80::1", "::ffff:10.0.0.1", "100.64.0.1", "0.0.0.0"])
def test_an_azure_name_resolving_to_a_private_address_is_refused_unless_allowed(
        address: str) -> None:
    url = "https://acct.blob.core.windows.net/c/os.vhd"
    with pytest.raises(FetchRefused, match=f"resolves to {address}, a private"):
        resolving("20.60.1.2", address).vet(url)  # any one address is enough
    allowed = FetchPolicy.from_settings(["acct.blob.core.windows.net"])
    allowed = FetchPolicy(allowed.allowed, resolver=lambda host, port: [address])
    assert allowed.vet(url).addresses == (address,)
    assert not is_public(address)


def test_explicit_endpoints_from_the_flag_and_the_environment() -> None:
    policy = FetchPolicy.from_settings(
        ["127.0.0.1:10000", "[::1]:10001"],
        {"VMIMAGE_ALLOW_ENDPOINTS": "localhost:9, .blob.example.org"})
    assert [str(e) for e in policy.allowed] == \
        ["localhost:9", ".blob.example.org", "127.0.0.1:10000", "[::1]:10001"]
    policy = FetchPolicy(policy.allowed, resolver=lambda host, port: ["127.0.0.1"])
    assert policy.vet("http://127.0.0.1:10000/a/c/b").tls is False
    assert policy.vet("http://localhost:9/a/c/b").addresses == ("127.0.0.1",)
    assert policy.vet("https://acct.blob.example.org/c/b").port == 443
    with pytest.raises(FetchRefused, match="not an Azure blob endpoint"):
        policy.vet("http://127.0.0.1:10002/a/c/b")  # the port is part of the endpoint
    for bad in ("http://host", "host/path", "::1", "host:port"):
        with pytest.raises(InputError, match=r"--allow-endpoint: .* is not HOST"):
            FetchPolicy.from_settings([bad])
    with pytest.raises(InputError, match="VMIMAGE_ALLOW_ENDPOINTS"):
        FetchPolicy.from_settings([], {"VMIMAGE_ALLOW_ENDPOINTS": "user@host"})


# ---- the pages under the target: read-ahead, holes, large reads -----------------------------


class FileTransport:
    """A local file served by ranges, counting what a blob would cost (no HTTP: this is the
    byte layer's own test; the HTTP side is tested against Azurite above)."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.requests = 0
        self.bytes_read = 0
        self.asked: list[tuple[int, int]] = []

    def fetch(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        self.requests += len(ranges)
        self.asked += ranges
        self.bytes_read += sum(length for _, length in ranges)
        return [self.data[offset:offset + length] for offset, length in ranges]

    def close(self) -> None:
        pass


def test_pages_read_the_file_exactly_and_never_fetch_unwritten_pages(tmp_path: Path) -> None:
    import random

    from vmimage.disk.remote import PagedFile, ReadAhead

    rnd = random.Random(5)
    path = tmp_path / "blob"
    content = bytearray(8 * MiB + 512)
    written = [(0, 4096), (MiB, 3 * MiB), (6 * MiB + 8192, 8 * MiB + 512)]
    for start, end in written:
        content[start:end] = rnd.randbytes(end - start)
    path.write_bytes(bytes(content))
    transport = FileTransport(path)
    tuning = ReadAhead(capacity=2 * MiB)  # small: large reads bypass it, pages get evicted
    paged = PagedFile("blob", len(content), transport, written, tuning)
    for _ in range(400):
        offset = rnd.randrange(len(content))
        length = rnd.choice((1, 64, 256, 4096, 70000, MiB))
        assert paged.read(offset, length) == bytes(content[offset:offset + length])
    # Nothing asked lies wholly in the unwritten pages, and no request is larger than 4 MiB.
    for offset, length in transport.asked:
        assert length <= tuning.max_request
        assert any(offset < end and start < offset + length for start, end in written)
    assert paged.read(4 * MiB, 4096) == bytes(4096)
    assert paged.read(len(content) - 100, 1000) == bytes(content[-100:])
    assert paged.read(len(content), 10) == b""
    assert list(paged.data_ranges()) == [(s, e - s) for s, e in written]
