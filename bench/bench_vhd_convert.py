#!/usr/bin/env python3
"""Benchmark: to a fixed VHD, vmimage against qemu-img, with ``cp`` as the physical floor.

A 30 GiB sparse raw image holding 1 GiB of random data in a few extents is converted, in
several rounds and side by side (the tools take turns inside each round), by:

- ``vmimage`` in-process (``vmimage.disk.convert.convert``) and through its CLI;
- ``qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on``;
- ``vmimage vhd convert --in-place`` on a sparse copy (the copy is made outside the timing);
- ``cp --sparse=always``: copying the data at all costs at least this much.

With ``--input dynamic`` the same disk is first made a dynamic VHD by qemu-img (untimed), and
vmimage and qemu-img convert that instead: vmimage's other path, which walks its own BAT,
reads the runs of present sectors and writes only their non-zero 4 KiB blocks (stored zeros
become holes, as qemu-img makes them).

Every tool is timed twice: "page cache", the command alone, and "durable", the command plus an
``fdatasync`` of its output, so that the data is on disk. None of the tools flushes the data
by itself (measured with strace: qemu-img's only ``fdatasync`` is on the empty image it
creates first).

Page cache: "warm" (default) reads the input once before the rounds, so every run reads it
from memory; between runs the output is deleted and ``sync`` settles dirty pages, so no run
pays for the previous one's writeback. "drop" empties the page cache before every run
(``/proc/sys/vm/drop_caches``), so the input is read from the disk.

Run:  python3 bench/bench_vhd_convert.py [--rounds 9] [--dir /tmp] [--cache warm|drop]
                                         [--input raw|dynamic] [--check]
It prints a Markdown section for docs/benchmarks.md. This is not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import benchenv

from vmimage.disk.convert import convert, convert_in_place

GiB, MiB = 1024**3, 1024**2
MODES = ("cache", "durable")
VMIMAGE = str(Path(sys.executable).with_name("vmimage"))
if not Path(VMIMAGE).exists():
    VMIMAGE = shutil.which("vmimage") or "vmimage"


@dataclass
class Tool:
    """One contender: how to turn ``src`` into ``out``."""

    name: str
    run: Callable[[Path, Path], object]
    prepare: Callable[[Path, Path], None] | None = None  # untimed, e.g. copy for --in-place
    out_format: str = "vpc"  # for qemu-img compare (--check)
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    allocated: int = 0
    size: int = 0


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def fdatasync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def build_input(path: Path, size: int, data: int, extents: int, seed: int) -> None:
    """``extents`` runs of random bytes, ``data`` bytes in all, spread over ``size``."""
    rnd = random.Random(seed)
    each = data // extents
    slot = size // extents
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for i in range(extents):
            start = i * slot + rnd.randrange(0, slot - each) // 4096 * 4096 + 512 * (i % 3)
            for pos in range(0, each, 64 * MiB):
                os.pwrite(fd, rnd.randbytes(min(64 * MiB, each - pos)), start + pos)
        os.fsync(fd)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    """Read the data once so later runs read from the page cache."""
    sh("cp", "--sparse=always", str(path), str(path) + ".warm")
    os.unlink(str(path) + ".warm")


def drop_caches() -> None:
    sh("sync")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def tools(input_format: str) -> list[Tool]:
    qemu = ["qemu-img", "convert", "-f", input_format, "-O", "vpc", "-o",
            "subformat=fixed,force_size=on"]

    def copy_for_in_place(src: Path, out: Path) -> None:
        sh("cp", "--sparse=always", str(src), str(out))
        sh("sync")

    contenders = [
        Tool("vmimage (library)", convert),
        Tool("vmimage vhd convert (CLI)",
             lambda s, o: sh(VMIMAGE, "vhd", "convert", str(s), str(o))),
        Tool("qemu-img convert", lambda s, o: sh(*qemu, str(s), str(o))),
    ]
    if input_format == "raw":
        contenders += [
            Tool("cp --sparse=always (floor)",
                 lambda s, o: sh("cp", "--sparse=always", str(s), str(o)), out_format="raw"),
            Tool("vmimage --in-place (library)", lambda s, o: convert_in_place(o),
                 prepare=copy_for_in_place),
            Tool("vmimage vhd convert --in-place (CLI)",
                 lambda s, o: sh(VMIMAGE, "vhd", "convert", "--in-place", str(o)),
                 prepare=copy_for_in_place),
        ]
    return contenders


def measure(tool: Tool, mode: str, src: Path, out: Path, cold: bool) -> None:
    """One timed run; "durable" includes flushing the output to disk."""
    if tool.prepare:
        tool.prepare(src, out)
    if cold:
        drop_caches()
    start = time.perf_counter()
    tool.run(src, out)
    if mode == "durable":
        fdatasync(out)
    tool.times[mode].append(time.perf_counter() - start)
    tool.allocated, tool.size = os.stat(out).st_blocks * 512, out.stat().st_size


def machine(directory: Path) -> dict[str, str]:
    """The machine (benchenv) and the peer's version."""
    qemu = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True,
                          check=False).stdout.splitlines()[0]
    return {**benchenv.machine(directory), "qemu-img": qemu.removeprefix("qemu-img ")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--size", type=int, default=30, help="virtual size, GiB")
    ap.add_argument("--data", type=int, default=1024, help="data, MiB")
    ap.add_argument("--extents", type=int, default=6)
    ap.add_argument("--cache", choices=("warm", "drop"), default="warm")
    ap.add_argument("--input", choices=("raw", "dynamic"), default="raw")
    ap.add_argument("--check", action="store_true",
                    help="qemu-img compare every tool's output with the input once (untimed)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vmimage-bench-", dir=args.dir))
    raw, out = work / "in.raw", work / "out.img"  # .img: --in-place refuses a raw .vhd
    try:
        t0 = time.perf_counter()
        build_input(raw, args.size * GiB, args.data * MiB, args.extents, seed=1)
        src, fmt = raw, "raw"
        if args.input == "dynamic":
            src, fmt = work / "in.vhd", "vpc"
            sh("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
               "subformat=dynamic,force_size=on", str(raw), str(src))
            raw.unlink()
            sh("sync")
        print(f"built {src} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        input_alloc = os.stat(src).st_blocks * 512
        contenders = tools(fmt)
        checked: set[str] = set()
        if args.cache == "warm":
            warm(src)
        for rnd in range(args.rounds):
            for mode in MODES:
                for tool in contenders:
                    measure(tool, mode, src, out, args.cache == "drop")
                    if args.check and tool.name not in checked:
                        sh("qemu-img", "compare", "-f", fmt, "-F", tool.out_format, str(src),
                           str(out))
                        checked.add(tool.name)
                    out.unlink()
                    sh("sync")
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
        report(args, contenders, input_alloc, machine(args.dir))
    finally:
        shutil.rmtree(work)


def report(args: argparse.Namespace, contenders: list[Tool], input_alloc: int,
           info: dict[str, str]) -> None:
    qemu = next(t for t in contenders if t.name == "qemu-img convert")
    print(f"Command: `python3 {' '.join(sys.argv)}`  \n"
          f"Input: {args.size} GiB, {args.data} MiB of random data in {args.extents} extents, "
          f"as a {'sparse raw file' if args.input == 'raw' else 'dynamic VHD (qemu-img)'} "
          f"({input_alloc / MiB:.0f} MiB allocated); page cache: {args.cache}; "
          f"{args.rounds} rounds; wall time, ratio of medians.\n")
    print("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + "\n")
    print("| tool | page cache, s: median (min) | vs qemu-img | durable, s: median (min) "
          "| vs qemu-img | output allocated | output length |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool in contenders:
        cells = []
        for mode in MODES:
            mid, ref = statistics.median(tool.times[mode]), statistics.median(qemu.times[mode])
            cells += [f"{mid:.3f} ({min(tool.times[mode]):.3f})", f"{mid / ref:.2f}"]
        print(f"| {tool.name} | {' | '.join(cells)} | {tool.allocated / MiB:.0f} MiB "
              f"| {tool.size} |")


if __name__ == "__main__":
    main()
