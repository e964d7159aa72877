"""A VHD in blob storage as a target, read by HTTP range requests, never downloaded.

``vmimage check 'https://ACCOUNT.blob.core.windows.net/vhds/os.vhd?SAS'`` opens the blob the
way a local image is opened, only the bytes come over HTTP:

1. the URL is parsed by :mod:`vmimage.bloburl` and its SAS registered as a secret at once
   (:mod:`vmimage.secrets`): messages, logs and reports show the URL without its query;
2. :mod:`vmimage.fetchpolicy` decides whether the host may be contacted at all (Azure's blob
   endpoints, or one the user allowed), and pins the connection to the addresses it judged;
3. ``HEAD`` gives the length, the blob type (Azure takes a VHD only as a page blob) and the
   ETag; then, in parallel, ``GET`` of the last 512 bytes by an explicit ``bytes=START-END``
   range (never a suffix range: Azurite crashes on one) and the page ranges (what was written:
   everything else reads as zeros without a request);
4. the footer is judged as a local file's (:mod:`vmimage.disk.remote`), and the virtual disk
   is read through pages with read-ahead under the target's block cache.

Every GET carries ``If-Match`` with the ETag, so a blob rewritten during the check is an error,
not a mix of two images. Redirects are never followed; every response body is bounded. A read
that fails once the filesystems are being read is kept (:attr:`BlobTarget.read_failure`) and
ends the check: the filesystem readers would otherwise report it as an unreadable file.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from vmimage.bloburl import BlobAddress, parse_strict
from vmimage.disk.inspect import DiskInfo
from vmimage.disk.remote import PagedFile, ReadAhead, open_vhd
from vmimage.disk.sources import DiskSource
from vmimage.errors import InputError
from vmimage.fetchpolicy import (
    MAX_ERROR_BODY,
    MAX_RESPONSE,
    Destination,
    FetchPolicy,
    connection,
    refuse_redirect,
)
from vmimage.log import debugging, get
from vmimage.secrets import register_sas
from vmimage.targets.image import ImageTarget

__all__ = ["API_VERSION", "BlobTarget", "BlobTransport", "ReadAhead", "open_blob"]

#: Sent as ``x-ms-version``: supported by Azure and by Azurite (started with
#: ``--skipApiVersionCheck`` in tests) alike.
API_VERSION = "2021-08-06"
#: The page list of a fragmented blob can be long; beyond this it is not used (every page is
#: then fetched as if written).
MAX_PAGE_LIST = 2 * 1024 * 1024
#: Seconds to connect and per read: a blob endpoint answers in milliseconds.
TIMEOUT = 30.0
#: Requests in flight at once (the footer and the page list; large reads in pieces).
WORKERS = 4
#: The block size of the target's cache over a blob: the read-ahead below decides what
#: travels, so the cache above must not round every small read up to 64 KiB.
CACHE_BLOCK = 4096
_log = get("reads")
_RANGE = re.compile(r"<Start>(\d+)</Start>\s*<End>(\d+)</End>")
_MARKER = re.compile(r"<NextMarker>([^<]+)</NextMarker>")


class _TooLong(InputError):
    """A body longer than the caller accepts (refused, or for the page list: not used)."""


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class BlobTransport:
    """HTTP to one blob: keep-alive connections to the judged addresses, a few in parallel,
    each answer checked and bounded. Counts requests and bytes received."""

    def __init__(self, address: BlobAddress, dest: Destination, timeout: float = TIMEOUT,
                 workers: int = WORKERS) -> None:
        self.address, self.dest, self.timeout = address, dest, timeout
        parts = urlsplit(address.url)
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vmimage-blob")
        self.etag: str | None = None
        self.requests = 0
        self.bytes_read = 0

    # ---- one request -------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        last: OSError | None = None
        for address in self.dest.addresses:
            conn = connection(self.dest, address, self.timeout)
            try:
                conn.connect()
                return conn
            except OSError as exc:
                conn.close()
                last = exc
        raise InputError(self.address.base, f"cannot connect to {self.dest.host}:"
                                            f"{self.dest.port}: {_reason(last)}")

    def request(self, method: str, query: str = "", headers: dict[str, str] | None = None,
                limit: int = 0) -> _Answer:
        """One request; a keep-alive connection the server closed meanwhile is retried once
        on a new one. ``limit``: the largest body accepted.

        Raises:
            InputError: the host cannot be reached, or the body is larger than ``limit``.
        """
        target = self._target + (("&" if "?" in self._target else "?") + query if query else "")
        send = {"x-ms-version": API_VERSION, **(headers or {})}
        for attempt in (0, 1):
            conn = self._connect()
            started = time.perf_counter()
            try:
                conn.request(method, target, headers=send)
                resp = conn.getresponse()
                answer = self._receive(resp, method, limit)
            except InputError:
                conn.close()
                raise
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError
                    ) as exc:
                conn.close()
                if attempt == 0:
                    continue
                raise InputError(self.address.base, f"the connection to {self.dest.host} was "
                                                    f"closed: {_reason(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise InputError(self.address.base, f"no answer from {self.dest.host}:"
                                                    f"{self.dest.port}: {_reason(exc)}") from None
            with self._lock:
                self.requests += 1
                self.bytes_read += len(answer.body)
                if resp.will_close:
                    conn.close()
                else:
                    self._idle.append(conn)
            if debugging(_log):
                _log.debug("%s %s%s: %d, %d bytes in %.2f ms", method, query or "blob",
                           f" {send['Range']}" if "Range" in send else "", answer.status,
                           len(answer.body), 1000 * (time.perf_counter() - started))
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _receive(self, resp: http.client.HTTPResponse, method: str, limit: int) -> _Answer:
        headers = {k.lower(): v for k, v in resp.getheaders()}
        refuse_redirect(resp.status, self.address.base)
        ok = 200 <= resp.status < 300
        bound = min(limit if ok else MAX_ERROR_BODY, MAX_RESPONSE)
        declared = headers.get("content-length")
        if method == "HEAD":
            body = resp.read()  # nothing, but the connection is ready for the next request
        elif ok and declared is not None and declared.isdigit() and int(declared) > bound:
            raise _TooLong(self.address.base, f"the answer holds {declared} bytes, more than "
                                              f"the {bound} asked for: refused")
        else:
            body = resp.read(bound + 1)
            if len(body) > bound:
                if ok:
                    raise _TooLong(self.address.base, "the answer is longer than asked for "
                                                      f"({bound} bytes): refused")
                body = body[:bound]
                resp.will_close = True  # the rest is never read: this connection is done
        return _Answer(resp.status, headers, body)

    # ---- what the blob file reads ------------------------------------------------------------

    def get_range(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, by an explicit range, matching the ETag seen.

        Raises:
            InputError: any answer but the bytes asked for.
        """
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        if self.etag:
            headers["If-Match"] = self.etag
        answer = self.request("GET", headers=headers, limit=length)
        if answer.status not in (200, 206):
            raise refusal(self.address, answer)
        if len(answer.body) != length:
            raise InputError(self.address.base, f"asked for {length} bytes at offset {offset}, "
                                                f"received {len(answer.body)}")
        return answer.body

    def in_background(self, offset: int, length: int) -> Future[bytes]:
        """:meth:`get_range` on a worker thread, while the caller sends another request."""
        return self._pool.submit(self.get_range, offset, length)

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Several ranges, in parallel when there are several."""
        if len(ranges) == 1:
            return [self.get_range(*ranges[0])]
        return list(self._pool.map(lambda r: self.get_range(*r), ranges))

    def page_ranges(self) -> list[tuple[int, int]] | None:
        """The written ``(start, end)`` byte ranges (end exclusive), merged; None when the list
        is longer than :data:`MAX_PAGE_LIST` (a blob written in many small pieces): every page
        is then fetched as if written."""
        found: list[tuple[int, int]] = []
        marker, received = "", 0
        while True:
            query = "comp=pagelist" + (f"&marker={quote(marker, safe='')}" if marker else "")
            headers = {"If-Match": self.etag} if self.etag else {}
            try:
                answer = self.request("GET", query, headers, limit=MAX_PAGE_LIST - received)
            except _TooLong:
                _log.info("%s: the page list is longer than %d bytes: not used",
                          self.address.base, MAX_PAGE_LIST)
                return None
            if answer.status != 200:
                raise refusal(self.address, answer)
            received += len(answer.body)
            text = answer.body.decode("utf-8", "replace")
            for start, end in _RANGE.findall(text):
                begin, stop = int(start), int(end) + 1
                if found and begin <= found[-1][1]:
                    found[-1] = (found[-1][0], max(found[-1][1], stop))
                else:
                    found.append((begin, stop))
            more = _MARKER.search(text)
            if not more:
                return sorted(found)
            marker = more.group(1)

    def close(self) -> None:
        """Close every connection and the worker threads."""
        self._pool.shutdown(wait=True)
        _log.info("%s: %d requests, %d bytes received", self.address.base, self.requests,
                  self.bytes_read)
        with self._lock:
            for conn in self._idle:
                conn.close()
            self._idle.clear()


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# ---- errors ----------------------------------------------------------------------------------

def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def refusal(address: BlobAddress, answer: _Answer) -> InputError:
    """One line for a refused request: what the status and the error code mean here."""
    code = answer.headers.get("x-ms-error-code", "")
    status = f"{answer.status} {code}".strip()
    if answer.status == 403:
        return InputError(address.base, _forbidden(address, code, status))
    if answer.status == 404:
        what = {"BlobNotFound": "no such blob", "ContainerNotFound": "no such container"}
        problem = what.get(code, "not found: no such blob or container"
                           + ("" if address.signed else ", or the container is private and "
                              "the URL carries no SAS"))
        return InputError(address.base, f"{problem} ({status})")
    if answer.status == 412:
        return InputError(address.base, f"the blob changed while it was read ({status}): "
                                        "check it again once it is no longer written")
    return InputError(address.base, f"the storage service answered {status}")


def _forbidden(address: BlobAddress, code: str, status: str) -> str:
    """Why a 403: expired or not yet valid (the SAS's own dates say so), no read permission,
    no SAS at all, or a signature the service does not accept."""
    fields = address.fields
    now = datetime.now(UTC)
    expiry, start = _when(fields.get("se")), _when(fields.get("st"))
    if not address.signed:
        return f"access refused ({status}): the URL carries no SAS token"
    if expiry is not None and expiry <= now:
        return (f"the SAS token expired at {expiry.isoformat(timespec='seconds')} ({status}): "
                "make a new one (vmimage sas create)")
    if start is not None and start > now:
        return f"the SAS token is not valid before {start.isoformat(timespec='seconds')} ({status})"
    if code == "AuthorizationPermissionMismatch":
        return (f"the SAS token does not grant read (sp={fields.get('sp', '')}, {status}): "
                "make one with read permission")
    return (f"the SAS token was refused ({status}): its signature does not match (another "
            "account key, container or blob, or the URL was changed)")


# ---- opening ---------------------------------------------------------------------------------

def _head(transport: BlobTransport) -> tuple[int, str]:
    """HEAD: the length and the ETag of a page blob; anything else refused."""
    answer = transport.request("HEAD")
    if answer.status != 200:
        raise refusal(transport.address, answer)
    name = transport.address.base
    kind = answer.headers.get("x-ms-blob-type", "")
    if kind != "PageBlob":
        what = {"BlockBlob": "a block blob", "AppendBlob": "an append blob"}.get(
            kind, "not an Azure blob (no x-ms-blob-type)" if not kind else f"a {kind}")
        raise InputError(name, f"is {what}: Azure takes a VHD only as a page blob (upload it "
                               "with vmimage upload, or azcopy --blob-type PageBlob)")
    length = answer.headers.get("content-length", "")
    if not length.isdigit():
        raise InputError(name, "the service did not say the blob's length")
    return int(length), answer.headers.get("etag", "")


def open_blob(spec: str, policy: FetchPolicy | None = None,
              tuning: ReadAhead | None = None) -> BlobTarget:
    """The VHD at the blob URL ``spec`` (its SAS in the query, if any) as an image target.

    Raises:
        InputError: the URL is refused by the policy, the blob cannot be read (403, 404, an
            unreachable host, a redirect), is not a page blob, or holds no valid VHD.
        UnsupportedError: a differencing VHD.
    """
    register_sas(spec.partition("?")[2])
    address = parse_strict(spec, "TARGET", "blob")
    dest = (policy or FetchPolicy()).vet(address.url)
    transport = BlobTransport(address, dest)
    try:
        length, transport.etag = _head(transport)
        if length < 512:
            raise InputError(address.base, f"truncated footer: the blob is {length} bytes, a "
                                           "VHD footer alone is 512")
        footer = transport.in_background(length - 512, 512)  # with the page list
        written = transport.page_ranges()
        tail = footer.result()
        allocated = length if written is None else sum(end - start for start, end in written)
        file = PagedFile(address.base, length, transport, written, tuning)
        info, source = open_vhd(file, tail, allocated)
        if written is None:
            info.problems.append("the blob's page list is too long to read: what is allocated "
                                 "was not measured (taken as the whole blob)")
        _log.info("%s: page blob of %d bytes, %d written; %s", address.base, length, allocated,
                  info.format_name)
    except BaseException:
        transport.close()
        raise
    return BlobTarget(address.base, (info, source), file)


class BlobTarget(ImageTarget):
    """An image target over a blob, which also says whether reading the blob ever failed.

    The filesystem readers (libyal) turn a read that raised into their own "unable to read"
    error, which the target reports as an unreadable file and a rule as a skip: over a
    network, that is a verdict resting on data never read. The check asks
    :attr:`read_failure` after the rules (and before trusting a refusal) and ends the run
    with it instead.
    """

    def __init__(self, name: str, opened: tuple[DiskInfo, DiskSource], file: PagedFile
                 ) -> None:
        self._file = file
        try:
            super().__init__(name, opened=opened, block=CACHE_BLOCK)
        except Exception:  # a refusal while opening may rest on a failed read: say the read
            failure = self.read_failure
            if failure is None:
                raise
            raise failure from None

    @property
    def read_failure(self) -> InputError | None:
        """The first read of the blob that failed (status or network error), as the one line
        that ends the check; None while every read succeeded."""
        failed = self._file.failure
        if failed is None:
            return None
        return InputError(failed.source, "reading the blob failed during the check, so no "
                                         f"verdict is given: {failed.problem}")
