"""What a SAS rule reads: one URI taken apart, the URIs given before it, the profile, the
moment of the check, and (online) the blob the URI opens, fetched once for every rule.

The endpoint may be anyone's, so the live test trusts it with nothing: the query is passed to
the SDK as a SAS credential whatever its fields (left to itself, the SDK reads a query with a
field it does not know as an account key and signs with it: a false "does not open"),
redirects are never followed (a 3xx is a failure naming the status, not a trip to another
host or port), and everything the URI's blob costs, retries included, ends by one deadline
per URI (a per-read timeout alone lets a server that sends a byte a second hold us for
minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from vmimage.disk import vhd
from vmimage.errors import VmimageError
from vmimage.findings import Evidence
from vmimage.profiles import Profile
from vmimage.secrets import redact
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, parse_sas_url
from vmimage.storage.errors import describe, error_code

if TYPE_CHECKING:
    from azure.core.credentials import AzureSasCredential
    from azure.storage.blob import BlobClient

T = TypeVar("T")

#: Seconds all the network work for one URI may take, retries included.
DEADLINE = 60.0


@dataclass(frozen=True)
class SasUri:
    """A SAS URI as given, and taken apart leniently by the one blob URL parser: verify
    reports what is wrong instead of refusing."""

    text: str
    address: BlobUrl

    @property
    def scheme(self) -> str:
        """``https``, ``http``, or whatever was given (lower case)."""
        return self.address.scheme

    @property
    def container(self) -> str:
        """The container, empty when the URI names none."""
        return self.address.container

    @property
    def blob(self) -> str:
        """The blob's name (percent-decoded), empty when the URI names none."""
        return self.address.blob

    @property
    def fields(self) -> dict[str, str]:
        """The query's fields (``sp``, ``st``, ``se``, ``sig``...)."""
        return self.address.fields

    @property
    def shown(self) -> str:
        """The URI without its signature."""
        return redact(self.text)

    @property
    def name(self) -> str:
        """What a message calls the URI: its blob, else its container, else its host."""
        return self.blob or self.container or self.address.netloc

    @property
    def identity(self) -> tuple[str, str, str]:
        """The VHD the URI names, whatever its token."""
        return (self.address.netloc.lower(), self.container, self.blob)


def parse_sas_uri(text: str) -> SasUri:
    """Take ``text`` apart (its signature registered as a secret first).

    Raises:
        InputError: not a URL at all, or it carries a user name or password (which would be
            sent as credentials and printed wherever the URL is).
    """
    text = text.strip()
    return SasUri(text, parse_sas_url(text))


class BlobUnreadable(VmimageError):
    """The URI does not open the blob; rules that need the blob cannot decide."""


@dataclass(frozen=True)
class BlobState:
    """What the service says of the blob: its length, type and lease state."""

    size: int
    kind: str
    lease: str


