"""Declared versus found: the size, OS family and boot type of each local disk file.

These rules open disk files (through :mod:`vmimage.offer.probe`), so they say ``skip`` when
the manifest names no local file, or when the caller chose not to open disks.
"""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.findings import Outcome, Severity, skipped
from vmimage.offer.keys import dotted
from vmimage.offer.rules.context import DiskRef, OfferContext
from vmimage.profiles import RoleSize
from vmimage.rules import rule
from vmimage.units import format_size

#: os-release IDs and the Partner Center OS type each one is.
OS_TYPE_OF_ID = {"debian": "debian", "ubuntu": "ubuntu", "centos": "centos", "rhel": "redHat",
                 "sles": "suse", "sles_sap": "suse", "opensuse-leap": "suse",
                 "mariner": "cblMariner", "azurelinux": "cblMariner", "ol": "oracleLinux"}


def _local_os_disks(ctx: OfferContext) -> Iterator[tuple[DiskRef, str]]:
    for _, sku, key, version in ctx.versions():
        for ref in ctx.disks(sku, key, version):
            if ref.role != "data" and ref.disk.file is not None and \
                    ctx.loaded.resolve(ref.disk.file).is_file():
                yield ref, sku.id


def _not_opened(ctx: OfferContext) -> Outcome | None:
    if ctx.probe is None:
        return skipped("local disks were not opened")
    return None


def _judge(name: str, size: int, bounds: RoleSize, role: str) -> tuple[str, Severity] | None:
    shown = format_size(size)
    if size < bounds.min:
        return f"{name}: {shown} is below {format_size(bounds.min)} for {role}", Severity.FAIL
    if bounds.max is not None and size > bounds.max:
        return f"{name}: {shown} is above {format_size(bounds.max)} for {role}", Severity.FAIL
    if bounds.warn_above is not None and size > bounds.warn_above:
        return (f"{name}: {shown} is above {format_size(bounds.warn_above)} for {role}: "
                "accepted only case by case", Severity.WARNING)
    return None


@rule(subject="manifest", os="any",
      id="OFFER-DISK-SIZE", title="Every disk's size is within the profile's limits for its role",
      covers=("LNX-OS-SIZE", "WIN-OS-SIZE", "DSK-DATA", "WIN-DATA"),
      remediation="Resize the VHD (vmimage vhd resize) or the empty size into the role's "
                  "range; `vmimage vhd validate --role ...` shows the limits.",
      severity=Severity.FAIL)
def disk_sizes(ctx: OfferContext) -> Iterator[Outcome]:
    """Local files by their virtual size; empty data disks by the size given."""
    skip = _not_opened(ctx)
    judged = 0
    for _, sku, key, version in ctx.versions():
        for ref in ctx.disks(sku, key, version):
            bounds = ctx.profile.roles[ref.role]
            name = dotted(ref.key)
            size: int | None = None
            where = ref.key
            if ref.data is not None and ref.data.empty_bytes is not None:
                size, where = ref.data.empty_bytes, (*ref.key, "empty_size")
            elif ref.disk.file is not None and ctx.loaded.resolve(ref.disk.file).is_file():
                probe = ctx.local(ref.disk.file)
                if probe is None:
                    continue
                if probe.error is not None or probe.virtual_size is None:
                    judged += 1
                    yield Outcome(None, f"{name}.file: {ref.disk.file} cannot be read as a disk: "
                                  f"{probe.error}", (ctx.ev((*ref.key, "file"), ref.disk.file),))
                    continue
                size, where = probe.virtual_size, (*ref.key, "file")
            if size is None:
                continue
            judged += 1
            verdict = _judge(name, size, bounds, ref.role)
            if verdict is not None:
                message, level = verdict
                required = f"{format_size(bounds.min)} to " + (
                    format_size(bounds.max) if bounds.max else "any")
                yield Outcome(None, message, (ctx.ev(where, format_size(size), required),),
                              severity=level)
    if not judged:
        yield skip or skipped("no local disk file or empty size to measure")


@rule(subject="manifest", os="any",
      id="OFFER-OS-FAMILY", title="The OS disk holds the OS family the SKU declares",
      covers=("PUB-OS",),
      remediation="Declare the family (and type) of the system on the OS disk, or point "
                  "os_disk.file at the right image.",
      severity=Severity.FAIL)
