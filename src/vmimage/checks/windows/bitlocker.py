"""No volume of the OS disk is BitLocker-encrypted (research §2.1): Azure cannot boot an image
whose volumes need a key it does not have."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.disk.sources import FileWindow
from vmimage.facts.windows.bitlocker import read_bitlocker
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.targets.base import Partition, Target

#: The OEM ID a BitLocker volume's boot sector carries at offset 3 (NTFS says ``NTFS    ``).
FVE_SIGNATURE = b"-FVE-FS-"


def bitlocker_partitions(target: Target) -> list[Partition] | None:
    """The partitions whose boot sector is BitLocker's, or None when the target cannot read
    its disk (a directory, a live system)."""
    reader = getattr(target, "reader", None)
    layout = target.layout() if "disk" in target.capabilities else None
    if reader is None or layout is None:
        return None
    found = []
    for part in layout.partitions:
        if part.scheme in ("mbr", "gpt", "none") and part.size >= 512:
            head = bytes(reader.read(part.start, 11))
            if head[3:11] == FVE_SIGNATURE:
                found.append(part)
    return found


@rule(id="WINDOWS-NO-BITLOCKER", title="No volume of the OS disk is BitLocker-encrypted",
       severity=Severity.FAIL, os="windows", covers=("CUR-WIN-BITLOCKER",),
       remediation="Turn BitLocker off on every volume (manage-bde -off C:, and the others) "
                   "and wait for decryption to finish before sysprep and capture.",
       needs=("disk",))
def no_bitlocker(ctx: CheckContext) -> Iterator[Outcome]:
    """The boot sector of every partition, by its ``-FVE-FS-`` signature: an encrypted
    Windows volume is not even found as Windows (``vmimage check`` says so); an encrypted
    System Reserved, EFI or recovery volume fails here. The evidence adds what the volume's
    FVE metadata says without a key (:mod:`vmimage.facts.windows.bitlocker`: cipher,
    protectors, suspension, when and on which machine), so the reviewer knows which BitLocker
    to turn off; the signature alone decides, since Windows treats the volume as BitLocker's
    even when libbde cannot parse its metadata."""
    assert ctx.target is not None
    found = bitlocker_partitions(ctx.target)
    if found is None:
        yield skipped("the disk's volumes cannot be read on this target")
        return
    reader = getattr(ctx.target, "reader", None)
    assert reader is not None  # bitlocker_partitions read the boot sectors through it
    for part in found:
        facts = read_bitlocker(FileWindow(reader, part.start, part.size), part.name)
        state = " (protection suspended)" if facts.suspended else ""
        yield violated(f"{part.name} ({part.label or part.type_name}) is BitLocker-encrypted"
                       f"{state}",
                       Evidence(path=ctx.target.name, seen=f"{part.name} at {part.start}: "
                                f"boot sector OEM ID {FVE_SIGNATURE.decode()}; "
                                f"{facts.summary()}",
                                required="no BitLocker volume"))
    if not found:
        assert ctx.target is not None
        layout = ctx.target.layout()
        names = ", ".join(p.name for p in layout.partitions) if layout else ""
        yield passed("no BitLocker volume", Evidence(path=ctx.target.name, seen=names,
                                                    required="no -FVE-FS- boot sector"))
