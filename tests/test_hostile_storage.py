"""Storage against a hostile network and hostile endpoints (issue 17, items 9 and 10).

A corrupting link (the fault proxy flips a bit in a Put Page body, and plays Azure's
Content-MD5 check, which Azurite lacks), a blob changed behind the uploader's back, two uploads
racing to create one blob; and ``sas verify`` against servers that redirect, trickle bytes, or
receive URIs with extra query parameters or a user name and password. Every test talks to
127.0.0.1 only, and every output is checked for secrets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.azurite import (
    Azurite,
    assert_no_secrets,
    azurite,  # noqa: F401 - fixture
    one_line_error,
    vmimage,
)
from tests.faultproxy import FaultProxy
from tests.test_storage_upload import assert_blob_is, dense_disk, sparse_disk
from vmimage.errors import InputError

MiB = 1024 * 1024


@pytest.fixture()
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:  # noqa: F811
    p = FaultProxy(azurite.port)
    yield p
    p.close()


# -- upload integrity ---------------------------------------------------------------------------


def test_a_bit_flipped_in_transit_is_refused_and_sent_again(azurite: Azurite,  # noqa: F811
                                                             proxy: FaultProxy,
                                                             tmp_path: Path) -> None:
    """Each Put Page carries its MD5, so the service refuses the corrupted body and the page
    is sent again: the blob holds the file, not the flipped bit."""
    disk = dense_disk(tmp_path)
    c = azurite.container()
    proxy.corrupt_next_pages(2)
    res = vmimage("upload", disk.path, azurite.url(c, "d.vhd", proxy.port), "--format", "json",
                  env=azurite.env())
    assert res.returncode == 0, res.stderr
    assert proxy.corrupted == 2 and proxy.md5_rejected == 2, proxy.describe()
    assert json.loads(res.stdout)["retries"] >= 2
    assert_blob_is(azurite, c, "d.vhd", disk, md5=False)


def test_a_link_that_always_corrupts_fails_after_the_retries(azurite: Azurite,  # noqa: F811
                                                             proxy: FaultProxy,
                                                             tmp_path: Path) -> None:
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    proxy.corrupt_next_pages(10_000)
    res = vmimage("upload", disk.path, azurite.url(c, "s.vhd", proxy.port), "--retries", "2",
                  "--workers", "1", env=azurite.env())
    line = one_line_error(res)
    assert "Md5Mismatch" in line


def test_verify_reports_the_first_range_that_differs(azurite: Azurite,  # noqa: F811
                                                     tmp_path: Path) -> None:
    """A rerun judged by page ranges says 'already complete'; --verify reads the content."""
    disk = dense_disk(tmp_path)
    c = azurite.container()
    url = azurite.url(c, "v.vhd")
    res = vmimage("upload", disk.path, url, "--verify", env=azurite.env())
    assert res.returncode == 0, res.stderr
    assert "verified" in res.stdout
    blob = azurite.blob(c, "v.vhd")
    offset = 8 * MiB + 4096  # inside the third data chunk (4 MiB cells 0, 1, 2...)
    page = bytearray(disk.path.read_bytes()[offset:offset + 512])
    page[7] ^= 0xFF
    blob.upload_page(bytes(page), offset=offset, length=512)
    plain = vmimage("upload", disk.path, url, "--format", "json", env=azurite.env())
    assert plain.returncode == 0 and json.loads(plain.stdout)["already_complete"] is True
    res = vmimage("upload", disk.path, url, "--verify", "--format", "json", env=azurite.env())
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    assert summary["verified"] is False
    assert f"at byte {offset + 7} (range {8 * MiB}-{12 * MiB - 1})" in summary["mismatch"]
    # progress lines ("vmimage: upload: ...") go to a log too; the error is one line of its own
    lines = [ln for ln in res.stderr.strip().splitlines()
             if not ln.startswith(("vmimage: upload: ", "vmimage: md5: "))]
    assert len(lines) == 1 and lines[0].startswith("vmimage: ") and "--overwrite" in lines[0]


def test_two_uploads_cannot_both_create_the_blob(azurite: Azurite,  # noqa: F811
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The other upload creates the blob between our look and our create: ours must stop, not
    recreate it (which would wipe the pages the other one wrote)."""
    from vmimage.storage import upload as up_mod

    disk = sparse_disk(tmp_path)
    c = azurite.container()
    other = azurite.blob(c, "race.vhd")
    other.create_page_blob(disk.length)
    other.upload_page(b"\x5a" * 512, offset=0, length=512)
    monkeypatch.setenv("AZURE_STORAGE_KEY", azurite.key)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.setattr(up_mod._Uploader, "properties", lambda self: None)  # "not there yet"
    with pytest.raises(InputError) as caught:
        up_mod.upload_file(disk.path, azurite.url(c, "race.vhd"), up_mod.UploadOptions(),
                           disk.length)
    assert "another upload created or changed the blob" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert azurite.download(c, "race.vhd")[:512] == b"\x5a" * 512