def os_family(ctx: OfferContext) -> Iterator[Outcome]:
    """What ``vmimage check`` reads (os-release) against os.family; NTFS alone means Windows."""
    skip = _not_opened(ctx)
    judged = 0
    for ref, sku_id in _local_os_disks(ctx):
        assert ref.disk.file is not None
        probe = ctx.local(ref.disk.file)
        if probe is None:
            continue
        declared = ref.role.removeprefix("os-")
        sku_key = ref.key[:2]
        sku = ctx.manifest.skus[int(ref.key[1])]
        judged += 1
        if probe.family is None:
            reason = probe.error or "; ".join(probe.notes) or "no os-release and no NTFS"
            # Fail closed: an OS disk in which no OS is found is not the declared family.
            yield Outcome(None, f"{dotted(ref.key)}: no operating system found on "
                          f"{ref.disk.file} ({reason})",
                          (ctx.ev((*ref.key, "file"), ref.disk.file, declared),))
            continue
        if probe.family != declared:
            yield Outcome(None, f"{dotted(ref.key)}: SKU {sku_id!r} declares {declared}, the disk "
                          f"holds {probe.family} ({probe.os_name or 'NTFS'})",
                          (ctx.ev((*sku_key, "os", "family"), probe.family, declared),))
            continue
        found_type = OS_TYPE_OF_ID.get(probe.os_id or "")
        if found_type and sku.os.type not in ("other", found_type):
            yield Outcome(None, f"{dotted(ref.key)}: SKU {sku_id!r} declares os.type {sku.os.type}, "
                          f"the disk holds {probe.os_name} ({found_type})",
                          (ctx.ev((*sku_key, "os", "type"), found_type, sku.os.type),),
                          severity=Severity.WARNING)
    if not judged:
        yield skip or skipped("no local OS disk file to read")


@rule(subject="manifest", os="any",
      id="OFFER-IMAGE-TYPE", title="The OS disk boots the way its image type says",
      covers=("OFR-SKU-DISKS",),
      remediation="A gen2 image needs GPT, an EFI system partition and a UEFI loader "
                  "(EFI/BOOT/BOOTX64.EFI); a gen1 image boots by BIOS from MBR, or from GPT "
                  "with a BIOS-boot partition.",
      severity=Severity.FAIL)
def image_type(ctx: OfferContext) -> Iterator[Outcome]:
    """Gen2 is UEFI (rulings); Gen1 is BIOS."""
    skip = _not_opened(ctx)
    judged = 0
    for ref, sku_id in _local_os_disks(ctx):
        assert ref.disk.file is not None
        probe = ctx.local(ref.disk.file)
        if probe is None or probe.error is not None or probe.scheme is None:
            continue
        judged += 1
        sku = ctx.manifest.skus[int(ref.key[1])]
        where = ctx.ev((*ref.key[:2], "image_type"), sku.image_type)
        name = f"{dotted(ref.key)} ({sku_id}, {sku.image_type})"
        if sku.image_type == "gen2":
            if probe.scheme != "gpt":
                yield Outcome(None, f"{name}: the partition table is {probe.scheme}, gen2 needs GPT",
                              (where,))
            elif probe.esp is None:
                yield Outcome(None, f"{name}: no EFI system partition", (where,))
            elif probe.uefi_loaders is None:
                yield Outcome(None, f"{name}: the EFI system partition could not be read; the UEFI "
                              "loader is not verified", (where,), severity=Severity.WARNING)
            elif not probe.uefi_loaders:
                yield Outcome(None, f"{name}: no UEFI loader (*.EFI under /EFI) on the EFI system "
                              "partition", (where,))
        elif probe.scheme == "gpt" and not probe.bios_boot:
            yield Outcome(None, f"{name}: a GPT disk without a BIOS-boot partition does not boot on "
                          "gen1 (BIOS)" + (": it looks like gen2" if probe.esp else ""),
                          (where,), severity=Severity.WARNING)
    if not judged:
        yield skip or skipped("no local OS disk file to read")
