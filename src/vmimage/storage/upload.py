"""Upload a VHD to a page blob: only the data, in parallel, resumable, with Content-MD5.

How one run goes:

1. The file must pass the format rules (the caller, :mod:`vmimage.app.upload`, judges it).
2. The blob is created at the file's length with a metadata marker naming the file (length,
   mtime, first 64 KiB and footer hashed), or, when it already carries this file's marker, the
   upload *resumes*: its page ranges say which chunks have landed, and only the others are sent.
   A resume never recreates the blob; ``--overwrite`` does (stale pages would otherwise
   survive where the new file has zeros, rulings).
3. A reader walks the data extents (SEEK_DATA/SEEK_HOLE) in 4 MiB chunks on a fixed grid, drops
   all-zero chunks and hands the rest to the workers, which send Put Page calls and retry
   transient errors with our own backoff (:mod:`vmimage.storage.retry`). Every Put Page carries
   a transactional Content-MD5 of its body (rulings): the service refuses a page that a bad
   link or proxy changed on the way (400 ``Md5Mismatch``), and we send it again.
4. Meanwhile :class:`~vmimage.storage.hashing.SparseMd5` hashes the whole file in offset order.
5. At the end the blob's length and page ranges are compared with the file; with ``--verify``
   the stored data ranges are read back and compared with the file (page ranges say where
   data is, not what it is); then Content-MD5 is set (the other content settings passed back,
   since Set Blob Properties replaces them all), and the marker says ``complete``.

Creating the blob is conditional (``If-None-Match: *``, or the etag we saw when recreating):
two uploads started at once cannot both create it and wipe each other's pages; the loser
stops with a message instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from vmimage.disk.sparse import is_zero
from vmimage.errors import InputError
from vmimage.inputs import open_input, read_url_argument
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, parse_blob_url
from vmimage.storage.credentials import StorageAuth, blob_client, make_credential, resolve
from vmimage.storage.errors import StorageError, describe, error_code
from vmimage.storage.hashing import SparseMd5
from vmimage.storage.pages import Chunk, RangeSet, aligned_extents, chunks

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties

T = TypeVar("T")

MARK_SOURCE = "vmimage_source"
MARK_STATE = "vmimage_state"
UPLOADING, COMPLETE = "uploading", "complete"
#: How far (bytes of data) the uploader may read ahead of the MD5 thread: page-cache sized.
HASH_WINDOW = 2 * 1024**3


@dataclass(frozen=True)
class UploadOptions:
    """What the command line chooses."""

    workers: int = 8
    md5: bool = True
    overwrite: bool = False
    allow_any: bool = False
    verify: bool = False
    timeout: float | None = None
    policy: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)


@dataclass(frozen=True)
class Progress:
    """A snapshot for the progress bar: bytes examined of ``todo``, and the MD5's position."""

    todo: int
    examined: int
    sent: int
    hashed: int
    file_size: int
    md5: bool
    uploading: bool


@dataclass
class UploadResult:
    """The summary ``--json`` prints."""

    file: str
    blob: str
    credential: str
    size: int
    data_bytes: int
    sent_bytes: int = 0
    zero_bytes: int = 0
    present_bytes: int = 0
    requests: int = 0
    retries: int = 0
    resumed: bool = False
    recreated: bool = False
    already_complete: bool = False
    content_md5: str | None = None
    #: ``--verify``: None when not asked; True when every data range matched the file.
    verified: bool | None = None
    #: The first range whose stored content differs from the file (``--verify``).
    mismatch: str | None = None
    page_ranges: int = 0
    seconds: float = 0.0
    workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


class _Counters:
    """Byte counts the threads update and the progress loop reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.examined = self.sent = self.zero = self.present = 0
        self.requests = self.retries = 0
        self.sent_chunks: list[Chunk] = []

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


def fingerprint(fd: int) -> str:
    """Identifies the file for resume: length, mtime, first 64 KiB and last 512 bytes.

    Cheap (no full read) and strict: a touched or rewritten file never resumes an older
    upload; the user reruns with ``--overwrite``.
    """
    st = os.fstat(fd)
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:".encode())
    h.update(os.pread(fd, 65536, 0))
    h.update(os.pread(fd, 512, max(0, st.st_size - 512)))
    return h.hexdigest()[:40]


def _wrap(url: BlobUrl, what: str, exc: BaseException) -> StorageError:
    return StorageError(url.display, f"{what}: {describe(exc)}")


#: What the service answers a conditional create that lost the race.
_CONFLICTS = frozenset({"BlobAlreadyExists", "ConditionNotMet", "TargetConditionNotMet"})
_RACE = ("another upload created or changed the blob at the same moment: nothing was "
         "overwritten; run the command again to resume (or --overwrite to start over)")


def _unchanged_since(seen: BlobProperties | None) -> dict[str, Any]:
    """Conditions for Put Blob: the blob must still be absent, or still carry ``seen``'s etag."""
    from azure.core import MatchConditions

    if seen is None or not getattr(seen, "etag", None):
        return {"if_none_match": "*"}
    return {"etag": seen.etag, "match_condition": MatchConditions.IfNotModified}


