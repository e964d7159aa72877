"""Benchmark: `vmimage check` on a 127 GiB sparse Windows Server fixed VHD, side by side with
the best offline peer that runs here: ntfs-3g's `ntfscat` (through a read-only loop device at
the C: volume's offset) extracting the SYSTEM and SOFTWARE hives, and `hivexregedit --export`
reading the keys the checks read (product, image state, Remote Desktop).

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_windows.py [--rounds 9]

Prints a Markdown table for docs/benchmarks.md. Run by hand, as root; never in the test
suite. The peer reads far less than the checks judge (no tasks, drivers' versions, layout,
BitLocker): it is the floor of reading the same registry facts with other tools.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchenv
from tests import winimage as wi

KEYS = {"SOFTWARE": ["\\Microsoft\\Windows NT\\CurrentVersion",
                     "\\Microsoft\\Windows\\CurrentVersion\\Setup\\State"],
        "SYSTEM": ["\\ControlSet001\\Control\\Terminal Server", "\\Select"]}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.strip()[-300:]}")
    return elapsed, proc.stdout


def peer(image: Path, offset: int, size: int, work: Path) -> float:
    """losetup -r at the C: volume, ntfscat both hives, hivexregedit --export the keys."""
    start = time.perf_counter()
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit",
                           str(size), str(image)], capture_output=True, text=True,
                          check=True).stdout.strip()
    try:
        for hive, keys in KEYS.items():
            out = work / hive
            with out.open("wb") as fh:
                subprocess.run(["ntfscat", loop, f"Windows/System32/config/{hive}"],
                               stdout=fh, check=True)
            for key in keys:
                subprocess.run(["hivexregedit", "--export", str(out), key],
                               capture_output=True, check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--filler-keys", type=int, default=2000,
                    help="extra SOFTWARE keys (Classes, Microsoft): a real hive's fan-out")
    ap.add_argument("--padding-mib", type=int, default=64,
                    help="MiB of free hive bins added to SOFTWARE: a real hive's size")
    args = ap.parse_args()
    spec = wi.WinSpec(filler_keys=args.filler_keys, software_padding_mib=args.padding_mib)
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as tmp:
        work = Path(tmp)
        image = wi.build_windows(work / "windows.vhd", spec)
        c_drive = wi.plan(spec).part("os")
        hive_mib = len(wi._hive_bytes(spec)["SOFTWARE"]) / 2**20
        vmimage = str(Path(sys.executable).with_name("vmimage"))
        ours, theirs, read = [], [], 0
        for _ in range(args.rounds):
            elapsed, out = timed([vmimage, "check", str(image), "--role", "os-windows",
                                  "--format", "json"])
            ours.append(elapsed)
            report = json.loads(out)
            read = report.get("bytes_read") or 0
            assert report["summary"]["verdict"] == "pass", report["summary"]
            theirs.append(peer(image, c_drive.start, c_drive.size, work))
        info = benchenv.one_line(benchenv.machine(work))
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"Command: `env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_windows.py "
          f"--rounds {args.rounds} --filler-keys {args.filler_keys} --padding-mib "
          f"{args.padding_mib}`  ")
    print(f"Image: {spec.product_name}, Gen{spec.generation}, 127 GiB sparse fixed VHD "
          f"(tests.winimage), SOFTWARE hive {hive_mib:.0f} MiB with {args.filler_keys} "
          f"extra keys; warm page cache; whole processes, wall time.  ")
    print(f"Machine: {info}\n")
    print("| contender | median (min), s | read | × vmimage |")
    print("|---|---:|---:|---:|")
    print(f"| `vmimage check IMAGE.vhd --role os-windows` (every Windows and disk rule) | "
          f"{med_ours:.3f} ({min(ours):.3f}) | {read / 2**20:.1f} MiB | 1.00 |")
    print(f"| `losetup -r` + `ntfscat` SYSTEM, SOFTWARE + `hivexregedit --export` 4 keys | "
          f"{med_theirs:.3f} ({min(theirs):.3f}) | 2 whole hives | "
          f"{med_theirs / med_ours:.2f} |")


if __name__ == "__main__":
    main()
