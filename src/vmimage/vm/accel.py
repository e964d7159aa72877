"""KVM only where it truly works, TCG otherwise.

``/dev/kvm`` existing proves little: on the machines this project runs on it is ``kvm_pvm``,
a software nested hypervisor. QEMU reports KVM enabled, yet a stock Debian kernel never boots
(``-cpu host`` aborts on MSR 0x10a, other CPU models end in "KVM internal error ... emulation
failure"), and ``-accel kvm -accel tcg`` does not fall back. So KVM is used only when
``/dev/kvm`` is writable, the CPU flags show hardware virtualization (``vmx`` or ``svm``) and
``kvm_pvm`` is not loaded; otherwise TCG with ``-cpu qemu64``, which boots everything, slowly
(a Debian image reaches SSH in about 20-25 s here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Accel:
    """The accelerator chosen, the CPU model that goes with it, and why."""

    name: str  # "kvm" or "tcg"
    cpu: str  # "host" with KVM, "qemu64" with TCG
    reason: str

    def args(self) -> list[str]:
        """qemu's arguments for this choice."""
        return ["-accel", self.name, "-cpu", self.cpu]


def choose(cpuinfo: str, kvm_writable: bool, pvm_loaded: bool) -> Accel:
    """The decision alone, from what the system says (a pure function, tested as such).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo``.
        kvm_writable: ``/dev/kvm`` exists and can be opened for writing.
        pvm_loaded: ``/sys/module/kvm_pvm`` exists.
    """
    if not kvm_writable:
        return Accel("tcg", "qemu64", "/dev/kvm is missing or not writable")
    if pvm_loaded:
        return Accel("tcg", "qemu64", "/dev/kvm is kvm_pvm, which cannot boot a stock kernel")
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    if not flags & {"vmx", "svm"}:
        return Accel("tcg", "qemu64", "the CPU shows no vmx or svm flag")
    return Accel("kvm", "host", "/dev/kvm works (vmx/svm, no kvm_pvm)")


def detect() -> Accel:
    """:func:`choose` on this machine."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    writable = os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)
    return choose(cpuinfo, writable, Path("/sys/module/kvm_pvm").exists())


