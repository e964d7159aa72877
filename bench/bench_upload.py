#!/usr/bin/env python3
"""Benchmark: a 30 GiB sparse fixed VHD holding about 2 GB of data, uploaded to Azurite.

Side by side, one after the other, each into a fresh blob:

- ``vmimage upload`` and ``vmimage upload --put-md5`` (whole-blob MD5 computed while uploading),
  through the CLI as a user runs it;
- the Azure SDK's own ``upload_blob(blob_type="PageBlob")``, which reads and zero-checks every
  byte of the 30 GiB (in a child process with a time limit; ``--sdk-timeout``);
- AzCopy (``azcopy copy --blob-type PageBlob``, and with ``--put-md5``) when ``--azcopy PATH``
  names its binary: npm ships it (``npm install --prefix /tmp/azc
  @azure-tools/azcopy-linux@10.32.2``, binary under ``dist/bin/``; it needs Debian's
  ``libsecret-1-0``);
- the MD5 of the file alone (``md5sum``, and Python's hashlib reading 8 MiB at a time): the
  floor of any upload that sets Content-MD5, since MD5 is sequential and one core hashes the
  28 GB of zeros too. The SDK computes no whole-blob MD5, so "SDK with MD5" is its time plus
  the hash's.

Page cache warm (the file is read once before the runs). Azurite runs on the same 2 cores, so
the numbers measure the client and the emulator together. Needs Azurite from
scripts/install-azurite.sh. Run from the repository root:

    python3 bench/bench_upload.py [--dir /tmp] [--sdk-timeout 900] [--skip-sdk] [--azcopy PATH]

It prints a Markdown section for docs/benchmarks.md. This is not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.azurite import ACCOUNT, Azurite

from vmimage.disk import vhd

GiB, MiB = 1024**3, 1024**2
VMIMAGE = str(Path(sys.executable).with_name("vmimage"))
if not Path(VMIMAGE).exists():
    VMIMAGE = shutil.which("vmimage") or "vmimage"
VMIMAGE = os.environ.get("VMIMAGE_CLI", VMIMAGE)

_SDK_CHILD = r"""
import sys, time
from azure.storage.blob import BlobClient
url, account, key, container, blob, path = sys.argv[1:7]
client = BlobClient(url, container, blob, credential={"account_name": account, "account_key": key})
start = time.monotonic()
with open(path, "rb") as f:
    client.upload_blob(f, blob_type="PageBlob", overwrite=True, max_concurrency=8)
