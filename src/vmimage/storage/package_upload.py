"""Upload a local directory (the certification package) as block blobs under a prefix.

The guide keeps the certification package "in the same storage container as the VHDs"
(CRT-ARTIFACTS), where Microsoft's reviewers can download it. The files are small reports, so
each goes up in one Put Blob call as a *block* blob (not a page blob: these are documents to
open in a browser), with a content type from its extension so a browser shows the HTML and
JSON instead of offering a download. A rerun uploads to a new timestamped prefix, but an
existing blob of the same name is overwritten: the latest run is what the reviewer should see.

Credentials, retries and redaction are those of ``vmimage upload``
(:mod:`vmimage.storage.credentials`, :mod:`vmimage.storage.retry`,
:mod:`vmimage.storage.redact`): a package holds no secret of its own, but the container URL
may carry a SAS, and the SDK's errors quote it.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from vmimage.errors import InputError
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, parse_blob_url
from vmimage.storage.credentials import blob_client, make_credential, resolve
from vmimage.storage.errors import StorageError, describe
from vmimage.storage.redact import redact

#: Content types by extension; anything else is served as bytes.
CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html",
    ".txt": "text/plain",
    ".log": "text/plain",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Marks the parsing placeholder; never sent (the blob is replaced before any request).
_PLACEHOLDER = "_vmimage_container_placeholder_"


def content_type(name: str) -> str:
    """The Content-Type a browser needs to show ``name`` rather than download it."""
    return CONTENT_TYPES.get(Path(name).suffix.lower(), DEFAULT_CONTENT_TYPE)


def container_of_blob(url: BlobUrl) -> BlobUrl:
    """The container holding ``url`` (same account, container and SAS; no blob)."""
    return dataclasses.replace(url, blob="")


def parse_container_url(text: str, source: str = "--container-url") -> BlobUrl:
    """Parse a container URL (``https://ACCOUNT.blob.../CONTAINER[?SAS]``); blob left empty.

    :func:`~vmimage.storage.blob_url.parse_blob_url` knows every URL shape (host- and
    path-style, sovereign clouds, emulators) and registers the SAS as a secret; we borrow it
    by naming a placeholder blob rather than writing a second parser.

    Raises:
        InputError: not an http(s) URL naming an account and a container, or it names a blob.
    """
    parts = urlsplit(text.strip())
    path = parts.path.rstrip("/")
    try:
        url = parse_blob_url(urlunsplit(parts._replace(path=f"{path}/{_PLACEHOLDER}")), source)
    except InputError as exc:
        problem = exc.problem.replace(f"/{_PLACEHOLDER}", "")
        if " names no " in problem:  # the blob parser's wording asks for a blob
            problem = f"{redact(text.strip())!r} names no account and container"
        raise InputError(source, f"{problem}; expected a container URL, "
                                 "https://ACCOUNT.blob.core.windows.net/CONTAINER or "
                                 "path-style http://HOST:PORT/ACCOUNT/CONTAINER") from None
    if url.blob != _PLACEHOLDER:
        raise InputError(source, f"{redact(text.strip())!r} names a blob, not a container "
                                 "(give the URL of the container itself)")
    return container_of_blob(url)


def blob_display(container: BlobUrl, name: str) -> str:
    """A blob's or prefix's URL as we print it (any SAS removed)."""
    return dataclasses.replace(container, blob=name, sas="").display


def package_files(directory: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``directory`` as (relative POSIX name, path), sorted.

    Symbolic links are skipped: a link could name a file outside the package, and the package
    ``write_package`` makes never holds one.
    """
    found: list[tuple[str, Path]] = []
    for root, _dirs, files in os.walk(directory):
        for file in files:
            path = Path(root) / file
            if path.is_file() and not path.is_symlink():
                found.append((path.relative_to(directory).as_posix(), path))
    return sorted(found)


def upload_directory(directory: Path, container: BlobUrl, prefix: str,
                     policy: retry.RetryPolicy | None = None,
                     timeout: float | None = None) -> list[str]:
    """Upload every file of ``directory`` as a block blob named ``prefix + relative path``,
    overwriting; returns the blob names in upload order.

    Raises:
        InputError: the directory or a file cannot be read, or the credential cannot be used;
            StorageError (an InputError) when the service refuses a request, naming the blob
            without its SAS.
    """
    from azure.storage.blob import BlobType, ContentSettings

    policy = policy or retry.RetryPolicy()
    if not directory.is_dir():
        raise InputError(directory, "is not a directory")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    auth = resolve(container)
    credential = make_credential(auth)
    names: list[str] = []
    for relative, path in package_files(directory):
        name = prefix + relative
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read: {os.strerror(exc.errno or 5)}") from None
        blob_auth = dataclasses.replace(auth, url=dataclasses.replace(auth.url, blob=name))
        client = blob_client(blob_auth, credential, timeout)
        settings = ContentSettings(content_type=content_type(name))
        try:
            retry.call(partial(client.upload_blob, data, blob_type=BlobType.BLOCKBLOB,
                               overwrite=True, content_settings=settings), policy)
        except Exception as exc:
            raise StorageError(blob_display(container, name),
                               f"cannot upload: {describe(exc)}") from None
        names.append(name)
    return names
