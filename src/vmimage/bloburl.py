"""Blob URLs taken apart: account, container, blob and query, the one parser for every caller.

Never assume ``blob.core.windows.net`` (rulings): sovereign clouds and custom domains name the
account in the host (``https://ACCOUNT.blob.core.chinacloudapi.cn/c/b.vhd``), while Azurite and
other emulators use path-style URLs that name it in the first path segment
(``http://127.0.0.1:10000/ACCOUNT/c/b.vhd``). We tell them apart by the host: an IP address,
``localhost`` or a name without a dot is path-style.

Two entry points share one core. :func:`parse_strict` is for commands that act on a blob or a
container (``upload``, ``sas create``, ``certify --upload``): a missing part is an error.
:func:`parse_lenient` is for ``sas verify`` and for matching tokens to disks: missing parts come
back empty, so the caller can report what is wrong instead of refusing. Both refuse a user name
or password in the URL, which would otherwise be printed wherever the URL is, and both keep
the query as given.

A leaf: it imports nothing from vmimage but the errors, and so knows nothing of secrets. Its
messages never repeat the URL (it may hold a signature); callers that show a URL redact it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

from vmimage.errors import InputError

#: The shapes a strict parse can ask for.
Kind = Literal["blob", "container"]


@dataclass(frozen=True)
class BlobAddress:
    """A blob (or container) URL taken apart. ``blob`` is percent-decoded; ``query`` is the
    query exactly as given (a SAS, when it carries one), without the ``?``."""

    scheme: str
    netloc: str
    account: str
    container: str
    blob: str
    path_style: bool
    query: str = ""

    @property
    def account_url(self) -> str:
        """The endpoint the SDK wants: scheme, host and, for path-style, the account segment."""
        base = f"{self.scheme}://{self.netloc}"
        return f"{base}/{self.account}" if self.path_style else base

    @property
    def container_url(self) -> str:
        """The container's URL without any query."""
        return f"{self.account_url}/{self.container}"

    @property
    def base(self) -> str:
        """The blob's URL without any query."""
        return f"{self.container_url}/{quote_blob(self.blob)}"

    @property
    def url(self) -> str:
        """The URL with its query, as a client opens it: a secret when the query is a SAS."""
        return f"{self.base}?{self.query}" if self.query else self.base

    @property
    def fields(self) -> dict[str, str]:
        """The query's fields (``sp``, ``st``, ``se``, ``sig``...), the last value of each."""
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    @property
    def signed(self) -> bool:
        """Whether the query carries a signature (``sig``), i.e. is a SAS."""
        return "sig" in parse_qs(self.query, keep_blank_values=True)


def quote_blob(name: str) -> str:
    """A blob name as it goes into a URL path: percent-encoded, ``/`` kept."""
    return quote(name, safe="/")


def join_blob(container_url: str, name: str) -> str:
    """The URL of the blob ``name`` in the container at ``container_url``, any query (a token)
    and fragment of the container URL dropped. Nothing is checked: the caller judges the
    container URL."""
    base = container_url.strip().split("#", 1)[0].split("?", 1)[0].rstrip("/")
    return f"{base}/{quote_blob(name)}"


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


def _split(text: str, source: str) -> SplitResult:
    """``urlsplit`` with its errors and a user name or password turned into InputError."""
    try:
        parts = urlsplit(text.strip())
        _ = parts.port  # a port that is not a number raises here, not later
    except ValueError:
        raise InputError(source, "is not a valid URL") from None
    if "@" in parts.netloc:
        raise InputError(source, "a blob URL carries no user name or password")
    if parts.netloc and not _valid_netloc(parts.netloc):
        raise InputError(source, "is not a valid URL (its host is neither a name nor an IP "
                                 "address)")
    return parts


#: A host name: labels of letters, digits, ``-`` and ``_``, dot-separated.
_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*\.?")
_PORT = re.compile(r"(?::[0-9]{0,5})?")


def _valid_netloc(netloc: str) -> bool:
    """Whether ``host[:port]`` names a host: ``urlsplit`` lets ``[::1]x``, spaces or an escape
    sequence through, which the HTTP library then chokes on or sends as they are."""
    if netloc.startswith("["):
        literal, bracket, port = netloc[1:].partition("]")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
        return bool(bracket) and _PORT.fullmatch(port) is not None
    host, _, port = netloc.partition(":")
    return _NAME.fullmatch(host) is not None and _PORT.fullmatch(f":{port}" if port else "") \
        is not None


def _address(parts: SplitResult) -> BlobAddress:
    """The shared core: where the account, container and blob are; missing parts empty."""
    host = parts.hostname or ""
    path_style = is_path_style(host)
    # Without a host the path names nothing we could find (``vhds/os.vhd?sig=...``).
    segments = parts.path.lstrip("/").split("/") if host and parts.path.strip("/") else []
    if path_style:
        account, segments = (segments[0], segments[1:]) if segments else ("", [])
    else:
        account = host.split(".")[0]
    container = segments[0] if segments else ""
    blob = unquote("/".join(segments[1:])) if len(segments) > 1 else ""
    return BlobAddress(parts.scheme.lower(), parts.netloc, account, container, blob,
                       path_style, parts.query)


def parse_lenient(text: str, source: str = "SAS_URI") -> BlobAddress:
    """Take ``text`` apart; missing parts (scheme, account, container, blob) come back empty.

    Raises:
        InputError: not a URL at all (a bad port or IPv6 literal), or it carries a user name
            or password.
    """
    return _address(_split(text, source))


def parse_strict(text: str, source: str = "BLOB_URL", kind: Kind = "blob") -> BlobAddress:
    """Parse an http(s) URL naming an account, a container and (for ``kind="blob"``) a blob;
    a query, when there is one, must be a SAS (``sig=``).

    Raises:
        InputError: naming ``source``, never repeating the URL.
    """
    parts = _split(text, source)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InputError(source, f"not an http(s) {kind} URL")
    address = _address(parts)
    if kind == "container":
        if not address.account or not address.container:
            raise InputError(source, _shape("names no account and container", address, kind))
        if address.blob:
            raise InputError(source, "names a blob, not a container (give the URL of the "
                                     "container itself)")
    elif not address.account or not address.container or not address.blob:
        raise InputError(source, _shape("names no account, container and blob"
                                         if address.path_style else
                                         "names no container and blob", address, kind))
    if parts.query and not address.signed:
        raise InputError(source, "has a query but no SAS signature: give the URL alone, "
                                 "or with its whole SAS")
    return address


def _shape(problem: str, address: BlobAddress, kind: Kind) -> str:
    """The problem and the shape a URL of this style and kind takes."""
    tail = "/CONTAINER/BLOB" if kind == "blob" else "/CONTAINER"
    if address.path_style:
        return f"{problem} (path-style: http://HOST:PORT/ACCOUNT{tail})"
    return f"{problem} (https://ACCOUNT.blob.core.windows.net{tail})"
