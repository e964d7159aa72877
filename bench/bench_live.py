"""Benchmark: the live check of a booted VM, side by side with the way Microsoft's
certification tool tests a VM (one SSH session per test).

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_live.py [--rounds 3]

Boots the test suite's bootable compliant Debian 12 image with ``vmimage vm boot --key`` (TCG
here), then each round: ``vmimage check ssh://... --sudo`` as a whole process (one
connection, every rule), and the peer: the shell commands the certification tool's Linux
tests run (certification-research.md §1), each in its own ``ssh`` session, in turn. Prints a
Markdown table for docs/benchmarks.md. Run by hand, as root; never in the test suite.
"""

from __future__ import annotations

import argparse
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

#: One SSH session per test, as the certification tool runs them: the files and commands its
#: Linux test cases read (bash history, sshd keep-alive, agent, swap, kernel command line,
#: host keys, accounts, repositories, network configuration, packages...).
PEER_COMMANDS = [
    "cat /etc/os-release", "uname -m", "cat /proc/cmdline", "cat /boot/grub/grub.cfg",
    "cat /proc/swaps", "cat /etc/fstab", "sudo cat /etc/waagent.conf",
    "grep -i ClientAliveInterval /etc/ssh/sshd_config", "sudo sshd -T",
    "ls /etc/ssh/ssh_host_*", "sudo cat /etc/shadow", "cat /etc/passwd",
    "sudo sh -c 'cat /root/.bash_history /home/*/.bash_history'",
    "systemctl is-enabled walinuxagent.service", "systemctl is-enabled ssh.service",
    "dpkg-query -W walinuxagent openssl libc6 python3", "cat /etc/apt/sources.list",
    "ls /var/lib/dhcp", "cat /etc/network/interfaces", "cat /etc/hostname",
    "ls /etc/udev/rules.d", "sudo iptables -S", "cat /etc/resolv.conf", "cat /etc/machine-id",
]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - start, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    vmimage = str(Path(sys.executable).with_name("vmimage"))
    image = bootimage.bootable_disk("normal").path
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "VMIMAGE_STATE_DIR": str(work / "state")}
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(work / "key")], check=True)
        boot_s, out = timed([vmimage, "vm", "boot", str(image), "--key", str(work / "key.pub"),
                             "--name", "bench", "--format", "json"], env)
        import json

        try:
            record = json.loads(out[out.index("{"):])
        except ValueError:
            raise SystemExit(f"vm boot failed: {out[-2000:]}") from None
        port = int(record.get("port") or record["record"]["port"])
        ssh = ["ssh", "-q", "-i", str(work / "key"), "-p", str(port), "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={work}/kh",
               "azureuser@127.0.0.1"]
        ours, theirs = [], []
        try:
            for _ in range(args.rounds):
                elapsed, text = timed([vmimage, "check", f"ssh://azureuser@127.0.0.1:{port}",
                                       "--key", str(work / "key"), "--sudo",
                                       "--known-hosts", str(work / "kh2"),
                                       "--accept-new-host-key", "--format", "json"], env)
                if '"mode": "live"' not in text:
                    raise SystemExit(f"live check failed: {text[-2000:]}")
                ours.append(elapsed)
                start = time.perf_counter()
                for command in PEER_COMMANDS:
                    subprocess.run([*ssh, command], capture_output=True, check=False)
                theirs.append(time.perf_counter() - start)
        finally:
            subprocess.run([vmimage, "vm", "stop", "bench"], env=env, capture_output=True,
                           check=False)
        info = benchenv.one_line(benchenv.machine(work))
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"Command: `env -u PYTHONDONTWRITEBYTECODE .venv/bin/python bench/bench_live.py "
          f"--rounds {args.rounds}`  ")
    print("Image: the test suite's bootable compliant Debian 12 (tests.bootimage), booted by "
          "`vmimage vm boot --key` under TCG; whole processes, wall time.  ")
    print(f"Machine: {info}\n")
    print("| step | median (min), s | × vmimage |")
    print("|---|---:|---:|")
    print(f"| `vmimage vm boot IMAGE --key K` (to SSH ready) | {boot_s:.1f} | |")
    print(f"| `vmimage check ssh://... --sudo` (every rule, one connection) | "
          f"{med_ours:.2f} ({min(ours):.2f}) | 1.00 |")
    print(f"| {len(PEER_COMMANDS)} commands of the certification tool's tests, one `ssh` "
          f"session each | {med_theirs:.2f} ({min(theirs):.2f}) | "
          f"{med_theirs / med_ours:.2f} |")
    print(f"| boot + live check | {boot_s + med_ours:.1f} | |")


if __name__ == "__main__":
    main()
