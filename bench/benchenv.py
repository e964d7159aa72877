"""What a benchmark ran on: the machine, its load and the filesystem of the files timed.

Every bench script records it beside its numbers, so a ratio can be read with its context
(2 CPUs under load make another result than 16 idle ones).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path


def machine(directory: Path) -> dict[str, str]:
    """CPUs, RAM, the filesystem holding ``directory``, kernel, Python, load, date."""
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(directory)],
                        capture_output=True, text=True, check=False).stdout.split()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), platform.processor())
    return {"cpus": f"{os.cpu_count()} ({cpu})", "ram": f"{mem_kb / 1024**2:.1f} GiB",
            "filesystem": f"{' on '.join(fs)} (at {directory})", "kernel": platform.release(),
            "python": platform.python_version(),
            "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def one_line(info: dict[str, str]) -> str:
    """The machine as one sentence for a report."""
    return ", ".join(f"{k} {v}" for k, v in info.items())
