"""Disk-format rules: fixed VHD, valid footer, whole MiB, length, role size, sparseness.

These read only the disk's metadata (``ctx.disk``), so ``vmimage vhd validate`` runs them on
any file in milliseconds and ``vmimage check`` runs them on the OS disk first.
"""

from __future__ import annotations

from vmimage.checks.context import CheckContext
from vmimage.disk.inspect import VHD_FIXED, DiskInfo
from vmimage.disk.vhd import FOOTER_SIZE
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.units import MiB, format_size

_ALL_DISKS = ("LNX-OS-SIZE", "WIN-OS-SIZE", "DSK-DATA", "WIN-DATA")


def _disk(ctx: CheckContext) -> DiskInfo:
    assert ctx.disk is not None  # guaranteed by needs=("disk",)
    return ctx.disk


@rule(subject="disk",
       id="VHD-FIXED-FORMAT", title="The disk is a fixed-format VHD", severity=Severity.FAIL,
       covers=_ALL_DISKS, os="any",
       remediation="Convert it: vmimage vhd convert IN OUT.vhd (Azure accepts only fixed VHDs; "
                   "VHDX, dynamic VHDs, qcow2 and VMDK are refused).")
def fixed_format(ctx: CheckContext) -> Outcome:
    """Azure reads only fixed VHDs; anything else is refused at upload or provisioning."""
    disk = _disk(ctx)
    ev = Evidence(path=disk.path, seen=disk.format_name, required="fixed VHD")
    if disk.format == VHD_FIXED:
        return passed("fixed VHD", ev)
    return violated(f"the disk is a {disk.format_name}, not a fixed VHD", ev)


@rule(subject="disk",
       id="VHD-FOOTER-VALID", title="The VHD footer follows the specification",
       severity=Severity.FAIL, covers=_ALL_DISKS, os="any",
       remediation="Rewrite the footer: vmimage vhd convert IN OUT.vhd makes a clean one.")
def footer_valid(ctx: CheckContext) -> Outcome:
    """A footer Azure refuses (wrong cookie, features or version fields) fails certification."""
    disk = _disk(ctx)
    if disk.footer is None:
        return violated("the disk has no VHD footer", Evidence(path=disk.path,
                                                               seen=disk.format_name))
    problems = disk.footer.problems()
    if problems:
        return violated("; ".join(problems), Evidence(path=disk.path, seen=problems[0]))
    return passed("footer cookie, checksum, version and type are valid",
                  Evidence(path=disk.path, seen=f"checksum 0x{disk.footer.checksum:08x}"))


@rule(subject="disk",
       id="VHD-WHOLE-MIB", title="The virtual size is a whole number of MiB",
       severity=Severity.FAIL, covers=_ALL_DISKS, os="any",
       remediation="Resize to the next MiB: vmimage vhd resize FILE --size N (or convert again, "
                   "which rounds up).")
def whole_mib(ctx: CheckContext) -> Outcome:
    """Azure refuses 'an unsupported virtual size ... must be a whole number (in MBs)'."""
    disk = _disk(ctx)
    ev = Evidence(path=disk.path, seen=f"{disk.virtual_size} bytes",
                  required="a multiple of 1048576 bytes")
    if disk.whole_mib:
        return passed(f"{format_size(disk.virtual_size)} is a whole number of MiB", ev)
    return violated(f"virtual size {disk.virtual_size} is {disk.virtual_size % MiB} bytes past "
                    "a whole MiB", ev)


@rule(subject="disk",
       id="VHD-FILE-LENGTH", title="The file length is the virtual size plus the 512-byte footer",
       severity=Severity.FAIL, covers=_ALL_DISKS, os="any",
       remediation="Convert the disk again with vmimage vhd convert; a page blob's length must "
                   "be exactly the virtual size + 512.")
def file_length(ctx: CheckContext) -> Outcome:
    """The blob Azure reads is the file: its last 512 bytes must be the footer."""
    disk = _disk(ctx)
    expected = disk.virtual_size + FOOTER_SIZE
    ev = Evidence(path=disk.path, seen=str(disk.file_size), required=str(expected))
    if disk.format == VHD_FIXED and disk.file_size == expected:
        return passed(f"{disk.file_size} bytes = virtual size + 512", ev)
    return violated(f"file length {disk.file_size} is not virtual size + 512 ({expected})", ev)


@rule(subject="disk",
       id="VHD-ROLE-SIZE", title="The disk size is within the bounds for its role",
       severity=Severity.FAIL, covers=_ALL_DISKS, os="any",
       remediation="Resize the disk into the profile's bounds (vmimage vhd resize); a Linux OS "
                   "disk under 30 GiB is refused by the 2015 rules.")
def role_size(ctx: CheckContext) -> Outcome:
    """Each role has its own bounds per profile (rulings: sizes are binary, 1 TB = 1023 GiB)."""
    disk = _disk(ctx)
    bounds = ctx.profile.roles[ctx.role]
    size = disk.virtual_size
    limits = f"at least {format_size(bounds.min)}"
    if bounds.max is not None:
        limits += f" and at most {format_size(bounds.max)}"
    ev = Evidence(path=disk.path, seen=format_size(size), required=limits)
    covers = ", ".join(bounds.covers)
    if size < bounds.min or (bounds.max is not None and size > bounds.max):
        return violated(f"{ctx.role} disk of {format_size(size)} is outside {limits} "
                        f"({ctx.profile.name}, {covers})", ev)
    if bounds.warn_above is not None and size > bounds.warn_above:
        return violated(f"{ctx.role} disk of {format_size(size)} is above "
                        f"{format_size(bounds.warn_above)}: accepted only case by case "
                        f"({covers})", ev, severity=Severity.WARNING)
    return passed(f"{ctx.role} disk of {format_size(size)} is within {limits}", ev)


@rule(subject="disk",
       id="VHD-SPARSE", title="The VHD file is sparse", severity=Severity.WARNING,
       covers=_ALL_DISKS, os="any",
       remediation="Make a sparse copy: vmimage vhd convert IN OUT.vhd writes only the data, or "
                   "run fallocate --dig-holes FILE.")
def sparse(ctx: CheckContext) -> Outcome:
    """The guide asks for a sparse file when the data is smaller than the disk: uploads and
    copies of a fully allocated 30 GiB file move 30 GiB.

    What is allocated is measured against the virtual disk, not the file's length: a dynamic
    VHD (or VHDX, qcow2, VMDK) stores only its written blocks, so its file is always "full" of
    itself; a 260 KiB dynamic VHD of a 64 MiB disk is as sparse as files get. For a raw file or
    a fixed VHD the two measures are the same (the length is the virtual size, + 512).
    """
    disk = _disk(ctx)
    ev = Evidence(path=disk.path, seen=f"{format_size(disk.allocated)} allocated for a "
                                       f"{format_size(disk.virtual_size)} disk")
    if disk.allocated < disk.virtual_size * 0.9:
        return passed("the file is sparse", ev)
    return violated("the file is fully allocated; unless the disk is full of data, a sparse "
                    "copy uploads and copies faster", ev)
