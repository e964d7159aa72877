"""CLI start-up, the whole process, side by side with ``qemu-img --version`` (issue 9).

    env -u PYTHONDONTWRITEBYTECODE python3 bench/bench_startup.py [--vmimage PATH] [--rounds N]

Measures wall time of complete processes, as a user waits for them:

- ``vmimage --version``
- ``vmimage vhd convert --in-place RAW`` on a fresh 30 GiB sparse raw file (re-made before
  each round with ``truncate``; only the convert is timed)
- ``qemu-img --version``, the reference: a C program's start-up on this machine

Medians of ``--rounds`` after two warm-up runs (byte-code compiled, page cache warm). The
aim is 0.15 s for both vmimage commands. ``--vmimage`` defaults to ``.venv/bin/vmimage``
(the install scripts' virtual environment), else ``vmimage`` on PATH: measure the console
script a user runs, not ``python -m``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def _median(cmd: list[str], env: dict[str, str], rounds: int,
            before: list[str] | None = None) -> float:
    times = []
    for i in range(rounds + 2):
        if before:
            subprocess.run(before, check=True)
        t = _timed(cmd, env)
        if i >= 2:
            times.append(t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ROOT / ".venv/bin/vmimage"
    parser.add_argument("--vmimage", default=str(default) if default.exists()
                        else shutil.which("vmimage"))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    qemu = shutil.which("qemu-img")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "disk.raw"
        remake = ["sh", "-c", f"rm -f {raw} && truncate -s {30 * GiB} {raw}"]
        rows = [
            ("vmimage --version", _median([args.vmimage, "--version"], env, args.rounds)),
            ("vmimage vhd convert --in-place (30 GiB raw)",
             _median([args.vmimage, "vhd", "convert", "--in-place", str(raw)], env,
                     args.rounds, remake)),
        ]
        if qemu:
            rows.append(("qemu-img --version", _median([qemu, "--version"], env, args.rounds)))
    reference = rows[-1][1] if qemu else None
    print(f"{'command':48} {'median s':>9} {'x qemu-img':>11}")
    for name, seconds in rows:
        ratio = f"{seconds / reference:11.1f}" if reference else ""
        print(f"{name:48} {seconds:9.3f} {ratio}")
    print(f"({args.rounds} rounds after 2 warm-up runs; vmimage: {args.vmimage})")


if __name__ == "__main__":
    main()