def test_overwrite_refuses_a_blob_changed_since_it_was_looked_at(
        azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """--overwrite recreates the blob it saw (its etag), not one another upload made since."""
    from vmimage.storage import upload as up_mod

    disk = sparse_disk(tmp_path)
    c = azurite.container()
    blob = azurite.blob(c, "seen.vhd")
    blob.create_page_blob(disk.length)
    seen = blob.get_blob_properties()
    blob.create_page_blob(disk.length)  # another upload recreated it: a new etag
    monkeypatch.setenv("AZURE_STORAGE_KEY", azurite.key)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.setattr(up_mod._Uploader, "properties", lambda self: seen)
    with pytest.raises(InputError, match="another upload created or changed"):
        up_mod.upload_file(disk.path, azurite.url(c, "seen.vhd"),
                           up_mod.UploadOptions(overwrite=True), disk.length)


# -- sas verify against hostile endpoints -------------------------------------------------------


class _Recorder(ThreadingHTTPServer):
    """A server on 127.0.0.1 that answers as ``behave`` says and records what it was asked."""

    daemon_threads = True

    def __init__(self, behave: str, location: str = "") -> None:
        self.behave, self.location = behave, location
        self.seen: list[str] = []
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        srv = self.server
        srv.seen.append(f"{self.command} {self.path}")
        if srv.behave == "redirect":
            self.send_response(302)
            self.send_header("Location", srv.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif srv.behave == "trickle":  # every read gets a byte in time; the answer never ends
            self.wfile.write(b"HTTP/1.1 200 OK\r\nx-ms-blob-type: PageBlob\r\nx-pad: ")
            self.wfile.flush()
            while not srv.stop.wait(0.3):
                try:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                except OSError:
                    return
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    do_GET = do_HEAD


FAKE_SAS = ("sv=2021-08-06&sr=c&sp=rl&st=2020-01-01T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z"
            "&sig=c2VjcmV0LXNpZ25hdHVyZS1kby1ub3QtcHJpbnQ%3D")


@pytest.fixture()
def victim() -> Iterator[_Recorder]:
    srv = _Recorder("record")
    yield srv
    srv.close()


def test_sas_verify_never_follows_a_redirect(victim: _Recorder) -> None:
    """A 302 to another port is a failure naming the status; the other server sees nothing."""
    from tests.azurite import remember_sas

    remember_sas(FAKE_SAS)
    target = f"http://127.0.0.1:{victim.port}/steal/c/disk.vhd"
    hostile = _Recorder("redirect", location=target)
    try:
        uri = f"http://127.0.0.1:{hostile.port}/acct/c/disk.vhd?{FAKE_SAS}"
        env = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb", "NO_PROXY": "127.0.0.1",
               "PATH": "/usr/bin:/bin"}
        res = vmimage("sas", "verify", uri, "--profile", "azure-2015", "--format", "json", env=env,
                      timeout=120)
    finally:
        hostile.close()
    assert res.returncode == 1, res.stderr
    assert hostile.seen and not victim.seen, victim.seen
    found = {f["check_id"]: f for f in json.loads(res.stdout)["findings"]}
    readable = found["SAS-URI-READABLE"]
    assert readable["status"] == "fail" and "302" in readable["message"]
    assert "redirect" in readable["message"]


def test_sas_verify_ends_by_its_deadline_against_a_trickling_server() -> None:
    """Each read gets a byte within the per-read timeout; the deadline still ends it."""
    from vmimage.app.sas import verify

    slow = _Recorder("trickle")
    try:
        uri = f"http://127.0.0.1:{slow.port}/acct/c/disk.vhd?{FAKE_SAS}"
        began = time.monotonic()
        findings = verify([uri], "azure-2015", timeout=2, deadline=3)
        took = time.monotonic() - began
    finally:
        slow.close()
    assert took < 10, f"sas verify took {took:.1f} s against a 3 s deadline"
    readable = next(f for f in findings if f.check_id == "SAS-URI-READABLE")
    assert readable.status.value == "fail" and "deadline" in readable.message
    assert_no_secrets(*(f.message for f in findings))


def test_an_extra_query_field_is_still_a_sas(azurite: Azurite,  # noqa: F811
                                             tmp_path: Path) -> None:
    """``&foo=1`` after a valid SAS: the SDK must not mistake the query for an account key."""
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    assert vmimage("upload", disk.path, azurite.url(c, "x.vhd"), "-q",
                   env=azurite.env()).returncode == 0
    uri = azurite.sas(c, "x.vhd") + "&foo=1"
    env = azurite.env(AZURE_STORAGE_KEY="")
    res = vmimage("sas", "verify", uri, "--profile", "azure-2015", "--format", "json", env=env)
    found = {f["check_id"]: f for f in json.loads(res.stdout)["findings"]}
    assert found["SAS-URI-READABLE"]["status"] == "pass", found["SAS-URI-READABLE"]
    assert found["SAS-URI-FOOTER"]["status"] == "pass"


def test_userinfo_in_a_sas_uri_is_refused_on_one_line() -> None:
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    res = vmimage("sas", "verify", f"http://user:hunter2pass@127.0.0.1:9/a/c/d.vhd?{FAKE_SAS}",
                  env=env)
    line = one_line_error(res)
    assert "hunter2pass" not in res.stdout + res.stderr and "user name or password" in line
