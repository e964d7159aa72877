"""OS-disk layout rules: the first MiB, LVM, a single root partition."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import BOOT_HELPERS, disk_name, layout_of, where
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule


@rule(id="LINUX-FIRST-MIB-EMPTY", title="The first MiB of the OS disk holds nothing but the "
       "partition table", severity=Severity.FAIL, covers=("CUR-FIRST-MIB",),
       needs=("disk",),
       remediation="Start the first partition at sector 2048 and keep sectors 1-2047 zeroed "
                   "(GRUB for BIOS belongs in a BIOS-boot partition on GPT, not the MBR gap); "
                   "Azure writes its billing and boot metadata there.")
def first_mib_empty(ctx: CheckContext) -> Iterator[Outcome]:
    """Azure writes metadata into LBA 1-2047 of images without a billing tag (rulings)."""
    layout = layout_of(ctx)
    name = disk_name(ctx)
    bad = False
    early = [p for p in layout.partitions if p.scheme in ("mbr", "gpt") and p.start < 1048576]
    for part in early:
        bad = True
        yield violated(f"partition {where(part)} starts before sector 2048",
                       Evidence(path=name, seen=f"start sector {part.start // 512}",
                                required="start sector >= 2048"))
    for start, end in layout.first_mib_data:
        bad = True
        yield violated(f"bytes {start}-{end - 1} (sectors {start // 512}-{(end - 1) // 512}) of "
                       "the first MiB hold data outside the MBR and GPT",
                       Evidence(path=name, seen=f"non-zero data at offset {start}",
                                required="zeros in sectors 1-2047 outside the GPT"))
    if not bad:
        yield passed("the first MiB holds only the partition table",
                     Evidence(path=name, seen=f"{layout.scheme} partition table"))


@rule(id="LINUX-NO-LVM", title="The OS disk does not use LVM", severity=Severity.FAIL,
       covers=("LNX-LVM",), needs=("disk",),
       remediation="Rebuild the image with plain partitions: Azure's recovery and resize "
                   "tooling, and the guide, expect no Logical Volume Manager on the OS disk.")
def no_lvm(ctx: CheckContext) -> Outcome:
    """The guide: 'Logical Volume Manager is not used'."""
    layout = layout_of(ctx)
    pvs = [p for p in layout.partitions if p.fs_type == "LVM2_member" or p.type_name == "lvm"]
    lvs = [p for p in layout.partitions if p.scheme == "lvm"]
    if pvs or lvs:
        names = ", ".join(where(p) for p in pvs + lvs)
        return violated(f"LVM in use: {names}",
                        Evidence(path=disk_name(ctx), seen=names, required="no LVM"))
    return passed("no LVM physical volume on the OS disk", Evidence(path=disk_name(ctx)))


@rule(id="LINUX-SINGLE-ROOT-PARTITION", title="The OS disk has a single root partition",
       severity=Severity.WARNING, covers=("LNX-ROOT-PART", "MS-42"), needs=("disk",),
       remediation="Keep the whole system in one root partition (a separate /boot, an EFI "
                   "system partition and a BIOS-boot partition are fine); put data on data disks.")
def single_root(ctx: CheckContext) -> Outcome:
    """Microsoft's test 42 counts root partitions; other data partitions split the OS disk."""
    layout = layout_of(ctx)
    name = disk_name(ctx)
    fs_parts = [p for p in layout.partitions
                if p.type_name not in BOOT_HELPERS and p.fs_type not in ("swap", "LVM2_member")
                and p.type_name != "extended"]
    roots = [p for p in fs_parts if p.mountpoint == "/"]
    others = [p for p in fs_parts if p.mountpoint not in ("/", "/boot")]
    if len(roots) != 1:
        return violated(f"{len(roots)} root partitions found",
                        Evidence(path=name, seen=f"Root Partition: {len(roots)}", required="1"))
    if others:
        listed = ", ".join(where(p) for p in others)
        return violated(f"besides the root partition the OS disk holds {listed}",
                        Evidence(path=name, seen=listed, required="only / (and /boot)"))
    return passed(f"one root partition: {where(roots[0])}",
                  Evidence(path=name, seen="Root Partition: 1", required="1"))
