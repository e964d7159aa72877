"""Blob URLs: where the account, container and blob are, and whether a SAS rides along.

Never assume ``blob.core.windows.net`` (rulings): sovereign clouds and custom domains name the
account in the host (``https://ACCOUNT.blob.core.chinacloudapi.cn/c/b.vhd``), while Azurite and
other emulators use path-style URLs that name it in the first path segment
(``http://127.0.0.1:10000/ACCOUNT/c/b.vhd``). We tell them apart by the host: an IP address,
``localhost`` or a name without a dot is path-style.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from vmimage.errors import InputError
from vmimage.storage.redact import redact, register_secret

URL_ARG_HELP = ("Blob URL (a SAS may ride in its query), or @FILE to read it from a file, which "
                "keeps a SAS out of the process list.")


@dataclass(frozen=True)
class BlobUrl:
    """A parsed blob URL. ``sas`` is the query string when it carries a signature, else ``""``."""

    scheme: str
    netloc: str
    account: str
    container: str
    blob: str
    path_style: bool
    sas: str = ""

    @property
    def account_url(self) -> str:
        """The endpoint the SDK wants: scheme, host and, for path-style, the account segment."""
        base = f"{self.scheme}://{self.netloc}"
        return f"{base}/{self.account}" if self.path_style else base

    @property
    def base(self) -> str:
        """The blob's URL without any query."""
        return f"{self.account_url}/{self.container}/{quote(self.blob, safe='/')}"

    @property
    def url(self) -> str:
        """The URL with its SAS, as a client opens it. A secret: never print it."""
        return f"{self.base}?{self.sas}" if self.sas else self.base

    @property
    def display(self) -> str:
        """The URL as we print it: the signature removed."""
        return redact(self.url)

    @property
    def query(self) -> dict[str, str]:
        """The SAS fields (``sp``, ``st``, ``se``...), the last value of each."""
        return {k: v[-1] for k, v in parse_qs(self.sas, keep_blank_values=True).items()}

    def with_sas(self, sas: str) -> BlobUrl:
        """The same blob with another SAS."""
        register_sas(sas)
        return BlobUrl(self.scheme, self.netloc, self.account, self.container, self.blob,
                       self.path_style, sas.lstrip("?"))


def register_sas(query: str) -> None:
    """Register a query's signature as a secret, both as written and decoded."""
    for raw in re.findall(r"(?:^|[?&])sig=([^&]*)", query):
        register_secret(raw)
        register_secret(unquote(raw))
    for signature in parse_qs(query.lstrip("?")).get("sig", []):
        register_secret(signature)


def is_path_style(host: str) -> bool:
    """Whether the account is named in the path rather than the host (emulators)."""
    name = host.strip("[]")
    if name == "localhost" or "." not in name:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def read_url_argument(text: str) -> str:
    """The URL itself, or the first non-empty line of ``FILE`` for ``@FILE``."""
    if not text.startswith("@"):
        return text.strip()
    path = Path(text[1:])
    try:
        lines = [ln.strip() for ln in path.read_text("utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError(path, f"cannot read the URL file: {os.strerror(exc.errno or 5)}") from None
    except UnicodeDecodeError:
        raise InputError(path, "the URL file is not UTF-8 text") from None
    if not lines:
        raise InputError(path, "the URL file is empty")
    return lines[0]


def parse_blob_url(text: str, source: str = "BLOB_URL") -> BlobUrl:
    """Parse ``text``; a SAS in its query is registered as a secret at once.

    Raises:
        InputError: not an http(s) URL naming an account, a container and a blob.
    """
    parts = urlsplit(text.strip())
    register_sas(parts.query)
    shown = redact(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(source, f"not an http(s) blob URL: {shown!r}")
    if parts.username or parts.password:
        raise InputError(source, "a blob URL carries no user name or password")
    host = parts.hostname or ""
    path_style = is_path_style(host)
    segments = parts.path.lstrip("/").split("/")
    if path_style:
        if len(segments) < 3 or not segments[0]:
            raise InputError(source, f"{shown!r} names no account, container and blob "
                                     "(path-style: /ACCOUNT/CONTAINER/BLOB)")
        account, segments = segments[0], segments[1:]
    else:
        account = host.split(".")[0]
    if len(segments) < 2 or not segments[0] or not "/".join(segments[1:]):
        raise InputError(source, f"{shown!r} names no container and blob (/CONTAINER/BLOB)")
    container, blob = segments[0], unquote("/".join(segments[1:]))
    sas = parts.query if "sig" in parse_qs(parts.query) else ""
    if parts.query and not sas:
        raise InputError(source, f"{shown!r} has a query but no SAS signature")
    return BlobUrl(parts.scheme, parts.netloc, account, container, blob, path_style, sas)
