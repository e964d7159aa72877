#!/usr/bin/env python3
"""LINUX-SECURITY-PATCHES' comparison against apt itself, on the compliant Debian tree.

    python3 bench/bench_secdata.py [--rounds 10]

Both compare the tree's installed packages with the ``bookworm-security`` index of the mirror
its sources name, with the index already cached (vmimage: its cache directory; apt: its
lists, after one ``apt-get update``): vmimage's verdict (``vmimage.secdata.verdict``: read the
release file from the cache, verify its signature with gpgv, read the parsed index, compare
every package) beside ``apt list --upgradable`` over the tree (``-o Dir=TREE``, the security
suite only). And the whole command, ``vmimage check TREE --check LINUX-SECURITY-PATCHES``.
Prints a Markdown section for docs/benchmarks.md. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import imagebuild as ib

from vmimage.facts import Facts
from vmimage.secdata import verdict
from vmimage.secdata.fetch import CachedWeb
from vmimage.targets.open import open_target


def _apt_options(tree: Path, sources: Path) -> list[str]:
    return ["-o", f"Dir={tree}", "-o", f"Dir::State::status={tree}/var/lib/dpkg/status",
            "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", "APT::Sandbox::User=root"]


def _timed(fn: object, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    tree = ib.clone_tree()
    work = Path(tempfile.mkdtemp(prefix="bench-secdata-"))
    try:
        sources = work / "security.list"
        sources.write_text("deb http://deb.debian.org/debian-security bookworm-security main\n")
        for path in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
            (tree / path).mkdir(parents=True, exist_ok=True)
        options = _apt_options(tree, sources)
        subprocess.run(["apt-get", "-qq", *options, "update"], check=True)
        cache = CachedWeb(work / "security-data")
        facts = Facts(open_target(str(tree)))
        first = verdict(facts, cache)  # fills the cache

        def ours() -> None:
            verdict(Facts(open_target(str(tree))), CachedWeb(work / "security-data"))

        def apt() -> None:
            subprocess.run(["apt", "list", "--upgradable", *options], capture_output=True,
                           check=True)

        def command() -> None:
            subprocess.run([sys.executable, "-m", "vmimage", "check", str(tree), "--check",
                            "LINUX-SECURITY-PATCHES", "--security-data", "auto"],
                           capture_output=True, check=False,
                           env={"VMIMAGE_CACHE": str(work), "PATH": "/usr/bin:/bin"})

        results = {"vmimage's comparison (in process)": _timed(ours, args.rounds),
                   "`apt list --upgradable` over the tree": _timed(apt, args.rounds),
                   "`vmimage check TREE --check LINUX-SECURITY-PATCHES` (whole command)":
                       _timed(command, args.rounds)}
    finally:
        shutil.rmtree(tree.parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    ours_median = statistics.median(results["vmimage's comparison (in process)"])
    apt_median = statistics.median(results["`apt list --upgradable` over the tree"])
    print("## Security patches offline (issue 16)\n")
    print(f"`python3 bench/bench_secdata.py --rounds {args.rounds}`: the compliant Debian 12 "
          f"tree ({first.compared} installed packages) against bookworm-security "
          f"({first.date}), the index cached.\n")
    print("| what | median | min | max |")
    print("|---|---:|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} ms | "
              f"{min(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")
    print(f"\nvmimage / apt: {ours_median / apt_median:.2f}× the time.")


if __name__ == "__main__":
    main()
