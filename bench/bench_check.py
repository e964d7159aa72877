"""Benchmark: `vmimage check` on a 30 GiB sparse fixed VHD holding a full Debian 12 root,
side by side with virt-inspector (libguestfs) on the same image.

    python3 bench/bench_check.py [--rounds 5] [--peer-rounds 2] [--cold]

Prints a Markdown table for docs/benchmarks.md. Run by hand, as root; never in the test suite.
`--cold` drops the page cache before every round (echo 3 > /proc/sys/vm/drop_caches).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import imagebuild as ib

from vmimage.app.check import check_target


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(cmd: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1),
          expect: bytes = b"") -> float:
    """Wall time of ``cmd``; it must exit with one of ``ok`` and print ``expect`` (a peer that
    fails fast must not pass for a fast peer)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env={**os.environ, **(env or {})},
                          check=False, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok or expect not in proc.stdout:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer-rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()

    image = ib.scratch_dir() / "bench-sample.vhd"
    if not image.exists():
        ib.to_vhd(ib.compliant_copy(image.with_suffix(".raw")), image, method="vmimage")
    st = image.stat()
    print(f"image: {image}, {st.st_size} bytes, {st.st_blocks * 512} allocated", file=sys.stderr)

    lib_times, cli_times, read = [], [], []
    for _ in range(args.rounds):
        if args.cold:
            drop_caches()
        start = time.perf_counter()
        report = check_target(str(image), "azure-current")
        lib_times.append(time.perf_counter() - start)
        read.append(report.bytes_read or 0)
        if args.cold:
            drop_caches()
        cli_times.append(timed([sys.executable, "-m", "vmimage", "check", str(image),
                                "--format", "json"], expect=b'"verdict": "pass"'))

    peer_times = []
    if shutil.which("virt-inspector"):
        for _ in range(args.peer_rounds):
            if args.cold:
                drop_caches()
            peer_times.append(timed(["virt-inspector", "--format=vpc", "-a", str(image)],
                                    {"LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}, ok=(0,),
                                    expect=b"<operatingsystem>"))

    med = statistics.median
    print(f"| measure | {'cold' if args.cold else 'warm'} cache |\n|---|---|")
    print(f"| `vmimage check` in-process, median of {args.rounds} | {med(lib_times):.3f} s |")
    print(f"| `vmimage check` CLI (with interpreter start), median of {args.rounds} "
          f"| {med(cli_times):.3f} s |")
    print(f"| image bytes read by vmimage | {max(read) / 2**20:.2f} MiB "
          f"({len(report.findings)} findings) |")
    if peer_times:
        print(f"| `virt-inspector` (TCG appliance), median of {args.peer_rounds} "
              f"| {med(peer_times):.1f} s |")
        print(f"| ratio virt-inspector / vmimage CLI | {med(peer_times) / med(cli_times):.0f}x |")
    else:
        print("| virt-inspector | not installed |")


if __name__ == "__main__":
    main()
