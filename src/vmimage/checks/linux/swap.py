"""No swap on the OS disk nor on a data disk: neither a partition (named in fstab or not) nor,
on an OS disk, a swap file (LNX-SWAP names data disks too)."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import disk_name, where
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule


@rule(id="LINUX-NO-SWAP", title="No swap partition or swap file on the disk",
       roles=("os-linux", "data"),
       severity=Severity.FAIL,
       covers=("LNX-SWAP", "MS-41", "LISA-verify_no_swap_on_osdisk", "MS-200.3.3.3"),
       remediation="Remove the swap partition (even one fstab does not name) and every swap "
                   "file, swap unit and cloud-init swap setting; let the agent make swap on the "
                   "resource disk (ResourceDisk.EnableSwap=y only with a resource disk) or none.")
def no_swap(ctx: CheckContext) -> Iterator[Outcome]:
    """Swap is found by signature on every partition, and from fstab, systemd units,
    cloud-init and waagent.conf for files (rulings: never by scanning every file)."""
    found = False
    assert ctx.target is not None
    layout = ctx.target.layout() if "disk" in ctx.capabilities else None
    facts = ctx.facts if "filesystem" in ctx.capabilities else None
    if layout is None and facts is None:
        yield skipped("neither the disk's partitions nor a filesystem could be read")
        return
    if layout is not None:
        for part in layout.partitions:
            if part.fs_type == "swap":
                found = True
                # The image target marks a swap volume fstab names (by any spelling) "[SWAP]".
                how = ("named in /etc/fstab" if part.mountpoint == "[SWAP]"
                       else "not named in /etc/fstab")
                yield violated(f"swap partition {where(part)}, {how}",
                               Evidence(path=disk_name(ctx), seen=f"swap signature on {part.name}",
                                        required="No. of Swap Partitions: 0"))
    for source in facts.swap_sources if facts is not None else ():
        if source.kind == "fstab-partition" and layout is not None:
            continue  # judged above by signature, with or without an fstab line
        found = True
        yield violated(f"swap from {source.kind}: {source.description}",
                       Evidence(path=source.path, line=source.line, seen=source.description,
                                required="no swap"))
    if not found:
        scope = [] if layout is None else ["partitions"]
        if facts is not None:
            scope.append("fstab, systemd units, cloud-init or waagent.conf")
        yield passed(f"no swap in {' and '.join(scope)}",
                     Evidence(seen="No. of Swap Partitions: 0"))
