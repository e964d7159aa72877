"""Benchmark: deploying the image as Azure would (``vm boot --provision``), beside a plain
boot with the key written into a copy (``vm boot --key``), and the cloud-init image (Debian's
cloud-init 22.4.2 provisions it, waagent hands over), one after the other per round.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_provision.py [--rounds 3]

The test suite's bootable compliant Debian 12 image (Debian's waagent 2.7.3), TCG here. For
provisioning, the times are from the start of ``vm boot`` to the agent's Ready report and to
the provisioned user's first SSH login (the verdict's own clock), and the whole command. No
peer provisions an image locally (peers.md): the plain boot is the baseline, so the ratio says
what provisioning costs on top of a boot. Prints a Markdown table for docs/benchmarks.md. Run
by hand, as root; never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchenv
from tests import bootimage


def _boot(vmimage: str, image: Path, env: dict[str, str], *extra: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([vmimage, "vm", "boot", str(image), "--name", "bench", "--format",
                           "json", *extra], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    subprocess.run([vmimage, "vm", "stop", "bench"], env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"vm boot {' '.join(extra)} failed: {proc.stdout[-3000:]}"
                         f"{proc.stderr[-2000:]}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    vmimage = str(Path(sys.executable).with_name("vmimage"))
    image = bootimage.bootable_disk("normal").path
    ci_image = bootimage.bootable_disk("cloud-init").path
    plain, whole, ready, login = [], [], [], []
    ci_whole, ci_ready, ci_login = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "VMIMAGE_STATE_DIR": str(work / "state")}
        key = work / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        for _ in range(args.rounds):
            plain.append(_boot(vmimage, image, env, "--key", f"{key}.pub")[0])
            elapsed, info = _boot(vmimage, image, env, "--provision", "--key", f"{key}.pub")
            verdict = info["provisioning"]
            whole.append(elapsed)
            ready.append(float(verdict["seconds_ready"]))
            login.append(float(verdict["seconds_login"]))
            elapsed, info = _boot(vmimage, ci_image, env, "--provision", "--key", f"{key}.pub")
            verdict = info["provisioning"]
            ci_whole.append(elapsed)
            ci_ready.append(float(verdict["seconds_ready"]))
            ci_login.append(float(verdict["seconds_login"]))
        info_line = benchenv.one_line(benchenv.machine(work))

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f})"

    base = statistics.median(plain)
    print(f"Command: `env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_provision.py "
          f"--rounds {args.rounds}`  ")
    print("Image: the test suite's bootable compliant Debian 12 with Debian's waagent 2.7.3 "
          "(tests.bootimage), TCG; whole processes, wall time.  ")
    print(f"Machine: {info_line}\n")
    print("| step | median (min), s | × plain boot |")
    print("|---|---:|---:|")
    print(f"| `vm boot IMAGE --key K` (key written into a copy; to SSH ready) | {cell(plain)} "
          "| 1.00 |")
    print(f"| `vm boot --provision`: the agent's Ready report | {cell(ready)} | "
          f"{statistics.median(ready) / base:.2f} |")
    print(f"| `vm boot --provision`: the provisioned user's first login | {cell(login)} | "
          f"{statistics.median(login) / base:.2f} |")
    print(f"| `vm boot --provision`, the whole command | {cell(whole)} | "
          f"{statistics.median(whole) / base:.2f} |")
    for what, values in (("cloud-init's Ready report", ci_ready),
                         ("the provisioned user's first login", ci_login),
                         ("the whole command", ci_whole)):
        print(f"| `vm boot --provision` of the cloud-init image: {what} | {cell(values)} | "
              f"{statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