print(time.monotonic() - start)
"""


def make_disk(path: Path, size: int = 30 * GiB) -> int:
    """Data where a real Linux disk has it: 1 GiB of files at the start, 60 pieces of 16 MiB
    spread over the disk, 64 KiB of metadata every 128 MiB (ext4 block groups), and 128 MiB of
    allocated zeros (a zeroed swap area). Returns the bytes of data written."""
    rnd = random.Random(7)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    written = 0
    try:
        os.ftruncate(fd, size + vhd.FOOTER_SIZE)

        def put(offset: int, length: int) -> None:
            nonlocal written
            for pos in range(offset, offset + length, 4 * MiB):
                n = min(4 * MiB, offset + length - pos)
                os.pwrite(fd, rnd.randbytes(n), pos)
                written += n

        put(MiB, GiB)
        for i in range(60):
            put(2 * GiB + i * (size - 3 * GiB) // 60, 16 * MiB)
        for group in range(size // (128 * MiB)):
            put(group * 128 * MiB + 64 * MiB, 64 * 1024)
        os.pwrite(fd, bytes(128 * MiB), size - 512 * MiB)
        os.pwrite(fd, vhd.Footer.new(size).pack(), size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


def timed(cmd: list[str], env: dict[str, str], timeout: float | None = None
          ) -> tuple[float, str]:
    start = time.monotonic()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, check=False)
    took = time.monotonic() - start
    if res.returncode != 0:
        raise SystemExit(f"{cmd[:2]} failed: {res.stderr[-2000:]}")
    return took, res.stdout


def hash_file(path: Path) -> float:
    start = time.monotonic()
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MiB)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--sdk-timeout", type=float, default=900)
    ap.add_argument("--skip-sdk", action="store_true")
    ap.add_argument("--azcopy", help="the azcopy binary, to compare it too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vmimage-bench-up-", dir=args.dir))
    az = Azurite(tls=False, workdir=work / "azurite")
    az.workdir.mkdir()
    disk = work / "disk.vhd"
    try:
        data = make_disk(disk)
        hash_file(disk)  # warm the page cache
        az.start()
        container = az.container("bench")
        env = az.env()
        rows: list[tuple[str, float, str]] = []

        def vmimage(name: str, *extra: str) -> float:
            took, out = timed([VMIMAGE, "upload", str(disk), az.url(container, f"{name}.vhd"),
                               "--quiet", "--json", *extra], env)
            summary = json.loads(out)
            rows.append((f"vmimage upload {' '.join(extra)}".strip(), took,
                         f"{summary['sent_bytes'] / 1e9:.2f} GB sent, "
                         f"{summary['zero_bytes'] / MiB:.0f} MiB zero chunks skipped"))
            az.blob(container, f"{name}.vhd").delete_blob()
            return took

        fast = vmimage("nomd5")
        with_md5 = vmimage("md5", "--put-md5")
        if args.azcopy:
            from azure.storage.blob import generate_container_sas

            token = generate_container_sas(ACCOUNT, container, account_key=az.key,
                                           permission="racwdl",
                                           expiry=datetime.now(UTC) + timedelta(hours=3))
            logs = work / "azcopy"
            azenv = {**env, "AZCOPY_LOG_LOCATION": str(logs),
                     "AZCOPY_JOB_PLAN_LOCATION": str(logs)}
            for name, extra in (("azcopy", []), ("azcopy-md5", ["--put-md5"])):
                url = f"{az.url(container, name + '.vhd')}?{token}"
                took, _ = timed([args.azcopy, "copy", str(disk), url, "--blob-type",
                                 "PageBlob", "--from-to", "LocalBlob", *extra], azenv)
                sent = sum(r.end - r.start + 1 for r in
                           az.blob(container, name + ".vhd").list_page_ranges())
                rows.append((f"azcopy copy --blob-type PageBlob {' '.join(extra)}".strip(),
                             took, f"{sent / 1e9:.2f} GB of pages on the blob"))
                az.blob(container, name + ".vhd").delete_blob()
        md5sum, _ = timed(["md5sum", str(disk)], env)
        rows.append(("md5sum FILE (hash alone)", md5sum, "reads 30 GiB, holes included"))
        py_md5 = hash_file(disk)
        rows.append(("hashlib.md5 over the file (hash alone)", py_md5, "8 MiB reads"))
        sdk = None
        if not args.skip_sdk:
            try:
                sdk, _ = timed([sys.executable, "-c", _SDK_CHILD, az.account_url(), ACCOUNT,
                                az.key, container, "sdk.vhd", str(disk)], env,
                               timeout=args.sdk_timeout)
                rows.append(("SDK upload_blob(PageBlob, max_concurrency=8)", sdk,
                             "zero-checks all 30 GiB; sets no MD5"))
            except subprocess.TimeoutExpired:
                rows.append(("SDK upload_blob(PageBlob, max_concurrency=8)", float("nan"),
                             f"stopped after {args.sdk_timeout:.0f} s"))
        floor = min(md5sum, py_md5)
        print("## Upload\n")
        print(f"`python3 bench/bench_upload.py` on {platform.node() or 'this machine'}: "
              f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
              f"{platform.python_version()}, Azurite 3.35.0 on the same machine over HTTP, "
              f"page cache warm. Disk: 30 GiB fixed VHD, {data / 1e9:.2f} GB of data written "
              "(1 GiB at the start, 60 x 16 MiB spread out, 64 KiB every 128 MiB, 128 MiB of "
              "allocated zeros).\n")
        print("| run | seconds | notes |\n|---|---:|---|")
        for name, took, note in rows:
            print(f"| {name} | {took:.1f} | {note} |")
        print()
        if sdk is not None:
            print(f"- vmimage without MD5 is {sdk / fast:.1f}x faster than the SDK; with MD5, "
                  f"{(sdk + floor) / with_md5:.1f}x faster than the SDK followed by a hash.")
        print(f"- vmimage with MD5 takes {with_md5 / floor:.2f}x the time of hashing the file "
              f"alone ({with_md5:.1f} s against {floor:.1f} s).")
    finally:
        az.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
