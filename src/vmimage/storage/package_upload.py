"""Upload a local directory (the certification package) as block blobs under a prefix.

The guide keeps the certification package "in the same storage container as the VHDs"
(CRT-ARTIFACTS), where Microsoft's reviewers can download it. The files are small reports, so
each goes up in one Put Blob call as a *block* blob (not a page blob: these are documents to
open in a browser), with a content type from its extension so a browser shows the HTML and
JSON instead of offering a download. A rerun uploads to a new timestamped prefix, but an
existing blob of the same name is overwritten: the latest run is what the reviewer should see.

Credentials, retries and redaction are those of ``vmimage upload``
(:mod:`vmimage.storage.credentials`, :mod:`vmimage.storage.retry`,
:mod:`vmimage.secrets`): a package holds no secret of its own, but the container URL
may carry a SAS, and the SDK's errors quote it.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from pathlib import Path

from vmimage.errors import InputError
from vmimage.inputs import open_input
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, parse_blob_url
from vmimage.storage.credentials import blob_client, make_credential, resolve
from vmimage.storage.errors import StorageError, describe

#: Content types by extension; anything else is served as bytes.
CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html",
    ".txt": "text/plain",
    ".log": "text/plain",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def content_type(name: str) -> str:
    """The Content-Type a browser needs to show ``name`` rather than download it."""
    return CONTENT_TYPES.get(Path(name).suffix.lower(), DEFAULT_CONTENT_TYPE)


def container_of_blob(url: BlobUrl) -> BlobUrl:
    """The container holding ``url`` (same account, container and SAS; no blob)."""
    return dataclasses.replace(url, blob="")


def parse_container_url(text: str, source: str = "--container-url") -> BlobUrl:
    """Parse a container URL (``https://ACCOUNT.blob.../CONTAINER[?SAS]``); blob left empty.

    Raises:
        InputError: not an http(s) URL naming an account and a container, or it names a blob.
    """
    return parse_blob_url(text, source, kind="container")


def blob_display(container: BlobUrl, name: str) -> str:
    """A blob's or prefix's URL as we print it (any SAS removed)."""
    return dataclasses.replace(container, blob=name, query="").display


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
        with os.fdopen(open_input(path), "rb") as file:
            try:
                data = file.read()
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
