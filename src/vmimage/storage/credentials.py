"""Where the storage credential comes from, and a BlobClient built with it.

In order: a SAS in the URL; a SAS token, connection string or account key in an environment
variable (the names the Azure CLI reads, so a shell set up for ``az storage`` works as it is);
otherwise Entra ID through azure-identity's ``DefaultAzureCredential`` (az login, a managed
identity, a service principal's variables). Secrets never come from the command line, where
``ps`` shows them, except a SAS inside the URL, which ``@FILE`` keeps out of it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vmimage.errors import InputError
from vmimage.secrets import register_sas, register_secret
from vmimage.storage.blob_url import BlobUrl

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_KEY = "AZURE_STORAGE_KEY"
ENV_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"

#: Seconds to wait for a connection and for each response, unless the caller says otherwise.
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 120


@dataclass(frozen=True)
class StorageAuth:
    """The credential for one URL and where it came from (printed; never the secret itself)."""

    url: BlobUrl
    source: str
    account_key: str | None = None
    entra: bool = False

    @property
    def kind(self) -> str:
        """``sas``, ``key`` or ``entra``."""
        if self.url.sas:
            return "sas"
        return "key" if self.account_key else "entra"


def parse_connection_string(text: str) -> dict[str, str]:
    """``Name=value;...`` into a dict (values may contain ``=``, as base64 keys do)."""
    fields: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise InputError(ENV_CONNECTION_STRING, "is not a connection string "
                                                    "(Name=value;Name=value...)")
        fields[name.strip()] = value.strip()
    for secret in ("AccountKey", "SharedAccessSignature"):
        register_secret(fields.get(secret))
    return fields


def check_account_key(key: str, source: str) -> str:
    """A base64 account key, or an InputError that does not repeat it."""
    register_secret(key)
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(source, "the account key is not base64") from None
    return key


def resolve(url: BlobUrl, environ: dict[str, str] | None = None) -> StorageAuth:
    """Pick the credential for ``url`` (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    if url.sas:
        return StorageAuth(url, "the SAS in the URL")
    token = env.get(ENV_SAS_TOKEN, "").strip()
    if token:
        register_sas(token)
        return StorageAuth(url.with_sas(token), f"the SAS token in {ENV_SAS_TOKEN}")
    conn = env.get(ENV_CONNECTION_STRING, "").strip()
    if conn:
        fields = parse_connection_string(conn)
        name = fields.get("AccountName")
        if name and name != url.account:
            raise InputError(ENV_CONNECTION_STRING, f"is for account {name!r}, but the URL "
                                                    f"names account {url.account!r}")
        if fields.get("AccountKey"):
            key = check_account_key(fields["AccountKey"], ENV_CONNECTION_STRING)
            return StorageAuth(url, f"the account key in {ENV_CONNECTION_STRING}", key)
        if fields.get("SharedAccessSignature"):
            return StorageAuth(url.with_sas(fields["SharedAccessSignature"]),
                               f"the SAS in {ENV_CONNECTION_STRING}")
        raise InputError(ENV_CONNECTION_STRING, "holds neither AccountKey nor "
                                                "SharedAccessSignature")
    key = env.get(ENV_KEY, "").strip()
    if key:
        return StorageAuth(url, f"the account key in {ENV_KEY}", check_account_key(key, ENV_KEY))
    return StorageAuth(url, "Entra ID (azure-identity DefaultAzureCredential)", entra=True)


def quiet_sdk_logs() -> None:
    """Keep the SDK's and urllib3's log records off stderr.

    Without a handler, Python prints warnings through its last-resort handler, and these
    records may quote request URLs with their signature. Our own errors say what failed.
    """
    for name in ("azure", "urllib3"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def make_credential(auth: StorageAuth) -> object:
    """What the SDK takes as ``credential``; make it once and share it between clients (an
    Entra ID credential fetches a token per instance)."""
    if auth.url.sas:
        # Explicitly a SAS: as a bare string, a query with a field the SDK does not know
        # would be taken for an account key.
        from azure.core.credentials import AzureSasCredential

        return AzureSasCredential(auth.url.sas)
    if auth.account_key:
        return {"account_name": auth.url.account, "account_key": auth.account_key}
    if auth.url.scheme != "https":
        raise InputError("BLOB_URL", "Entra ID tokens are sent over HTTPS only: use an https URL, "
                                     f"or set {ENV_KEY} or {ENV_CONNECTION_STRING}")
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def blob_client(auth: StorageAuth, credential: object = None, timeout: float | None = None
                ) -> BlobClient:
    """A client for the blob with the SDK's own retries off: callers retry with our policy.

    The SDK's default exponential retry waits about 15 s before its first retry (rulings); we
    retry per request with short backoff instead (:mod:`vmimage.storage.retry`). Redirects are
    never followed: the SDK would follow one to any host and port, credentials and all.
    """
    from azure.storage.blob import BlobClient

    quiet_sdk_logs()
    return BlobClient(
        auth.url.account_url, auth.url.container, auth.url.blob,
        credential=cast(Any, credential if credential is not None else make_credential(auth)),
        retry_total=0, permit_redirects=False,
        connection_timeout=CONNECT_TIMEOUT, read_timeout=timeout or READ_TIMEOUT,
    )
