"""``vmimage upload`` against Azurite: round trips, sparse data, resume after SIGKILL, faults.

Every upload runs the real CLI. A fault-injecting proxy (tests/faultproxy.py) sits between the
client and Azurite where a test needs to count the Put Page bytes that reach the server, inject
503s, or stall the upload so that a SIGKILL lands mid-way every time. Blobs are downloaded and
compared with the file byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azurite import (
    CLI,
    Azurite,
    Disk,
    assert_no_secrets,
    azurite,  # noqa: F401 - fixture
    azurite_tls,  # noqa: F401 - fixture
    make_disk,
    one_line_error,
    vmimage,
)
from tests.faultproxy import FaultProxy

MiB = 1024 * 1024


@pytest.fixture()
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:  # noqa: F811
    p = FaultProxy(azurite.port)
    yield p
    p.close()


def sparse_disk(tmp_path: Path, name: str = "disk.vhd", seed: int = 1) -> Disk:
    """48 MiB with data in three grid cells (one crossing a 4 MiB boundary), an allocated
    all-zero 4 MiB chunk, an unaligned tail and holes everywhere else."""
    rnd = __import__("random").Random(seed)
    pieces = [
        (0, rnd.randbytes(MiB + 4096)),                # boot area
        (8 * MiB - 6000, rnd.randbytes(12000)),        # crosses the 8 MiB grid line
        (16 * MiB, bytes(4 * MiB)),                    # allocated, all zero: never sent
        (30 * MiB + 512, rnd.randbytes(700 * 1024)),
        (48 * MiB - 4096, rnd.randbytes(4096)),        # the last sector before the footer
    ]
    return make_disk(tmp_path / name, 48 * MiB, pieces)


def dense_disk(tmp_path: Path, name: str = "dense.vhd", seed: int = 2) -> Disk:
    """64 MiB with 40 MiB of data in ten whole grid cells: ten Put Page calls."""
    rnd = __import__("random").Random(seed)
    pieces = [(i * 4 * MiB, rnd.randbytes(4 * MiB)) for i in (0, 1, 2, 3, 5, 6, 8, 10, 11, 13)]
    return make_disk(tmp_path / name, 64 * MiB, pieces)


def upload_json(az: Azurite, disk: Disk, url: str, *extra: str,
                env: dict[str, str] | None = None) -> dict[str, object]:
    res = vmimage("upload", disk.path, url, "--format", "json", "--put-md5", *extra, env=env or az.env())
    assert res.returncode == 0, res.stderr
    data: dict[str, object] = json.loads(res.stdout)
    return data


def assert_blob_is(az: Azurite, container: str, name: str, disk: Disk, md5: bool = True) -> None:
    """Byte-identical (hash of the download), the right length, and (``md5``: as --put-md5
    asks) the whole-file Content-MD5 set."""
    blob = az.blob(container, name)
    props = blob.get_blob_properties()
    assert props.size == disk.length
    assert str(props.blob_type.value) == "PageBlob"
    assert hashlib.sha256(az.download(container, name)).hexdigest() == disk.sha256()
    stored = props.content_settings.content_md5
    if md5:
        assert stored is not None and base64.b64encode(bytes(stored)).decode() == disk.md5()
    assert props.content_settings.content_type == "application/octet-stream"


def test_round_trip_sends_only_data(azurite: Azurite, proxy: FaultProxy,  # noqa: F811
                                    tmp_path: Path) -> None:
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    summary = upload_json(azurite, disk, azurite.url(c, "disk.vhd", proxy.port))
    assert_blob_is(azurite, c, "disk.vhd", disk)
    # Holes and the all-zero chunk never travel: the proxy counts what reached the server.
    assert proxy.page_bytes == disk.expected_sent == summary["sent_bytes"]
    assert disk.expected_sent < 3 * MiB
    assert summary["zero_bytes"] == 4 * MiB
    assert summary["content_md5"] == disk.md5()
    assert summary["resumed"] is False and summary["retries"] == 0
    assert summary["credential"] == "the account key in AZURE_STORAGE_KEY"
    # Put Page: at most 4 MiB and 512-aligned, which the proxy saw on the wire.
    pages = [s for s in proxy.log if s.comp == "page"]
    assert pages and all(0 < s.body <= 4 * MiB and s.body % 512 == 0 for s in pages)


def test_round_trip_https_and_rerun_is_a_no_op(azurite_tls: Azurite,  # noqa: F811
                                               tmp_path: Path) -> None:
    disk = dense_disk(tmp_path)
    c = azurite_tls.container()
    url = azurite_tls.url(c, "dense.vhd")
    res = vmimage("upload", disk.path, url, "--workers", "3", "--put-md5",
                  env=azurite_tls.env())
    assert res.returncode == 0, res.stderr
    assert "uploaded" in res.stdout and disk.md5() in res.stdout
    assert_blob_is(azurite_tls, c, "dense.vhd", disk)
    again = upload_json(azurite_tls, disk, url)
    assert again["already_complete"] is True and again["sent_bytes"] == 0


def test_resume_after_sigkill_sends_only_the_rest(azurite: Azurite, proxy: FaultProxy,  # noqa: F811
                                                  tmp_path: Path) -> None:
    disk = dense_disk(tmp_path)
    c = azurite.container()
    url = azurite.url(c, "dense.vhd", proxy.port)
    proxy.stall_after_pages(4)
    first = subprocess.Popen([CLI, "upload", str(disk.path), url, "--workers", "2", "--quiet"],
                             env=azurite.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Four pages landed, the next ones hang in the proxy and nothing is on its way.
        proxy.wait_for(lambda p: p.page_puts == 4 and p.held >= 1 and p.page_inflight == 0)
    finally:
        first.send_signal(signal.SIGKILL)
        out, err = first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert_no_secrets(out.decode(), err.decode())
    proxy.wait_for(lambda p: p.held == 0)
    landed = proxy.page_bytes
    assert landed == 4 * 4 * MiB
    proxy.reset_counts()

    summary = upload_json(azurite, disk, url)  # the same command again
    assert summary["resumed"] is True and summary["recreated"] is False
    assert proxy.page_bytes == summary["sent_bytes"] == disk.expected_sent - landed
    assert summary["present_bytes"] == landed
    # A resume never recreates the blob: no Put Blob (a PUT without comp=) went through.
    assert not [s for s in proxy.log if s.method == "PUT" and s.comp is None]
    assert_blob_is(azurite, c, "dense.vhd", disk)


def test_transient_503s_and_500s_are_retried(azurite: Azurite, proxy: FaultProxy,  # noqa: F811
                                             tmp_path: Path) -> None:
    disk = dense_disk(tmp_path)
    c = azurite.container()
    proxy.fail_next(3, 503)
    proxy.fail_next(1, 500, match=lambda method, q: method == "HEAD")
    summary = upload_json(azurite, disk, azurite.url(c, "dense.vhd", proxy.port))
    assert summary["retries"] == 4
    assert len([s for s in proxy.log if s.outcome.startswith("injected")]) == 4
    assert proxy.page_bytes == disk.expected_sent
    assert_blob_is(azurite, c, "dense.vhd", disk)


def test_a_stalled_request_times_out_and_is_retried(azurite: Azurite,  # noqa: F811
                                                    proxy: FaultProxy, tmp_path: Path) -> None:
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    proxy.hold_next_pages(1)
    summary = upload_json(azurite, disk, azurite.url(c, "disk.vhd", proxy.port),
                          "--timeout", "1")
    assert summary["retries"] >= 1
    assert any(s.outcome == "held, dropped" for s in proxy.log)
    assert_blob_is(azurite, c, "disk.vhd", disk)


def test_overwrite_recreates_and_other_files_are_refused(azurite: Azurite,  # noqa: F811
                                                         tmp_path: Path) -> None:
    first = dense_disk(tmp_path, "a.vhd", seed=3)
    second = sparse_disk(tmp_path, "b.vhd", seed=4)
    # Same length, so only the marker tells them apart.
    second = make_disk(second.path, first.size, [(0, b"\x01" * 4096)])
    c = azurite.container()
    url = azurite.url(c, "disk.vhd")
    upload_json(azurite, first, url)
    line = one_line_error(vmimage("upload", second.path, url, env=azurite.env()))
    assert "another file" in line and "--overwrite" in line
    summary = upload_json(azurite, second, url, "--overwrite")
    assert summary["recreated"] is True
    # Where the second file has holes, the first one's data must be gone.
    assert_blob_is(azurite, c, "disk.vhd", second)


def test_existing_block_blob_is_not_touched(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    azurite.blob(c, "disk.vhd").upload_blob(b"not a page blob")
    line = one_line_error(vmimage("upload", disk.path, azurite.url(c, "disk.vhd"),
                                  env=azurite.env()))
    assert "BlockBlob" in line and "not a page blob" in line
    assert azurite.download(c, "disk.vhd") == b"not a page blob"


def test_sas_from_a_file_and_errors_are_redacted(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    writer = azurite.sas(c, "disk.vhd", permission="rcw")
    url_file = tmp_path / "url.txt"
    url_file.write_text(writer + "\n")
    env = azurite.env()
    del env["AZURE_STORAGE_KEY"]
    summary = upload_json(azurite, disk, f"@{url_file}", env=env)
    assert summary["credential"] == "the SAS in the URL"
    assert "sig=REDACTED" in str(summary["blob"])
    assert_blob_is(azurite, c, "disk.vhd", disk)

    # A forged signature: the service says 403; we say so on one line, without the signature.
    forged = writer.replace("sig=", "sig=AAAA")
    url_file.write_text(forged)
    line = one_line_error(vmimage("upload", disk.path, f"@{url_file}", "--overwrite", env=env))
    assert "403" in line and "sig=REDACTED" in line
    # Nobody listening: the connection error names the URL, redacted.
    closed = writer.replace(f":{azurite.port}/", ":9/")
    url_file.write_text(closed)
    line = one_line_error(vmimage("upload", disk.path, f"@{url_file}", "--retries", "1",
                                  env=env))
    assert "sig=REDACTED" in line


def test_quiet_prints_nothing(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    disk = sparse_disk(tmp_path)
    c = azurite.container()
    res = vmimage("upload", disk.path, azurite.url(c, "disk.vhd"), "--quiet",
                  env=azurite.env())  # the whole-file MD5 is opt-in (rulings)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
    props = azurite.blob(c, "disk.vhd").get_blob_properties()
    assert props.content_settings.content_md5 is None
    assert props.metadata["vmimage_state"] == "complete"
    assert hashlib.sha256(azurite.download(c, "disk.vhd")).hexdigest() == disk.sha256()


def test_missing_container_is_created_with_a_key(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    disk = sparse_disk(tmp_path)
    name = f"new{os.urandom(4).hex()}"
    upload_json(azurite, disk, azurite.url(name, "dir/disk.vhd"))
    assert_blob_is(azurite, name, "dir/disk.vhd", disk)


def test_progress_bar_on_a_terminal(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    """On a terminal, stderr shows the bar with bytes and rate; the summary goes to stdout."""
    import pty

    disk = dense_disk(tmp_path)
    c = azurite.container()
    master, slave = pty.openpty()
    proc = subprocess.Popen([CLI, "upload", str(disk.path), azurite.url(c, "dense.vhd"),
                             "--put-md5"],
                            env={**azurite.env(), "COLUMNS": "120"}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        screen += data
    os.close(master)
    out, _ = proc.communicate()
    assert proc.returncode == 0
    text = screen.decode(errors="replace")
    assert_no_secrets(text, out.decode())
    assert "upload" in text and "md5" in text and "MB" in text
    assert "uploaded" in out.decode()


def _as_at_a_terminal() -> None:
    """The child as a shell at a terminal starts it: SIGINT handled by default, not blocked.

    A child inherits its parent's ignored signals and signal mask; a pytest worker may have
    come by either (the uploads that never stopped in three loaded CI runs had the main thread
    polling, untouched by the signal), and Python leaves an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal_state(pid: int) -> str:
    """The child's SigBlk/SigIgn/SigCgt lines: whether SIGINT can reach its handler."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        return f"no /proc status: {exc}"
    return ", ".join(line.replace("\t", " ") for line in status.splitlines()
                     if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_ctrl_c_stops_at_once_and_the_rerun_resumes(azurite: Azurite, proxy: FaultProxy,  # noqa: F811
                                                    tmp_path: Path) -> None:
    disk = dense_disk(tmp_path)
    c = azurite.container()
    url = azurite.url(c, "dense.vhd", proxy.port)
    proxy.stall_after_pages(2)
    # PYTHONFAULTHANDLER: if it does not stop, SIGABRT makes it print every thread's stack
    # (twice in loaded CI runs it did not exit within the cap; alone it always does).
    first = subprocess.Popen([CLI, "upload", str(disk.path), url, "--workers", "2"],
                             env={**azurite.env(), "PYTHONFAULTHANDLER": "1"},
                             stdin=subprocess.DEVNULL, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=_as_at_a_terminal)
    signals = "not read"
    try:
        proxy.wait_for(lambda p: p.page_puts == 2 and p.held >= 1 and p.page_inflight == 0)
        signals = _signal_state(first.pid)
    finally:
        first.send_signal(signal.SIGINT)
        try:
            out, err = first.communicate(timeout=240)  # a cap for a loaded machine, not a time
        except subprocess.TimeoutExpired:
            first.send_signal(signal.SIGABRT)
            out, err = first.communicate(timeout=60)
            pytest.fail(f"the upload did not stop after SIGINT ({signals}); its threads:\n"
                        f"{err[-8000:]}")
    assert first.returncode == 130, err
    assert "Traceback" not in err  # typer turns Ctrl-C into exit 130 itself
    assert_no_secrets(out, err)
    proxy.wait_for(lambda p: p.held == 0)
    proxy.reset_counts()
    summary = upload_json(azurite, disk, url)
    assert summary["resumed"] is True
    assert summary["sent_bytes"] == disk.expected_sent - 2 * 4 * MiB == proxy.page_bytes
    assert_blob_is(azurite, c, "dense.vhd", disk)
