"""``vmimage sas create``: the SAS URI a Marketplace submission needs, made to the profile's rules.

Container scope by default (``sr=c&sp=rl``) with the blob's path appended, as the guide's
Storage Explorer steps made it: the ``l`` permission exists only for a container SAS, and the
SDK's ``BlobSasPermissions`` has no list flag (rulings). ``--blob-scope`` makes ``sr=b&sp=r``.

Times: the start lies ``sas_start_before_minutes`` before now (15 minutes in 2015, a day today,
against clock skew). The expiry is ``sas_min_business_days`` business days (2015) or
``sas_min_days`` days (today) after the end of the current UTC day: so at least that long after
the start, as the rule counts, and also after any moment of today, since ``verify`` counts from
now (a token holds no creation time) and a URI made in the morning must pass it at night.
A service SAS needs the account key; a user-delegation SAS cannot outlive 7 days, which no
profile's rule fits, so it is refused with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vmimage.errors import InputError
from vmimage.inputs import read_url_argument
from vmimage.profiles import Profile
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, parse_blob_url
from vmimage.storage.business_days import add_business_days, business_days, end_of_day
from vmimage.storage.credentials import (
    ENV_CONNECTION_STRING,
    ENV_KEY,
    StorageAuth,
    blob_client,
    resolve,
)
from vmimage.storage.errors import StorageError, describe, error_code

#: The longest ``--days`` asks for: ten years is more than any certification needs, and far
#: below the year 9999, where Python's dates end (a bigger number was a traceback).
MAX_DAYS = 3650
#: The longest a user-delegation SAS may live (Azure's limit).
USER_DELEGATION_MAX = timedelta(days=7)


@dataclass(frozen=True)
class SasRule:
    """The profile's SAS times: how early the start, how long the validity."""

    start_before: timedelta
    min_business_days: int | None = None
    min_days: int | None = None

    @classmethod
    def of(cls, profile: Profile) -> SasRule:
        """Read the profile's ``sas_*`` thresholds."""
        t = profile.thresholds
        before = timedelta(minutes=profile.number("sas_start_before_minutes"))
        if "sas_min_business_days" in t:
            return cls(before, min_business_days=profile.number("sas_min_business_days"))
        return cls(before, min_days=profile.number("sas_min_days"))

    @property
    def describe(self) -> str:
        """``7 business days`` or ``21 days``."""
        if self.min_business_days is not None:
            return f"{self.min_business_days} business days"
        return f"{self.min_days} days"

    def expiry(self, start: datetime, now: datetime, extra: int | None = None) -> datetime:
        """The rule's span after the end of today (so after ``start`` and all of today)."""
        base = end_of_day(max(start, now))
        if self.min_business_days is not None:
            return add_business_days(base, max(self.min_business_days, extra or 0))
        return base + timedelta(days=max(self.min_days or 0, extra or 0))


@dataclass(frozen=True)
class CreatedSas:
    """A new SAS URI and what it grants. ``url.url`` is the secret; ``url.display`` is not."""

    url: BlobUrl
    scope: str
    permissions: str
    start: datetime
    expiry: datetime
    rule: str

    def summary(self) -> str:
        """One line about the SAS, without the signature."""
        span = business_days(datetime.now(UTC), self.expiry)
        return (f"{self.url.display}: {self.scope} SAS, sp={self.permissions}, "
                f"st={iso(self.start)}, se={iso(self.expiry)} ({span:.1f} business days from "
                f"now; the rule asks {self.rule})")


def iso(moment: datetime) -> str:
    """The full ISO date-time Azure wants: ``2017-11-02T00:00:00Z`` (shortened forms fail)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_sas(url_text: str, profile: Profile, blob_scope: bool = False,
               days: int | None = None, user_delegation: bool = False, check_blob: bool = True,
               now: datetime | None = None, environ: dict[str, str] | None = None) -> CreatedSas:
    """A SAS URI for the blob at ``url_text`` by the profile's rules.

    Raises:
        InputError: the URL already holds a SAS, no account key is available, a user
            delegation was asked for, or the blob cannot be found with the key.
    """
    url = parse_blob_url(read_url_argument(url_text))
    if url.sas:
        raise InputError("BLOB_URL", "already carries a SAS: give the blob URL without its query")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InputError("--days", f"must be between 1 and {MAX_DAYS} (10 years), not {days}")
    rule = SasRule.of(profile)
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    start = moment - rule.start_before
    expiry = rule.expiry(start, moment, days)
    if user_delegation:
        raise InputError("--user-delegation", f"a user-delegation SAS cannot be valid for more "
                         f"than 7 days, and {profile.name} needs {rule.describe} (start to "
                         f"expiry {(expiry - start).days} days): use the account key "
                         f"({ENV_KEY} or {ENV_CONNECTION_STRING}), or publish from an Azure "
                         "Compute Gallery image, which needs no SAS")
    auth = resolve(url, dict(os.environ) if environ is None else environ)
    if not auth.account_key:
        raise InputError("sas create", f"needs the storage account key in {ENV_KEY} or "
                         f"{ENV_CONNECTION_STRING} (found: {auth.source}); an account with "
                         "shared-key access disabled cannot make a service SAS at all: publish "
                         "from an Azure Compute Gallery image instead")
    if url.scheme == "http" and not url.path_style:
        url = dataclasses.replace(url, scheme="https")
    if check_blob:
        _check_blob(auth)
    token = _sign(url, auth.account_key, blob_scope, start, expiry)
    return CreatedSas(url.with_sas(token), "blob" if blob_scope else "container",
                      "r" if blob_scope else "rl", start, expiry, rule.describe)


def _sign(url: BlobUrl, key: str, blob_scope: bool, start: datetime, expiry: datetime) -> str:
    from azure.storage.blob import generate_blob_sas, generate_container_sas

    protocol = "https" if url.scheme == "https" else None
    if blob_scope:
        return generate_blob_sas(url.account, url.container, url.blob, account_key=key,
                                 permission="r", start=start, expiry=expiry, protocol=protocol)
    return generate_container_sas(url.account, url.container, account_key=key,
                                  permission="rl", start=start, expiry=expiry, protocol=protocol)


def _check_blob(auth: StorageAuth) -> None:
    """The blob exists (a SAS for nothing helps nobody); say so when shared keys are off."""
    from azure.core.exceptions import ResourceNotFoundError

    client = blob_client(auth, timeout=60)
    try:
        retry.call(client.get_blob_properties, retry.RetryPolicy(attempts=4))
    except ResourceNotFoundError:
        raise StorageError(auth.url.display, "no such blob: upload it first "
                                             "(vmimage upload FILE BLOB_URL)") from None
    except Exception as exc:
        if error_code(exc) == "KeyBasedAuthenticationNotPermitted":
            raise StorageError(auth.url.display, "this account has shared-key access disabled: "
                               "it cannot make a service SAS at all; publish from an Azure "
                               "Compute Gallery image instead") from None
        raise StorageError(auth.url.display, f"cannot read the blob with the key: "
                                             f"{describe(exc)}") from None

