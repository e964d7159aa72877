#!/usr/bin/env python3
"""Benchmark: `vmimage check URL` on the compliant 30 GiB VHD in Azurite, side by side with
downloading the blob and checking the copy.

    python3 bench/bench_remote_check.py [--rounds 5] [--skip-full]

The image is the test suite's compliant Debian 12 image (tests/imagebuild.py), made a fixed
VHD by `vmimage vhd convert --in-place` and uploaded as a page blob by `vmimage upload` to an
Azurite started here (scripts/install-azurite.sh installs it). Then, one after the other:

- `vmimage check URL` in-process (`check_target`), every round; the requests and bytes are
  vmimage's own counters, and the number of requests is checked once against a counting proxy
  (tests/faultproxy.py) that sees every request on the wire;
- the same through the CLI, interpreter start included;
- the read-ahead settings that trade requests for bytes (`ReadAhead`), in-process;
- the peers, each followed by `vmimage check` of the copy: the SDK's
  `download_blob(max_concurrency=8)` of the whole blob, written sparse (for a page blob the SDK
  asks for the page ranges and fetches only the chunks holding some, as AzCopy does), and a
  download of exactly the written page ranges, 8 at a time.

Azurite runs on the same 2 cores, so the numbers measure client and emulator together. It
prints a Markdown section for docs/benchmarks.md. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import benchenv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import imagebuild as ib
from tests.azurite import Azurite
from tests.faultproxy import FaultProxy

import vmimage.targets.remote as remote
from vmimage.app.check import check_target
from vmimage.disk.remote import ReadAhead

MiB = 1024 * 1024
VMIMAGE = str(Path(sys.executable).with_name("vmimage"))
TUNINGS = {
    "no read-ahead (4 KiB pages)": ReadAhead(first=4096, later=4096),
    "default: 32 KiB, then 64 KiB per 1 MiB region": ReadAhead(),
    "64 KiB, then 256 KiB per 2 MiB region": ReadAhead(first=64 * 1024, later=256 * 1024,
                                                        region=2 * MiB),
    "256 KiB windows": ReadAhead(first=256 * 1024, later=256 * 1024),
}


class Counted:
    """vmimage's own counters of the last blob it read (its transport, when closed)."""

    requests = 0
    received = 0


def _count_transport() -> None:
    close = remote.BlobTransport.close

    def counted(self: remote.BlobTransport) -> None:
        Counted.requests, Counted.received = self.requests, self.bytes_read
        close(self)

    remote.BlobTransport.close = counted  # type: ignore[method-assign]


_PAGED = remote.PagedFile


def _with_tuning(tuning: ReadAhead | None) -> None:
    """Make the next opens read with ``tuning`` (None: the default)."""

    class _Tuned(_PAGED):  # type: ignore[misc, valid-type]
        def __init__(self, name: str, length: int, transport: object, data: object,
                     _default: object = None) -> None:
            super().__init__(name, length, transport, data, tuning)

    remote.PagedFile = _Tuned if tuning is not None else _PAGED  # type: ignore[misc]


def check_in_process(url: str, allow: str) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    report = check_target(url, "azure-current", "auto", allow_endpoints=[allow])
    took = time.perf_counter() - start
    return took, {f.check_id: str(f.status) for f in report.findings}


def check_cli(target: str, env: dict[str, str], *extra: str) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    res = subprocess.run([VMIMAGE, "check", target, "--format", "json", *extra], env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"vmimage check failed ({res.returncode}): {res.stderr[-800:]}")
    report: dict[str, object] = json.loads(res.stdout)
    return took, report


def download_full(az: Azurite, container: str, blob: str, dest: Path) -> tuple[float, int, int]:
    """The SDK's ``download_blob`` of the whole blob (it asks for the page ranges and fetches
    only those chunks: zeros elsewhere), written sparse: seconds, requests, bytes received."""
    seen = [0, 0]

    def hook(response: Any) -> None:
        seen[0] += 1
        seen[1] += int(response.http_response.headers.get("Content-Length") or 0)

    start = time.perf_counter()
    stream = az.blob(container, blob).download_blob(max_concurrency=8,
                                                    raw_response_hook=hook)
    length = 0
    with open(dest, "wb") as f:
        for chunk in stream.chunks():
            length += len(chunk)
            if chunk.count(0) == len(chunk):
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
        f.truncate(length)
    return time.perf_counter() - start, seen[0], seen[1]