class _Uploader:
    """One run of :func:`upload_file`; the threads share this object."""

    def __init__(self, path: str, url: BlobUrl, auth: StorageAuth, size: int,
                 options: UploadOptions) -> None:
        self.path, self.url, self.auth, self.size, self.options = path, url, auth, size, options
        self.stop = threading.Event()
        self.counters = _Counters()
        self.failure: BaseException | None = None
        self.credential = make_credential(auth)
        self.client = blob_client(auth, self.credential, options.timeout)

    # -- calls with our retry policy ----------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        return retry.call(fn, self.options.policy, self.stop,
                          on_retry=lambda _exc: self.counters.add(retries=1))

    def properties(self) -> BlobProperties | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props: BlobProperties = self.call(self.client.get_blob_properties)
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _wrap(self.url, "cannot read the blob's properties", exc) from None
        return props

    def page_ranges(self) -> RangeSet:
        try:
            return RangeSet.from_page_ranges(self.call(lambda: list(self.client.list_page_ranges())))
        except Exception as exc:
            raise _wrap(self.url, "cannot list the blob's page ranges", exc) from None

    def create(self, marker: str, seen: BlobProperties | None) -> None:
        """Create the page blob, only if it is still as we saw it (absent, or ``seen``'s etag):
        another upload that got there first is never wiped."""
        metadata = {MARK_SOURCE: marker, MARK_STATE: UPLOADING}
        conditions = _unchanged_since(seen)

        def create() -> None:
            self.client.create_page_blob(self.size, metadata=metadata, **conditions)

        try:
            self.call(create)
            return
        except Exception as exc:
            if error_code(exc) in _CONFLICTS:
                raise StorageError(self.url.display, _RACE) from None
            if error_code(exc) != "ContainerNotFound" or self.auth.kind == "sas":
                raise _wrap(self.url, "cannot create the page blob", exc) from None
        try:  # a key or Entra ID may create the container; a SAS for one blob may not
            from azure.storage.blob import ContainerClient

            container = ContainerClient(self.auth.url.account_url, self.url.container,
                                        credential=cast(Any, self.credential),
                                        retry_total=0, permit_redirects=False)
            self.call(container.create_container)
            self.call(create)
        except Exception as exc:
            if error_code(exc) in _CONFLICTS:
                raise StorageError(self.url.display, _RACE) from None
            raise _wrap(self.url, "cannot create the container and page blob", exc) from None

    # -- the pipeline ---------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        with self.counters.lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    def reader(self, fd: int, plan: list[Chunk], present: RangeSet, work: queue.Queue[Any],
               hasher: SparseMd5 | None) -> None:
        """Read chunks in offset order; queue the non-zero ones the blob lacks."""
        c = self.counters
        data_read = 0
        try:
            for chunk in plan:
                if self.stop.is_set():
                    return
                if present.covers(chunk.offset, chunk.end):
                    c.add(examined=chunk.length, present=chunk.length)
                    continue
                data_read += chunk.length
                if hasher is not None:
                    hasher.wait_for_data(data_read - HASH_WINDOW)
                data = os.pread(fd, chunk.length, chunk.offset)
                if len(data) != chunk.length:
                    raise OSError(5, f"short read at offset {chunk.offset}: the file shrank")
                if is_zero(data):
                    c.add(examined=chunk.length, zero=chunk.length)
                    continue
                self._put(work, (chunk, data))
        except BaseException as exc:
            self.fail(exc)
        finally:
            for _ in range(self.options.workers):
                self._put(work, None, force=True)

    def _put(self, work: queue.Queue[Any], item: object, force: bool = False) -> None:
        while True:
            try:
                work.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and not force:
                    return
                if self.stop.is_set():  # drain so every worker sees its sentinel
                    with contextlib.suppress(queue.Empty):
                        work.get_nowait()

    def worker(self, work: queue.Queue[Any]) -> None:
        """Send Put Page calls until the reader's sentinel."""
        client = blob_client(self.auth, self.credential, self.options.timeout)
        c = self.counters
        while True:
            item = work.get()
            if item is None:
                return
            if self.stop.is_set():
                continue
            chunk, data = item
            try:
                c.add(requests=1)
                self.call(partial(client.upload_page, data, offset=chunk.offset,
                                  length=chunk.length, validate_content=True))
            except retry.Stopped:
                continue
            except BaseException as exc:
                self.fail(exc)
                continue
            with c.lock:
                c.sent += chunk.length
                c.examined += chunk.length
                c.sent_chunks.append(chunk)


