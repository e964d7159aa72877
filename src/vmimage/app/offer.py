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
from vmimage.rules import Subject


def validate(manifest: str | os.PathLike[str], profile_name: str,
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


def sku_urls(manifest: str | os.PathLike[str]) -> list[SkuUrls]:
    """The public URLs of each SKU (OFR-URL).

    Raises:
        InputError: the manifest cannot be read, or not into the model.
    """
    return urls.sku_urls(load_manifest(manifest).require())
