"""``vmimage sas verify``: every SAS rule of the guide as a rule of the one registry.

The offline rules (:mod:`.offline`) read the URI itself: permissions (SAS-PERM), start
(SAS-START), expiry (SAS-DURATION, business days counted from now), the blob's name
(SAS-BLOB), the scheme (SAS-SCHEME) and whether each VHD has its own URI (SAS-EACH). The
online rules (:mod:`.online`, capability ``network``) use nothing but the URI, as the
Marketplace will: the SAS opens the blob, a page blob, not leased, whose length is the footer's
virtual size + 512 and whose last 512 bytes are a valid fixed VHD footer.

This package only builds a context per URI and runs the ``sas-uri`` rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from vmimage.findings import Finding
from vmimage.profiles import Profile
from vmimage.rules import Subject, rules_for, run_rules
from vmimage.storage.sas_rules import offline, online
from vmimage.storage.sas_rules.context import DEADLINE, SasContext, parse_sas_uri

__all__ = ["SasContext", "parse_sas_uri", "rule_modules", "verify_sas"]

rule_modules = (offline, online)


def verify_sas(uris: list[str], profile: Profile, online: bool = True,
               now: datetime | None = None, timeout: float = 30.0,
               deadline: float = DEADLINE) -> list[Finding]:
    """One finding per SAS rule per URI, in the order the URIs were given.

    ``timeout`` bounds each connection and read; ``deadline`` bounds all the network work for
    one URI, retries included (a server may answer every read just in time, for ever).
    """
    moment = now or datetime.now(UTC)
    parsed = [parse_sas_uri(u) for u in uris]
    findings: list[Finding] = []
    metas = rules_for(Subject.SAS_URI)
    for i, uri in enumerate(parsed):
        ctx = SasContext(uri=uri, earlier=tuple(parsed[:i]), profile=profile, now=moment,
                         timeout=timeout, online=online, budget=deadline)
        findings += run_rules(metas, ctx)
    return findings
