"""The KVM-or-TCG decision and the firmware decision, as pure functions of what the system
and the disk say (no VM is started)."""

from __future__ import annotations

import pytest

from vmimage.vm.accel import choose
from vmimage.vm.disk import firmware_for

INTEL = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx ept\n"
AMD = "processor\t: 0\nflags\t\t: fpu vme de svm npt\n"
NONE = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae hypervisor\n"


@pytest.mark.parametrize(("cpuinfo", "writable", "pvm", "name", "why"), [
    (INTEL, True, False, "kvm", "works"),
    (AMD, True, False, "kvm", "works"),
    (INTEL, True, True, "tcg", "kvm_pvm"),  # this project's machines: /dev/kvm lies
    (NONE, True, False, "tcg", "no vmx or svm"),
    (INTEL, False, False, "tcg", "not writable"),
    ("", False, True, "tcg", "not writable"),
])
def test_accel_decision(cpuinfo, writable, pvm, name, why):
    accel = choose(cpuinfo, writable, pvm)
    assert accel.name == name
    assert why in accel.reason
    assert accel.args() == (["-accel", "kvm", "-cpu", "host"] if name == "kvm"
                            else ["-accel", "tcg", "-cpu", "qemu64"])


def test_vmx_in_another_field_is_not_a_flag():
    assert choose("model name\t: vmx svm emulator\nflags\t: fpu\n", True, False).name == "tcg"


@pytest.mark.parametrize(("scheme", "types", "firmware"), [
    ("mbr", ["linux"], "bios"),
    ("gpt", ["bios-boot", "efi", "linux"], "bios"),
    ("gpt", ["bios-boot", "linux"], "bios"),
    ("gpt", ["efi", "linux"], "uefi"),
])
def test_firmware_decision(scheme, types, firmware):
    assert firmware_for(scheme, types) == firmware


@pytest.mark.parametrize(("scheme", "types"), [("gpt", ["linux"]), ("none", [])])
def test_nothing_to_boot(scheme, types):
    with pytest.raises(ValueError, match="boot loader"):
        firmware_for(scheme, types)