def _threads_alive(threads: list[threading.Thread]) -> bool:
    return any(t.is_alive() for t in threads)


def upload_file(path: str | os.PathLike[str], url_text: str, options: UploadOptions,
                size: int, on_progress: Callable[[Progress], None] | None = None
                ) -> UploadResult:
    """Upload ``path`` (``size`` bytes, already judged uploadable by the caller) to the page
    blob at ``url_text`` (or resume an earlier upload).

    Raises:
        InputError: the file or URL cannot be used; StorageError (an InputError) when the
            service refuses or keeps failing, with the URL's signature redacted.
    """
    began = time.monotonic()
    if options.workers < 1 or options.workers > 64:
        raise InputError("--workers", f"must be between 1 and 64, not {options.workers}")
    url = parse_blob_url(read_url_argument(url_text))
    auth = resolve(url)
    fd = open_input(path)
    try:
        up = _Uploader(os.fspath(path), url, auth, size, options)
        result = UploadResult(os.fspath(path), url.display, auth.source, size, 0,
                              workers=options.workers)
        _run(up, fd, result, on_progress)
    finally:
        os.close(fd)
    result.seconds = round(time.monotonic() - began, 3)
    return result


def _decide(up: _Uploader, props: BlobProperties | None, marker: str, result: UploadResult
            ) -> RangeSet:
    """Create, recreate or resume; the page ranges already on the blob (empty when new)."""
    url = up.url
    if props is not None:
        lease = getattr(props.lease, "state", None)
        if lease == "leased":
            raise StorageError(url.display, "the blob is leased: break the lease first "
                                            "(az storage blob lease break)")
    if props is None or up.options.overwrite:
        up.create(marker, props)
        result.recreated = props is not None
        return RangeSet()
    kind = str(props.blob_type).split(".")[-1].lower()
    if kind != "pageblob":
        kind_name = getattr(props.blob_type, "value", props.blob_type)
        raise StorageError(url.display, f"exists as a {kind_name}, not a page blob: "
                                        "--overwrite replaces it")
    meta = {k.lower(): v for k, v in (props.metadata or {}).items()}
    if MARK_SOURCE not in meta:
        raise StorageError(url.display, "exists and was not uploaded by vmimage: --overwrite "
                                        "replaces it")
    if meta[MARK_SOURCE] != marker or props.size != up.size:
        raise StorageError(url.display, "holds an upload of another file, or this file changed "
                                        "since: --overwrite starts again")
    result.resumed = True
    result.already_complete = meta.get(MARK_STATE) == COMPLETE
    return up.page_ranges()


def _run(up: _Uploader, fd: int, result: UploadResult,
         on_progress: Callable[[Progress], None] | None) -> None:
    marker = fingerprint(fd)
    props = up.properties()
    present = _decide(up, props, marker, result)
    extents = aligned_extents(fd, up.size)
    plan = list(chunks(extents))
    result.data_bytes = sum(c.length for c in plan)
    want_md5 = up.options.md5
    if result.already_complete and props is not None:
        has_md5 = bool(props.content_settings.content_md5)
        if has_md5 or not want_md5:
            want_md5 = False  # nothing to do but check
            stored = props.content_settings.content_md5
            if stored:
                result.content_md5 = base64.b64encode(bytes(stored)).decode()
    hasher = SparseMd5(fd, up.size, extents, up.stop) if want_md5 else None
    work: queue.Queue[Any] = queue.Queue(maxsize=2 * up.options.workers)
    threads: list[threading.Thread] = [
        threading.Thread(target=up.reader, args=(fd, plan, present, work, hasher),
                         name="vmimage-reader", daemon=True)]
    threads += [threading.Thread(target=up.worker, args=(work,), name=f"vmimage-put-{i}",
                                 daemon=True) for i in range(up.options.workers)]
    try:
        if hasher is not None:
            hasher.start()
        for t in threads:
            t.start()
        _wait(up, threads, hasher, result.data_bytes, on_progress)
    except BaseException:
        up.stop.set()
        raise
    c = up.counters
    result.sent_bytes, result.zero_bytes, result.present_bytes = c.sent, c.zero, c.present
    result.requests, result.retries = c.requests, c.retries
    if up.failure is not None:
        exc = up.failure
        if isinstance(exc, OSError) and not hasattr(exc, "response"):
            raise InputError(up.path, f"read error: {exc.strerror or exc}") from None
        raise _wrap(up.url, "upload failed", exc)
    _verify(up, extents, c.sent_chunks, result)
    if up.options.verify:
        result.mismatch = compare_content(up, fd, plan)
        result.verified = result.mismatch is None
        if result.mismatch is not None:
            up.stop.set()
            return  # neither Content-MD5 nor "complete" for content the blob does not hold
    if hasher is not None:
        if hasher.error is not None:
            raise InputError(up.path, f"read error while hashing: {hasher.error}")
        assert hasher.digest is not None
        _finish(up, hasher.digest, result)
    elif not result.already_complete:
        _finish(up, None, result)


