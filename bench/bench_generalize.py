#!/usr/bin/env python3
"""Benchmark: ``vmimage generalize`` side by side with its two peers, on one dirty build VM.

The tree is the build-VM tree of ``tests/test_generalize_waagent.py`` (the cached Debian 12
test root with the agent, a build user, host keys, leases, logs, caches ...). In each round,
on fresh copies made outside the timing (reflinks in the test store):

(a) ``vmimage generalize COPY --yes --user builder`` against the real
    ``waagent -force -deprovision+user`` (Debian's 2.7.3.0) run in a chroot of another copy
    (``unshare`` with private mount, UTS and network namespaces, /proc, /sys and /dev
    mounted, as the test runs it); the cost of entering such a chroot (``true``) is measured
    too, as the peer's floor.
(b) ``vmimage generalize IMAGE --yes --user builder`` on a 30 GiB fixed VHD of the same tree
    (MBR, ext4 root at 1 MiB, built as ``tests/imagebuild.py`` builds the compliant disk:
    ``build_disk`` then ``to_vhd(method="vmimage")``). Skipped, with the reason, when
    ``vmimage generalize`` refuses an image file.
(c) ``virt-sysprep`` (libguestfs, TCG appliance, ``LIBGUESTFS_BACKEND=direct``) on the raw
    image of the same tree, its default operations plus ``user-account`` for the build user,
    in ``--peer-rounds`` rounds. libguestfs-tools is installed with apt when missing.

Every command must succeed, and each is checked to have done its work (the build user's home
gone), so a peer that fails fast cannot pass for a fast one.

Run as root:  env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_generalize.py
                  [--rounds 5] [--peer-rounds 2] [--no-sysprep]
It prints a Markdown section for docs/benchmarks.md. This is not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import imagebuild as ib
from tests import test_generalize_waagent as oracle

USER = oracle.BUILD_USER
VMIMAGE = str(Path(sys.executable).with_name("vmimage"))
if not Path(VMIMAGE).exists():
    VMIMAGE = shutil.which("vmimage") or "vmimage"
SYSPREP_ENV = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}


@dataclass
class Contender:
    """One command timed on a fresh copy per round."""

    name: str
    command: str  # as shown in the table
    run: Callable[[Path], object]
    copy: Callable[[Path], Path]  # untimed: a fresh copy in the given directory
    done: Callable[[Path], bool]  # did it do its work?
    rounds: int
    times: list[float] = field(default_factory=list)
    skipped: str = ""


def sh(cmd: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """Run ``cmd``; fail the benchmark when its exit code is not in ``ok``."""
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, env={**os.environ, **(env or {})})
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: "
                         f"{(proc.stdout + proc.stderr)[-1500:]}")
    return proc.stdout


def ensure_sysprep() -> str | None:
    """virt-sysprep's version, installing libguestfs-tools (and a kernel for its appliance)
    with apt when missing; None when that fails."""
    if not shutil.which("virt-sysprep"):
        packages = ["libguestfs-tools"]
        if not list(Path("/boot").glob("vmlinuz-*")):
            packages.append("linux-image-amd64")
        print(f"installing {' '.join(packages)} ...", file=sys.stderr)
        proc = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y",
                               "--no-install-recommends", *packages], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, check=False,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode != 0 or not shutil.which("virt-sysprep"):
            print(f"apt-get failed: {proc.stderr[-500:]}", file=sys.stderr)
            return None
    out = subprocess.run(["virt-sysprep", "--version"], capture_output=True, text=True,
                         check=False).stdout.strip()
    return out or "virt-sysprep"


def home_gone_in_tree(tree: Path) -> bool:
    return not (tree / "home" / USER).exists()


def home_gone_in_image(image: Path, offset: int) -> bool:
    return not ib.exists(image, offset, f"/home/{USER}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peer-rounds", type=int, default=2, help="virt-sysprep rounds")
    ap.add_argument("--no-sysprep", action="store_true", help="leave out (c)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    tree = oracle.build_vm_tree()
    print(f"build-VM tree {tree} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    work = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="bench-generalize-"))
    try:
        t0 = time.perf_counter()
        disk = ib.build_disk(work / "buildvm.raw", tree)
        vhd = ib.to_vhd(disk, work / "buildvm.vhd", method="vmimage")
        offset = disk.layout.root.offset
        print(f"30 GiB raw and fixed VHD built in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        sysprep = None if args.no_sysprep else ensure_sysprep()
        contenders = make_contenders(args, tree, disk.path, vhd, offset, sysprep)
        probe_image(contenders, vhd, work)
        for rnd in range(max(c.rounds for c in contenders)):
            for c in contenders:
                if c.skipped or rnd >= c.rounds:
                    continue
                slot = work / f"r{rnd}-{len(c.times)}-{c.name.split()[0]}"
                slot.mkdir()
                target = c.copy(slot)
                start = time.perf_counter()
                c.run(target)
                c.times.append(time.perf_counter() - start)
                if not c.done(target):
                    raise SystemExit(f"{c.name}: ran, but {USER}'s home is still there")
                ib.run(["rm", "-rf", "--one-file-system", slot])
            print(f"round {rnd + 1} done", file=sys.stderr)
        report(args, contenders, tree, vhd, sysprep, benchenv.one_line(benchenv.machine(work)))
    finally:
        ib.run(["rm", "-rf", "--one-file-system", work], check=False)


def make_contenders(args: argparse.Namespace, tree: Path, raw: Path, vhd: Path, offset: int,
                    sysprep: str | None) -> list[Contender]:
    def tree_copy(slot: Path) -> Path:
        return oracle.clone(tree, slot / "root")

    def file_copy(src: Path) -> Callable[[Path], Path]:
        def copy(slot: Path) -> Path:
            ib.clone_file(src, slot / src.name)
            return slot / src.name
        return copy

    def waagent(target: Path) -> None:
        proc = oracle.run_waagent(target)
        if proc.returncode != 0:
            raise SystemExit(f"waagent exited {proc.returncode}: {proc.stdout}{proc.stderr}")

    def chroot_true(target: Path) -> None:
        proc = oracle.run_in_chroot(target, ["true"])
        if proc.returncode != 0:
            raise SystemExit(f"chroot true exited {proc.returncode}: {proc.stderr}")

    gen = [VMIMAGE, "generalize"]
    contenders = [
        Contender("vmimage generalize (tree)", f"vmimage generalize ROOT --yes --user {USER}",
                  lambda t: sh([*gen, str(t), "--yes", "--user", USER], ok=(0, 1)),
                  tree_copy, home_gone_in_tree, args.rounds),
        Contender("waagent in a chroot (tree)",
                  "unshare ... chroot ROOT waagent -force -deprovision+user",
                  waagent, tree_copy, home_gone_in_tree, args.rounds),
        Contender("entering the chroot alone (tree)", "unshare ... chroot ROOT true",
                  chroot_true, tree_copy, lambda t: True, args.rounds),
        Contender("vmimage generalize (30 GiB fixed VHD)",
                  f"vmimage generalize IMAGE.vhd --yes --user {USER}",
                  lambda t: sh([*gen, str(t), "--yes", "--user", USER], ok=(0, 1)),
                  file_copy(vhd), lambda t: home_gone_in_image(t, offset), args.rounds),
    ]
    if sysprep:
        cmd = ["virt-sysprep", "--format", "raw", "-a", "IMAGE.raw", "--operations",
               "defaults,user-account", "--remove-user-accounts", USER]
        contenders.append(Contender(
            "virt-sysprep (30 GiB raw)", " ".join(cmd),
            lambda t: sh([str(t) if a == "IMAGE.raw" else a for a in cmd], SYSPREP_ENV),
            file_copy(raw), lambda t: home_gone_in_image(t, offset), args.peer_rounds))
    return contenders


def probe_image(contenders: list[Contender], vhd: Path, work: Path) -> None:
    """Skip (b) when ``vmimage generalize`` refuses an image file (a dry run says so)."""
    probe = work / "probe.vhd"
    ib.clone_file(vhd, probe)
    proc = subprocess.run([VMIMAGE, "generalize", str(probe), "--dry-run"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)
    probe.unlink()
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        for c in contenders:
            if "VHD" in c.name:
                c.skipped = f"vmimage generalize refuses an image file: {reason}"
                print(f"skipping (b): {c.skipped}", file=sys.stderr)


def report(args: argparse.Namespace, contenders: list[Contender], tree: Path, vhd: Path,
           sysprep: str | None, info: str) -> None:
    med = statistics.median
    by_name = {c.name: c for c in contenders}
    agent = by_name["waagent in a chroot (tree)"]
    print(f"Command: `env -u PYTHONDONTWRITEBYTECODE {os.path.relpath(sys.executable)} "
          f"{' '.join(sys.argv)}`  \n"
          f"Tree: {tree.name} (waagent {oracle.waagent_version(tree)}); image: 30 GiB fixed "
          f"VHD and raw, MBR, ext4 root, {vhd.stat().st_blocks * 512 / 2**20:.0f} MiB "
          f"allocated; warm page cache; fresh reflink copies made outside the timing; "
          f"whole processes, wall time.\n")
    print(f"Machine: {info}" + (f"; {sysprep}" if sysprep else "") + "\n")
    print("| contender | command | rounds | median (min), s | × waagent |")
    print("|---|---|---:|---:|---:|")
    for c in contenders:
        if c.skipped:
            print(f"| {c.name} | `{c.command}` | 0 | skipped: {c.skipped} | |")
            continue
        ratio = med(c.times) / med(agent.times)
        print(f"| {c.name} | `{c.command}` | {len(c.times)} | {med(c.times):.3f} "
              f"({min(c.times):.3f}) | {ratio:.2f} |")


if __name__ == "__main__":
    main()