def download_ranges(az: Azurite, container: str, blob: str, dest: Path
                    ) -> tuple[float, int, int]:
    """AzCopy's way with page blobs: the page ranges first, then only those, 8 at a time in
    pieces of at most 8 MiB, into a sparse file of the blob's length."""
    start = time.perf_counter()
    client = az.blob(container, blob)
    length = client.get_blob_properties().size
    pieces = []
    for r in client.list_page_ranges():
        for pos in range(r.start, r.end + 1, 8 * MiB):
            pieces.append((pos, min(8 * MiB, r.end + 1 - pos)))
    fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, length)

        def get(piece: tuple[int, int]) -> int:
            data = client.download_blob(offset=piece[0], length=piece[1]).readall()
            os.pwrite(fd, data, piece[0])
            return len(data)

        with ThreadPoolExecutor(8) as pool:
            received = sum(pool.map(get, pieces))
    finally:
        os.close(fd)
    return time.perf_counter() - start, len(pieces) + 2, received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-full", action="store_true",
                    help="skip the SDK's download_blob of the whole blob")
    args = ap.parse_args()
    _count_transport()

    image = ib.scratch_dir() / "bench-sample.vhd"
    if not image.exists():
        ib.to_vhd(ib.compliant_copy(image.with_suffix(".raw")), image, method="vmimage")
    work = Path(tempfile.mkdtemp(prefix="vmimage-bench-remote-", dir=ib.scratch_dir()))
    az = Azurite(tls=False, workdir=work / "azurite")
    az.workdir.mkdir()
    info = benchenv.machine(work)
    try:
        az.start()
        container = az.container("bench")
        env = az.env()
        up = subprocess.run([VMIMAGE, "upload", str(image), az.url(container, "os.vhd")],
                            env=env, capture_output=True, text=True, check=False)
        if up.returncode:
            raise SystemExit(f"upload failed: {up.stderr[-800:]}")
        url = az.sas(container, "os.vhd")
        allow = f"127.0.0.1:{az.port}"
        local_took, local = check_cli(str(image), env)

        lib, cli = [], []
        for _ in range(args.rounds):
            took, statuses = check_in_process(url, allow)
            lib.append((took, Counted.requests, Counted.received))
            took_cli, report = check_cli(url, env, "--allow-endpoint", allow)
            cli.append(took_cli)
        assert report["summary"]["verdict"] == "pass", report["summary"]  # type: ignore[index]
        assert {f["check_id"]: f["status"] for f in report["findings"]} == \
            {f["check_id"]: f["status"] for f in local["findings"]}  # type: ignore[index]

        proxy = FaultProxy(az.port)
        try:
            via = url.replace(f":{az.port}/", f":{proxy.port}/")
            check_in_process(via, f"127.0.0.1:{proxy.port}")
            on_wire = len(proxy.log)
        finally:
            proxy.close()

        sweep = []
        for name, tuning in TUNINGS.items():
            _with_tuning(tuning)
            took, _ = check_in_process(url, allow)
            sweep.append((name, took, Counted.requests, Counted.received))
        _with_tuning(None)

        peers = []
        copy = work / "copy.vhd"
        took, requests, received = download_ranges(az, container, "os.vhd", copy)
        check_took, _ = check_cli(str(copy), env)
        peers.append(("the written page ranges downloaded, 8 at a time, + local check",
                      took + check_took, requests, received))
        copy.unlink()
        if not args.skip_full:
            took, requests, received = download_full(az, container, "os.vhd", copy)
            check_took, _ = check_cli(str(copy), env)
            peers.append(("SDK `download_blob` of the whole blob, + local check",
                          took + check_took, requests, received))
            copy.unlink()
    finally:
        az.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    t_lib, t_cli = med(t for t, _, _ in lib), med(cli)
    requests, received = lib[-1][1], lib[-1][2]
    print("## Remote check by URL (issue 14)\n")
    print(f"Machine: {benchenv.one_line(info)}.\n")
    print("```\npython3 bench/bench_remote_check.py "
          f"--rounds {args.rounds}{' --skip-full' if args.skip_full else ''}\n```\n")
    print(f"Compliant 30 GiB image, {len(statuses)} rules, same verdict and statuses as the "
          f"local check of the file (local CLI check: {local_took:.2f} s). Medians of "
          f"{args.rounds} rounds; requests counted by vmimage ({requests}) and on the wire by "
          f"a proxy ({on_wire}).\n")
    print("| how | wall time | requests | transferred | × the CLI's time |")
    print("|---|---:|---:|---:|---:|")
    print(f"| `vmimage check URL` in-process | {t_lib:.2f} s | {requests} | "
          f"{received / MiB:.2f} MiB | |")
    print(f"| `vmimage check URL` CLI | {t_cli:.2f} s | {requests} | {received / MiB:.2f} MiB "
          "| 1 |")
    for name, took, n, size in peers:
        print(f"| {name} | {took:.1f} s | {n} | {size / MiB:.0f} MiB | "
              f"{took / t_cli:.0f}x |")
    print("\nRead-ahead settings (in-process, one run each):\n")
    print("| read-ahead | wall time | requests | transferred |\n|---|---:|---:|---:|")
    for name, took, n, size in sweep:
        print(f"| {name} | {took:.2f} s | {n} | {size / MiB:.2f} MiB |")


if __name__ == "__main__":
    main()