def _wait(up: _Uploader, threads: list[threading.Thread], hasher: SparseMd5 | None,
          todo: int, on_progress: Callable[[Progress], None] | None) -> None:
    """Poll the threads, report progress, stop everything at the first failure."""
    c = up.counters
    while True:
        uploading = _threads_alive(threads)
        hashing = hasher is not None and hasher.is_alive()
        if on_progress is not None:
            on_progress(Progress(todo, c.examined, c.sent, hasher.position if hasher else 0,
                                 up.size, hasher is not None, uploading))
        if up.failure is not None:
            up.stop.set()
        if not uploading and not hashing:
            return
        if up.failure is not None and not uploading:
            return
        time.sleep(0.1)


def _verify(up: _Uploader, extents: list[tuple[int, int]], sent: list[Chunk],
            result: UploadResult) -> None:
    """The blob's length is the file's, it holds every chunk we sent or found, and no page
    lies where the file has no data."""
    props = up.properties()
    if props is None:
        raise StorageError(up.url.display, "the blob vanished during the upload")
    if props.size != up.size:
        raise StorageError(up.url.display, f"blob length {props.size} differs from the file's "
                                           f"{up.size}")
    ranges = up.page_ranges()
    result.page_ranges = len(ranges)
    missing = [ch for ch in sent if not ranges.covers(ch.offset, ch.end)]
    if missing:
        raise StorageError(up.url.display, f"{len(missing)} chunks sent are missing from the "
                                           f"blob's page ranges (first at offset "
                                           f"{missing[0].offset})")
    stray = ranges.minus(RangeSet(extents))
    if len(stray):
        first = next(iter(stray))
        raise StorageError(up.url.display, f"the blob holds pages where the file has none "
                                           f"(first at offset {first[0]}): --overwrite "
                                           "uploads it again")


def _finish(up: _Uploader, digest: bytes | None, result: UploadResult) -> None:
    """Set Content-MD5 (keeping the other content settings) and mark the upload complete."""
    try:
        props = up.call(up.client.get_blob_properties)
        if digest is not None:
            settings = props.content_settings
            settings.content_md5 = bytearray(digest)
            up.call(lambda: up.client.set_http_headers(content_settings=settings))
            result.content_md5 = base64.b64encode(digest).decode()
        metadata = dict(props.metadata or {})
        metadata[MARK_STATE] = COMPLETE
        up.call(lambda: up.client.set_blob_metadata(metadata))
    except StorageError:
        raise
    except Exception as exc:
        raise _wrap(up.url, "cannot finish the upload", exc) from None


def compare_content(up: _Uploader, fd: int, plan: list[Chunk]) -> str | None:
    """Read every data chunk back from the blob and compare it with the file (``--verify``).

    Page ranges only say where the blob holds pages, not what they hold: a byte changed on the
    way by a server that does not check Content-MD5, or a page written by someone else, shows
    only here. Holes in the file are not read (the stray-page check covers them). The chunks
    are compared in parallel, each worker reading its own 4 MiB, so memory stays bounded.

    Returns:
        None when everything matches, else the first differing range, as a sentence.
    """
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def differs(chunk: Chunk) -> int | None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = blob_client(up.auth, up.credential, up.options.timeout)
        stored = up.call(lambda: client.download_blob(offset=chunk.offset, length=chunk.length,
                                                      max_concurrency=1).readall())
        return _first_difference(os.pread(fd, chunk.length, chunk.offset), bytes(stored))

    try:
        with ThreadPoolExecutor(max_workers=up.options.workers,
                                thread_name_prefix="vmimage-verify") as pool:
            for chunk, at in zip(plan, pool.map(differs, plan), strict=True):
                if at is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                    return (f"the stored content differs from the file at byte "
                            f"{chunk.offset + at} (range {chunk.offset}-{chunk.end - 1}): "
                            "--overwrite uploads it again")
    except StorageError:
        raise
    except Exception as exc:
        raise _wrap(up.url, "cannot read the blob back to verify it", exc) from None
    return None


def _first_difference(mine: bytes, stored: bytes) -> int | None:
    """The offset of the first byte where two chunks differ (a length counts), or None."""
    if mine == stored:
        return None
    for i, (a, b) in enumerate(zip(mine, stored, strict=False)):
        if a != b:
            return i
    return min(len(mine), len(stored))