@dataclass
class SasContext:
    """One URI under verification, and what every SAS rule may compare it with."""

    uri: SasUri
    earlier: tuple[SasUri, ...]
    profile: Profile
    now: datetime
    timeout: float = 30.0
    online: bool = True
    #: Seconds every request for this URI may take in all, from now (None: no bound).
    budget: float | None = DEADLINE
    _client: Any = None
    _abandon: threading.Event = field(default_factory=threading.Event)
    _deadline: float | None = None

    def __post_init__(self) -> None:
        if self.budget is not None:
            self._deadline = time.monotonic() + self.budget
    _state: BlobState | BlobUnreadable | None = None
    _footer: vhd.Footer | VmimageError | None = field(default=None)

    @property
    def capabilities(self) -> frozenset[str]:
        """``network`` unless verification is offline."""
        return frozenset({"network"}) if self.online else frozenset()

    def say(self, message: str) -> str:
        """A message about this URI: its name first, every secret removed."""
        return redact(f"{self.uri.name}: {message}")

    def ev(self, seen: str | None = None, required: str | None = None) -> Evidence:
        """Evidence at this URI (shown without its signature)."""
        return Evidence(path=self.uri.shown, seen=None if seen is None else redact(seen),
                        required=required)

    def blob(self) -> BlobState:
        """The blob's properties, fetched once with the URI alone.

        Raises:
            BlobUnreadable: not an http(s) SAS URI naming a blob, no such blob, or the SAS
                does not open it.
        """
        if self._state is None:
            self._state = self._fetch_state()
        if isinstance(self._state, BlobUnreadable):
            raise self._state
        return self._state

    def footer(self) -> vhd.Footer:
        """The blob's last 512 bytes as a valid fixed VHD footer, read once by an explicit range
        (never a suffix range, which crashes Azurite).

        Raises:
            VmimageError: the blob could not be opened or read, or its end is no valid fixed
                VHD footer (the message says which).
        """
        if self._footer is None:
            try:
                self._footer = self._read_footer(self.blob().size)
            except VmimageError as exc:
                self._footer = exc
        if isinstance(self._footer, VmimageError):
            raise self._footer
        return self._footer

    def _blob_client(self) -> BlobClient:
        from azure.storage.blob import BlobClient

        if self._client is None:
            url = self.uri.address
            self._client = BlobClient(url.account_url, url.container, url.blob,
                                      credential=sas_credential(url.sas), retry_total=0,
                                      permit_redirects=False,
                                      connection_timeout=self.timeout,
                                      read_timeout=self.timeout)
        client: BlobClient = self._client
        return client

    def _fetch_state(self) -> BlobState | BlobUnreadable:
        from azure.core.exceptions import ResourceNotFoundError

        u = self.uri
        if u.scheme not in ("http", "https") or not u.container or not u.blob \
                or "sig" not in u.fields:
            return BlobUnreadable("not an http(s) SAS URI naming a blob")
        try:
            props = self._bounded(self._blob_client().get_blob_properties)
        except ResourceNotFoundError as exc:
            return BlobUnreadable(f"the blob does not exist ({error_code(exc) or 'BlobNotFound'})")
        except VmimageError as exc:
            return BlobUnreadable(str(exc))
        except Exception as exc:
            return BlobUnreadable(redact(f"the SAS does not open the blob: {_explain(exc)}"))
        kind = str(getattr(props.blob_type, "value", props.blob_type))
        lease = getattr(props.lease, "state", None) or "available"
        return BlobState(int(props.size), kind, str(lease))

    def _read_footer(self, size: int) -> vhd.Footer:
        if size < vhd.FOOTER_SIZE:
            raise VmimageError(f"the blob is {size} bytes, shorter than a footer")
        start = size - vhd.FOOTER_SIZE
        client = self._blob_client()

        def download() -> bytes:
            return bytes(client.download_blob(offset=start, length=vhd.FOOTER_SIZE).readall())
        try:
            raw = self._bounded(download)
        except VmimageError:
            raise
        except Exception as exc:
            raise VmimageError(redact(f"cannot read bytes {start}-{size - 1}: "
                                      f"{_explain(exc)}")) from None
        footer = vhd.Footer.unpack(raw) if len(raw) == vhd.FOOTER_SIZE else None
        if footer is None:
            raise VmimageError(f"read {len(raw)} bytes instead of 512")
        problems = footer.problems()
        if not problems and footer.disk_type != vhd.DISK_FIXED:
            problems = [f"a {footer.disk_type_name} VHD, not a fixed one"]
        if problems:
            raise VmimageError("; ".join(problems))
        return footer

    def _bounded(self, fn: Callable[[], T]) -> T:
        """``fn()`` with our retries, ended by the URI's deadline.

        The call runs in a daemon thread; when the deadline passes first, its client is
        closed (which breaks the connection it waits on), its retries are stopped, and the
        caller gets a VmimageError saying how long it waited.
        """
        if self._deadline is None:
            return retry.call(fn, retry.RetryPolicy(attempts=3), self._abandon)
        box: list[tuple[bool, Any]] = []

        def run() -> None:
            try:
                box.append((True, retry.call(fn, retry.RetryPolicy(attempts=3),
                                             self._abandon)))
            except BaseException as exc:  # handed to the caller below
                box.append((False, exc))

        worker = threading.Thread(target=run, name="vmimage-sas-verify", daemon=True)
        worker.start()
        worker.join(max(0.0, self._deadline - time.monotonic()))
        if not box:
            self._abandon.set()
            self._close()
            raise VmimageError(f"no complete answer within the deadline of {self.budget:g} s "
                               "for this URI: the server is too slow or stalls")
        ok, value = box[0]
        if not ok:
            raise value
        result: T = value
        return result

    def _close(self) -> None:
        try:
            if self._client is not None:
                self._client.close()
        except Exception:  # best effort: the thread is a daemon either way
            pass


def sas_credential(sas: str) -> AzureSasCredential:
    """The query as a SAS credential for the SDK, whatever its fields.

    A plain string credential is read by the SDK as a SAS only when every field is one it
    knows; one more field (``&foo=1``) and it is taken for an account key and used to sign
    requests, which then fail. Any query we pass is a SAS, so say so explicitly.
    """
    from azure.core.credentials import AzureSasCredential

    return AzureSasCredential(sas.lstrip("?"))


def _explain(exc: BaseException) -> str:
    """:func:`describe`, saying plainly that a 3xx was a redirect we did not follow."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 300 <= status < 400:
        return (f"the server answered {status} (a redirect to elsewhere): redirects are never "
                "followed; give the URI of the blob itself")
    return describe(exc)
