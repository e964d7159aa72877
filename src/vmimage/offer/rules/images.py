"""The disks of each image: LUNs, counts, empty disks, and where each VHD is (OFR-SKU-DISKS,
PUB-VHD-URLS)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

from vmimage.findings import Outcome, Severity
from vmimage.offer.keys import dotted
from vmimage.offer.rules.context import OfferContext
from vmimage.offer.submission import blob_url
from vmimage.rules import rule
from vmimage.secrets import has_token, redact

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_GALLERY_VERSION = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+"
    r"/images/[^/]+/versions/[^/]+$", re.IGNORECASE)
_BAD_BLOB_CHARS = re.compile(r"[\s%\"]")


@rule(subject="manifest", os="any",
      id="OFFER-LUNS", title="Data disk LUNs run 0, 1, ... n-1 with no gaps",
      covers=("PUB-VHD-URLS", "OFR-SKU-DISKS"),
      remediation="Number the data disks' LUNs from 0 without gaps or repeats.",
      severity=Severity.FAIL)
def luns(ctx: OfferContext) -> Iterator[Outcome]:
    """Partner Center takes LUNs 0-15 in sequence (research §3.2)."""
    for _, _, key, version in ctx.versions():
        numbers = [d.lun for d in version.data_disks]
        if sorted(numbers) == list(range(len(numbers))):
            continue
        wanted = ", ".join(map(str, range(len(numbers)))) or "none"
        seen = ", ".join(map(str, numbers))
        yield Outcome(None, f"{dotted(key)}.data_disks: LUNs {seen}; {len(numbers)} data disks "
                      f"take LUNs {wanted}", (ctx.ev((*key, "data_disks"), seen, wanted),))


@rule(subject="manifest", os="any",
      id="OFFER-DATA-DISKS", title="An image has at most the profile's number of data disks",
      covers=("OFR-SKU-DISKS",),
      remediation="Add only the data disks the image needs (customers can add more at "
                  "deployment, but cannot remove the image's): at most 16.",
      severity=Severity.FAIL)
def data_disk_count(ctx: OfferContext) -> Iterator[Outcome]:
    """Up to 16 data disks per image in Partner Center (research §3.2)."""
    limit = ctx.threshold("max_data_disks", 16)
    assert isinstance(limit, int)
    for _, _, key, version in ctx.versions():
        if len(version.data_disks) > limit:
            yield Outcome(None, f"{dotted(key)}.data_disks: {len(version.data_disks)} data disks; at "
                          f"most {limit}", (ctx.ev((*key, "data_disks"),
                                                   str(len(version.data_disks)),
                                                   f"at most {limit}"),))


@rule(subject="manifest", os="any",
      id="OFFER-PLAN-DISKS", title="Every image of a plan has the same number of data disks",
      covers=("OFR-SKU-DISKS",),
      remediation="Give every version of every SKU in the plan the same data disks; an image "
                  "with other disks is a new plan.",
      severity=Severity.FAIL)
def plan_disks(ctx: OfferContext) -> Iterator[Outcome]:
    """Partner Center refuses a plan whose images differ in data disk count (research §3.2).

    Gallery images carry their own disks, which the manifest does not list: they are left out.
    """
    for plan_id, members in ctx.plans().items():
        counts: dict[int, list[str]] = {}
        keys = []
        for sku_key, sku in members:
            for j, version in enumerate(sku.versions):
                if version.gallery_image is None:
                    counts.setdefault(len(version.data_disks), []).append(
                        f"{sku.id} {version.version}")
                    keys.append((*sku_key, "versions", j, "data_disks"))
        if len(counts) > 1:
            detail = "; ".join(f"{n} in {', '.join(v)}" for n, v in sorted(counts.items()))
            yield Outcome(None, f"plan {plan_id!r}: images have different numbers of data disks "
                          f"({detail})", tuple(ctx.ev(k) for k in keys[:4]))


@rule(subject="manifest", os="any",
      id="OFFER-EMPTY-DISK", title="Every data disk has its own VHD, even an empty one",
      covers=("OFR-SKU-DISKS", "PUB-VHD-URLS"), severity=Severity.WARNING,
      remediation="Make an empty VHD of the size (vmimage vhd create empty.vhd --size 32GiB), "
                  "upload it, and name it as the disk's file or url.")
def empty_disks(ctx: OfferContext) -> Iterator[Outcome]:
    """An empty size serves the classic Create VM Image request only: the portal asks a VHD
    URL for every LUN (OFR-SKU-DISKS)."""
    for _, sku, key, version in ctx.versions():
        for k, data in enumerate(version.data_disks):
            if data.empty_size is not None:
                disk_key = (*key, "data_disks", k, "empty_size")
                yield Outcome(None, f"{dotted(disk_key)}: LUN {data.lun} of {sku.id} "
                              f"{version.version} is an empty size, not a VHD",
                              (ctx.ev(disk_key, data.empty_size),))


@rule(subject="manifest", os="any",
      id="OFFER-DISK-FILE", title="Every local disk file named in the manifest exists",
      covers=("OFR-SKU-DISKS", "PUB-VHD-URLS"),
      remediation="Fix the path (relative to the manifest's directory), or build the VHD first.",
      severity=Severity.FAIL)
def disk_files(ctx: OfferContext) -> Iterator[Outcome]:
    """A separate rule because rendering a submission needs only blob URLs: ``submit render``
    on a machine without the VHDs ignores this one."""
    for _, sku, key, version in ctx.versions():
        for ref in ctx.disks(sku, key, version):
            if ref.disk.file is None:
                continue
            path = ctx.loaded.resolve(ref.disk.file)
            if not path.is_file():
                why = "is not a file" if path.exists() else "does not exist"
                yield Outcome(None, f"{dotted(ref.key)}.file: {ref.disk.file} {why}",
                              (ctx.ev((*ref.key, "file"), str(path)),))


@rule(subject="manifest", os="any",
      id="OFFER-DISK-SOURCE", title="Every disk is its own VHD, with a clean blob URL",
      covers=("PUB-VHD-URLS", "SAS-EACH", "SAS-BLOB"),
      remediation="Name each disk's blob URL ending in .vhd (or storage.container_url), "
                  "without a SAS token: tokens are read at render time from --sas-env or "
                  "--sas-file.",
      severity=Severity.FAIL)
def disk_sources(ctx: OfferContext) -> Iterator[Outcome]:
    """URLs that are not blob URLs, tokens committed to the manifest, a VHD used twice in one
    image, and gallery references that are not gallery image versions."""
    container = ctx.manifest.storage.container_url
    if container is not None:
        yield from _url(ctx, ("storage", "container_url"), container, blob=False)
    for _, sku, key, version in ctx.versions():
        if version.gallery_image is not None:
            yield from _gallery(ctx, (*key, "gallery_image"), version.gallery_image.tenant_id,
                                version.gallery_image.resource_id)
            continue
        used: dict[str, str] = {}
        for ref in ctx.disks(sku, key, version):
            disk = ref.disk
            name = dotted(ref.key)
            if disk.file is not None and disk.url is None and container is None:
                yield Outcome(None, f"{name}: a local file without 'url' or storage.container_url: "
                              "rendering a submission needs its blob URL", (ctx.ev(ref.key),),
                              severity=Severity.WARNING)
            if disk.url is not None:
                yield from _url(ctx, (*ref.key, "url"), disk.url, blob=True)
            elif disk.file is not None and container is not None:
                derived = blob_url(ctx.manifest, disk)
                assert derived is not None
                yield from _url(ctx, (*ref.key, "file"), derived, blob=True)
            identity = disk.url or (str(ctx.loaded.resolve(disk.file)) if disk.file else None)
            if identity is not None:
                if identity in used:
                    yield Outcome(None, f"{name}: the same VHD as {used[identity]}; every disk "
                                  "needs its own VHD", (ctx.ev(ref.key, redact(identity)),))
                used.setdefault(identity, name)


def _url(ctx: OfferContext, key: tuple[str | int, ...], url: str,
         blob: bool) -> Iterator[Outcome]:
    name = dotted(key)
    if has_token(url):
        yield Outcome(None, f"{name}: holds a SAS token; the manifest is kept in a repository, so "
                      "tokens go in --sas-env or --sas-file", (ctx.ev(key, redact(url)),))
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        yield Outcome(None, f"{name}: not a URL", (ctx.ev(key, redact(url)),))
        return
    if parts.scheme not in ("http", "https") or not parts.netloc:
        yield Outcome(None, f"{name}: not an http(s) URL", (ctx.ev(key, redact(url),
                                                             "https://account.blob.../"),))
        return
    if not blob:
        return
    blob_name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    if not parts.path.lower().endswith(".vhd"):
        yield Outcome(None, f"{name}: the blob name must end in .vhd", (ctx.ev(key, redact(url)),))
    if _BAD_BLOB_CHARS.search(blob_name) or "%" in parts.path:
        yield Outcome(None, f"{name}: the VHD name holds whitespace, '%' or '\"', which the "
                      "marketplace refuses", (ctx.ev(key, redact(url)),))
    if parts.path.count("/") < 2:
        yield Outcome(None, f"{name}: no container in the URL (https://account/container/name.vhd)",
                      (ctx.ev(key, redact(url)),))


def _gallery(ctx: OfferContext, key: tuple[str | int, ...], tenant: str,
             resource: str) -> Iterator[Outcome]:
    if not _GUID.match(tenant):
        yield Outcome(None, f"{dotted(key)}.tenant_id: not a tenant GUID",
                      (ctx.ev((*key, "tenant_id"), tenant),))
    if not _GALLERY_VERSION.match(resource):
        yield Outcome(None, f"{dotted(key)}.resource_id: not a gallery image version ID",
                      (ctx.ev((*key, "resource_id"), resource,
                              "/subscriptions/…/galleries/…/images/…/versions/…"),))
