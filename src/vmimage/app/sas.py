"""Verify SAS URIs (``vmimage sas verify``): every SAS rule on every URI, at the profile's
severities."""

from __future__ import annotations

from datetime import datetime

from vmimage.app.catalog import profile as load_profile
from vmimage.findings import Finding
from vmimage.rules import Subject
from vmimage.storage.sas import CreatedSas, create_sas
from vmimage.storage.sas_rules import verify_sas
from vmimage.storage.sas_rules.context import DEADLINE

__all__ = ["CreatedSas", "create", "verify"]


def create(url_text: str, profile_name: str, blob_scope: bool = False, days: int | None = None,
           user_delegation: bool = False) -> CreatedSas:
    """A read-and-list SAS URI for the blob at ``url_text`` by the profile's start and expiry
    rules (``vmimage sas create``).

    Raises:
        InputError: the URL, the credentials or the request cannot be used (one line, the
            signature never shown).
    """
    policy = load_profile(profile_name, (Subject.SAS_URI,))
    return create_sas(url_text, policy, blob_scope=blob_scope, days=days,
                      user_delegation=user_delegation)


def verify(uris: list[str], profile_name: str, online: bool = True,
           now: datetime | None = None, timeout: float = 30.0,
           deadline: float = DEADLINE) -> list[Finding]:
    """One finding per SAS rule per URI (``online=False``: the blob is not opened);
    ``deadline`` seconds at most of network work per URI."""
    return verify_sas(uris, load_profile(profile_name, (Subject.SAS_URI,)), online, now, timeout,
                      deadline)
