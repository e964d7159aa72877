"""Verify SAS URIs (``vmimage sas verify``): every SAS rule on every URI, at the profile's
severities."""

from __future__ import annotations

from datetime import datetime

from vmimage.app.catalog import profile as load_profile
from vmimage.findings import Finding
from vmimage.storage.sas_rules import verify_sas


def verify(uris: list[str], profile_name: str, online: bool = True,
           now: datetime | None = None, timeout: float = 30.0) -> list[Finding]:
    """One finding per SAS rule per URI (``online=False``: the blob is not opened)."""
    return verify_sas(uris, load_profile(profile_name), online, now, timeout)
