"""Verify SAS URIs (``vmimage sas verify``): every SAS rule on every URI, at the profile's
severities."""

from __future__ import annotations

from datetime import datetime

from vmimage.app.catalog import profile as load_profile
from vmimage.findings import Finding
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.rules import Subject
from vmimage.storage.sas import CreatedSas, create_sas
from vmimage.storage.sas_rules import verify_sas
from vmimage.storage.sas_rules.context import DEADLINE

__all__ = ["CreatedSas", "create", "verify", "verify_report"]


def create(url_text: str, profile_name: str | Profile, blob_scope: bool = False, days: int | None = None,
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


def verify(uris: list[str], profile_name: str | Profile, online: bool = True,
           now: datetime | None = None, timeout: float = 30.0,
           deadline: float = DEADLINE) -> list[Finding]:
    """One finding per SAS rule per URI (``online=False``: the blob is not opened);
    ``deadline`` seconds at most of network work per URI."""
    return verify_sas(uris, load_profile(profile_name, (Subject.SAS_URI,)), online, now, timeout,
                      deadline)


def verify_report(uris: list[str], profile_name: str | Profile, online: bool = True) -> Report:
    """:func:`verify` as a report (target: how many URIs, never their signatures), so ``sas
    verify`` has every format and option ``check`` has."""
    import time

    from vmimage.app.results import findings_report
    from vmimage.app.results import now as started_at

    policy = load_profile(profile_name, (Subject.SAS_URI,))
    started, clock = started_at(), time.perf_counter()
    findings = verify(uris, policy, online)
    target = f"{len(uris)} SAS URI{'s' if len(uris) != 1 else ''}"
    return findings_report(findings, target, "SAS URIs", policy.name, started,
                           lambda: time.perf_counter() - clock,
                           mode="online" if online else "offline")
