"""What the portal asks per SKU: versions, recommended sizes, the OS (PUB-*, OFR-WIN-BASE)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from vmimage.findings import Outcome, Severity
from vmimage.offer import ids
from vmimage.offer.keys import Key, dotted
from vmimage.offer.rules.context import OfferContext
from vmimage.rules import rule

if TYPE_CHECKING:
    from vmimage.offer.model import ImageVersion, Sku

_SIZE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: The 2015 guide's approved bases (WIN-BASE), for a profile without its own list.
_WINDOWS_2015 = ("windowsServer2008R2", "windowsServer2012", "windowsServer2012R2",
                 "windowsServer2012R2Datacenter")


@rule(subject="manifest", os="any",
      id="OFFER-VERSION-FORMAT", title="Versions are X.Y.Z of integers",
      covers=("PUB-VERSION",),
      remediation="Write the version as three integers, e.g. '1.0.0' (quoting it is "
                  "harmless and keeps editors from reading it as a number).",
      severity=Severity.FAIL)
def version_format(ctx: OfferContext) -> Iterator[Outcome]:
    """Read as text, so '1.10' is not the number 1.1 (rulings)."""
    for _, _, key, version in ctx.versions():
        for problem in ids.version_problems(version.version):
            yield Outcome(None, f"{dotted(key)}.version: {problem}",
                          (ctx.ev((*key, "version"), version.version, "X.Y.Z"),))


def _keyed(sku: Sku) -> list[tuple[int, ImageVersion, tuple[int, int, int]]]:
    out = []
    for j, version in enumerate(sku.versions):
        parsed = ids.version_key(version.version)
        if parsed is not None:
            out.append((j, version, parsed))
    return out


@rule(subject="manifest", os="any",
      id="OFFER-VERSION-PATCH", title="A new version is higher, as the profile asks",
      covers=("PUB-VERSION",),
      remediation="azure-2015: keep X.Y of a SKU and raise Z for a new image (a new major or "
                  "minor version is a new SKU). azure-current: a new version must be higher "
                  "than every published one. Published versions are never edited or removed.",
      severity=Severity.FAIL)
def version_patch(ctx: OfferContext) -> Iterator[Outcome]:
    """PUB-VERSION within the manifest, and against what was published (--previous).

    The 2015 guide lets only the patch number rise within a SKU; today's Partner Center asks
    only that a new version be higher than the published ones (profile threshold
    ``version_rule``: ``patch-only`` or ``higher``).
    """
    for sku_key, sku in ctx.skus():
        keyed = _keyed(sku)
        yield from _within(ctx, sku_key, keyed)
        if ctx.previous is not None and ctx.previous.manifest is not None:
            old = next((s for s in ctx.previous.manifest.skus if s.id == sku.id), None)
            if old is not None:
                yield from _against(ctx, sku_key, sku, keyed, old)


def _patch_only(ctx: OfferContext) -> bool:
    return ctx.threshold("version_rule", "patch-only") == "patch-only"


def _within(ctx: OfferContext, sku_key: Key,
            keyed: list[tuple[int, ImageVersion, tuple[int, int, int]]]) -> Iterator[Outcome]:
    seen: dict[tuple[int, int, int], int] = {}
    if not keyed:
        return
    patch_only = _patch_only(ctx)
    _, base_version, base = keyed[0]
    for j, version, parsed in keyed:
        key = (*sku_key, "versions", j, "version")
        if parsed in seen:
            yield Outcome(None, f"{dotted(key)}: version {version.version} is given twice",
                          (ctx.ev(key, version.version),))
        seen.setdefault(parsed, j)
        if patch_only and parsed[:2] != base[:2]:
            yield Outcome(None, f"{dotted(key)}: {version.version} changes the major or minor "
                          f"version of {base_version.version}: within a SKU only the patch "
                          "number may change",
                          (ctx.ev(key, version.version, f"{base[0]}.{base[1]}.Z"),))


def _against(ctx: OfferContext, sku_key: Key, sku: Sku,
             keyed: list[tuple[int, ImageVersion, tuple[int, int, int]]],
             old: Sku) -> Iterator[Outcome]:
    assert ctx.previous is not None
    published = {number: v for v in old.versions
                 if (number := ids.version_key(v.version)) is not None}
    if not published:
        return
    latest = max(published)
    latest_text = ".".join(map(str, latest))
    current = {parsed for _, _, parsed in keyed}
    new = 0
    for j, version, parsed in keyed:
        key = (*sku_key, "versions", j, "version")
        if parsed in published:
            if published[parsed] != version:
                yield Outcome(None, f"{dotted(key)}: published version {version.version} was "
                              "changed: published images cannot be edited, publish a new "
                              "patch version", (ctx.ev(key, version.version),),
                              severity=Severity.WARNING)
            continue
        new += 1
        if _patch_only(ctx):
            required = f"{latest[0]}.{latest[1]}.Z with Z > {latest[2]}"
            if parsed[:2] != latest[:2] or parsed[2] <= latest[2]:
                yield Outcome(None, f"{dotted(key)}: {version.version} after published "
                              f"{latest_text}: only the patch number may rise within a SKU",
                              (ctx.ev(key, version.version, required),))
        elif parsed <= latest:
            yield Outcome(None, f"{dotted(key)}: {version.version} is not higher than published "
                          f"{latest_text}: a new version must be higher",
                          (ctx.ev(key, version.version, f"higher than {latest_text}"),))
    for parsed, version in published.items():
        if parsed not in current:
            yield Outcome(None, f"{dotted(sku_key)}: published version {version.version} of SKU "
                          f"{sku.id!r} is missing: published versions are deprecated, never "
                          "removed", (ctx.ev(sku_key),
                                      ctx.previous.evidence(_find_version(ctx, old, version))),
                          severity=Severity.WARNING)
    limit = ctx.threshold("new_versions_per_submission", None)
    if isinstance(limit, int) and new > limit:
        yield Outcome(None, f"{dotted(sku_key)}: {new} new versions of SKU {sku.id!r}; "
                      f"Partner Center takes {limit} new image per image type per submission",
                      (ctx.ev((*sku_key, "versions")),), severity=Severity.WARNING)


def _find_version(ctx: OfferContext, old: Sku, version: ImageVersion) -> Key:
    assert ctx.previous is not None and ctx.previous.manifest is not None
    i = ctx.previous.manifest.skus.index(old)
    return ("skus", i, "versions", old.versions.index(version), "version")


@rule(subject="manifest", os="any",
      id="OFFER-SIZES", title="The SKU recommends the number of VM sizes the profile asks",
      covers=("PUB-SIZES",),
      remediation="List VM sizes by their Azure names (e.g. Standard_D2s_v5): exactly three "
                  "in the 2015 guide, at most six in Partner Center.",
      severity=Severity.FAIL)
def sizes(ctx: OfferContext) -> Iterator[Outcome]:
    """Exactly three (2015) or at most six (today); names without spaces, no repeats."""
    low = ctx.threshold("recommended_sizes_min", 0)
    high = ctx.threshold("recommended_sizes_max", 6)
    assert isinstance(low, int) and isinstance(high, int)
    wanted = f"exactly {low}" if low == high else f"{low} to {high}"
    for sku_key, sku in ctx.skus():
        key = (*sku_key, "recommended_sizes")
        count = len(sku.recommended_sizes)
        if not low <= count <= high:
            yield Outcome(None, f"{dotted(key)}: {count} sizes; {ctx.profile.name} asks {wanted}",
                          (ctx.ev(key, str(count), wanted),))
        seen: set[str] = set()
        for i, size in enumerate(sku.recommended_sizes):
            if not _SIZE_NAME.match(size):
                yield Outcome(None, f"{dotted(key)}[{i}]: {size!r} is not a VM size name",
                              (ctx.ev((*key, i), size, "e.g. Standard_D2s_v5"),))
            if size.lower() in seen:
                yield Outcome(None, f"{dotted(key)}[{i}]: {size!r} is listed twice",
                              (ctx.ev((*key, i), size),))
            seen.add(size.lower())


@rule(subject="manifest", os="any",
      id="OFFER-OS", title="The SKU names its OS as family, type, version and update",
      covers=("PUB-OS",),
      remediation="Write the friendly name as family, type, version and update, e.g. "
                  "'Windows Server 2012 R2 Datacenter' or 'Debian 12 (bookworm)'; at most "
                  "100 characters.",
      severity=Severity.FAIL)
def os_name(ctx: OfferContext) -> Iterator[Outcome]:
    """Partner Center limits the friendly name to 1-100 characters; a bare family says too
    little to a customer."""
    for sku_key, sku in ctx.skus():
        key = (*sku_key, "os", "friendly_name")
        name = sku.os.friendly_name.strip()
        if not 1 <= len(name) <= 100:
            yield Outcome(None, f"{dotted(key)}: {len(name)} characters; 1 to 100 are allowed",
                          (ctx.ev(key, name),))
        elif not any(ch.isdigit() for ch in name):
            yield Outcome(None, f"{dotted(key)}: {name!r} names no version",
                          (ctx.ev(key, name, "family, type, version, update"),),
                          severity=Severity.WARNING)


@rule(subject="manifest", os="any",
      id="OFFER-WIN-BASE", title="A Windows SKU uses an approved Windows Server version",
      covers=("OFR-WIN-BASE", "WIN-BASE"),
      remediation="Build the image from an approved Windows Server base image and declare "
                  "its os.type.",
      severity=Severity.FAIL)
def windows_base(ctx: OfferContext) -> Iterator[Outcome]:
    """The profile lists the approved types; 'other' cannot be told approved or not."""
    approved = ctx.threshold("windows_os_types", _WINDOWS_2015)
    assert isinstance(approved, (list, tuple))
    for sku_key, sku in ctx.skus():
        if sku.os.family != "windows":
            continue
        key = (*sku_key, "os", "type")
        if sku.os.type == "other":
            yield Outcome(None, f"{dotted(key)}: 'other' cannot be checked against the approved "
                          "bases", (ctx.ev(key, sku.os.type),), severity=Severity.WARNING)
        elif sku.os.type not in approved:
            yield Outcome(None, f"{dotted(key)}: {sku.os.type} is not an approved base in "
                          f"{ctx.profile.name}", (ctx.ev(key, sku.os.type,
                                                         ", ".join(map(str, approved))),))
