"""Validate an offer manifest (``vmimage offer validate``): every manifest rule, secrets
redacted from what is shown."""

from __future__ import annotations

import os

from vmimage.app.catalog import profile as load_profile
from vmimage.findings import Finding
from vmimage.offer import urls
from vmimage.offer.manifest import load_manifest
from vmimage.offer.probe import probe_disk
from vmimage.offer.rules import validate_offer
from vmimage.offer.sas import redact_finding
from vmimage.offer.urls import SkuUrls
from vmimage.profiles import DEFAULT_PROFILE, Profile
from vmimage.report.model import Report
from vmimage.rules import Subject


def validate(manifest: str | os.PathLike[str], profile_name: str | Profile,
             previous: str | os.PathLike[str] | None = None,
             open_disks: bool = True) -> list[Finding]:
    """One finding per manifest rule, SAS signatures redacted.

    Raises:
        InputError: a manifest file cannot be read at all (missing, not UTF-8, too large).
    """
    policy = load_profile(profile_name, (Subject.MANIFEST,))
    loaded = load_manifest(manifest)
    published = load_manifest(previous) if previous is not None else None
    findings = validate_offer(loaded, policy, published, probe_disk if open_disks else None)
    return [redact_finding(f) for f in findings]


def sku_urls(manifest: str | os.PathLike[str], profile_name: str | Profile = DEFAULT_PROFILE
             ) -> list[SkuUrls]:
    """The public addresses of each SKU (OFR-URL): today's, and the 2015 guide's under a
    profile based on ``azure-2015``.

    Raises:
        InputError: the manifest cannot be read, or not into the model.
    """
    guide_2015 = load_profile(profile_name, ()).base == "azure-2015"
    return urls.sku_urls(load_manifest(manifest).require(), guide_2015)


def validate_report(manifest: str | os.PathLike[str], profile_name: str | Profile,
                    previous: str | os.PathLike[str] | None = None,
                    open_disks: bool = True) -> Report:
    """:func:`validate` as a report, so ``offer validate`` has every format and option."""
    import time

    from vmimage.app.results import findings_report, now

    policy = load_profile(profile_name, (Subject.MANIFEST,))
    started, clock = now(), time.perf_counter()
    findings = validate(manifest, policy, previous, open_disks)
    return findings_report(findings, os.fspath(manifest), "offer manifest", policy.name,
                           started, lambda: time.perf_counter() - clock)
