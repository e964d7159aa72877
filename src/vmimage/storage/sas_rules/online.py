"""SAS rules that open the blob with the URI alone, as the Marketplace will (capability
``network``): readable, a page blob, not leased, the right length, a valid fixed footer."""

from __future__ import annotations

from vmimage.disk import vhd
from vmimage.errors import VmimageError
from vmimage.findings import Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.storage.sas_rules.context import BlobUnreadable, SasContext
from vmimage.units import MiB


@rule(subject="sas-uri", os="any", id="SAS-URI-READABLE", title="The SAS opens the blob",
      severity=Severity.FAIL, covers=("SAS-WORKS",), needs=("network",),
      remediation="Check the blob's path, the SAS's times and signature; upload the VHD first.")
def readable(ctx: SasContext) -> Outcome:
    """The only test that counts: what the ingestion will do with this very URI."""
    try:
        state = ctx.blob()
    except BlobUnreadable as exc:
        return violated(ctx.say(f"cannot be opened: {exc}"), ctx.ev())
    return passed(ctx.say(f"the SAS opens the blob ({state.size} bytes)"), ctx.ev())


@rule(subject="sas-uri", os="any", id="SAS-URI-PAGE-BLOB", title="The blob is a page blob",
      severity=Severity.FAIL, covers=("SAS-WORKS",), needs=("network",),
      remediation="Upload the VHD as a page blob: vmimage upload FILE BLOB_URL.")
def page_blob(ctx: SasContext) -> Outcome:
    """A block blob VHD fails ingestion with 'Invalid blob type'."""
    kind = ctx.blob().kind
    if kind == "PageBlob":
        return passed(ctx.say("page blob"), ctx.ev(kind, "PageBlob"))
    return violated(ctx.say(f"a {kind}: Azure reports 'Invalid blob type'"),
                    ctx.ev(kind, "PageBlob"))


@rule(subject="sas-uri", os="any", id="SAS-URI-NOT-LEASED", title="The blob is not leased",
      severity=Severity.FAIL, covers=("SAS-WORKS",), needs=("network",),
      remediation="Break the lease (az storage blob lease break) or detach the disk from its VM.")
def not_leased(ctx: SasContext) -> Outcome:
    """A VHD still attached to a VM is leased and cannot be copied consistently."""
    lease = ctx.blob().lease
    if lease == "leased":
        return violated(ctx.say(f"lease state {lease}: the blob is in use"),
                        ctx.ev(lease, "not leased"))
    return passed(ctx.say(f"lease state {lease}"), ctx.ev(lease, "not leased"))


@rule(subject="sas-uri", os="any", id="SAS-URI-LENGTH",
      title="The blob's length is the virtual size + 512", severity=Severity.FAIL,
      covers=("SAS-WORKS",), needs=("network",),
      remediation="Upload a fixed VHD whose virtual size is a whole MiB: vmimage vhd validate "
                  "first.")
def length(ctx: SasContext) -> Outcome:
    """Azure takes the disk's size from the footer and refuses a blob of another length."""
    size = ctx.blob().size
    try:
        footer = ctx.footer()
    except VmimageError as exc:
        raise VmimageError(f"no valid footer to take the virtual size from ({exc})") from None
    expected = footer.current_size + vhd.FOOTER_SIZE
    if size != expected:
        return violated(ctx.say(f"blob length {size} is not the virtual size "
                                f"{footer.current_size} + 512"), ctx.ev(str(size), str(expected)))
    if footer.current_size % MiB:
        return violated(ctx.say(f"virtual size {footer.current_size} is not a whole number of "
                                "MiB"), ctx.ev(str(footer.current_size), "a multiple of 1048576"))
    return passed(ctx.say(f"{size} bytes = {footer.current_size // MiB} MiB + 512"),
                  ctx.ev(str(size), str(expected)))


@rule(subject="sas-uri", os="any", id="SAS-URI-FOOTER",
      title="The blob ends in a valid fixed VHD footer", severity=Severity.FAIL,
      covers=("SAS-WORKS",), needs=("network",),
      remediation="Upload a fixed VHD: vmimage vhd convert IN OUT.vhd, then vmimage upload.")
def footer(ctx: SasContext) -> Outcome:
    """Read by an explicit range request: what the ingestion reads first."""
    ctx.blob()  # an unopened blob: cannot decide (skip), as READABLE already failed
    try:
        found = ctx.footer()
    except VmimageError as exc:
        return violated(ctx.say(str(exc)), ctx.ev(str(exc), "a valid fixed VHD footer"))
    return passed(ctx.say(f"valid fixed VHD footer, virtual size {found.current_size}"),
                  ctx.ev(f"checksum 0x{found.checksum:08x}"))
