"""``vmimage certify``: check every local disk of an offer and write the certification package."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, profile_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from vmimage.app.certify import Certification
    from vmimage.storage.blob_url import BlobUrl

CONTAINER_URL_HELP = ("Blob container for --upload (a SAS may ride in its query), or @FILE to "
                      "read it from a file, which keeps a SAS out of the process list. Default: "
                      "the container of the first OS disk that names a blob URL.")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def certify(
    manifest: Annotated[Path, typer.Argument(help="The offer manifest (offer.yaml).",
                                             readable=False)],
    output: Annotated[Path, typer.Option(
        help="Directory for the certification package (created 0700, files 0600).",
        file_okay=False, writable=False, readable=False)] = Path("certification"),
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    upload: Annotated[bool, typer.Option(
        "--upload", help="Also save the package as block blobs under "
        "certification/<offer>/<timestamp>/ in the VHDs' container (CRT-ARTIFACTS).")] = False,
    container_url: Annotated[str | None, typer.Option(
        "--container-url", metavar="URL|@FILE", help=CONTAINER_URL_HELP)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress on stderr.")] = False,
) -> int:
    """Run vhd validate and check on each local disk of each SKU version and write the
    package (results in JSON and HTML, log, questionnaire, summary); exit 0 when certified,
    1 when not (a failure, or a disk that could not be checked), 2 when --upload fails (the
    local package is written first and stays).

    Upload credentials, as for vmimage upload: a SAS in the URL, AZURE_STORAGE_SAS_TOKEN,
    AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, or Entra ID (docs/storage.md).
    """
    from vmimage.app.certify import certify_offer, write_package
    from vmimage.errors import InputError
    from vmimage.report.console import printable

    chosen = profile_option(profile)
    container: BlobUrl | None = None
    if container_url is not None:
        if not upload:
            raise InputError("--container-url", "is used only with --upload")
        # Parsed before the checks run, so a mistyped URL costs seconds, not a whole run.
        container = _parse_container(container_url)

    def progress(text: str) -> None:
        if not quiet:
            print(printable(text), file=sys.stderr)

    cert = certify_offer(manifest, chosen, progress)
    write_package(cert, output)
    print(f"{cert.verdict}: package in {output}/ (summary.txt, summary.html, summary.json)")
    if upload:
        _upload(cert, output, container, progress)
    return 0 if cert.certified else 1


def _parse_container(text: str) -> BlobUrl:
    from vmimage.storage.blob_url import read_url_argument
    from vmimage.storage.package_upload import parse_container_url

    return parse_container_url(read_url_argument(text))


def _default_container(cert: Certification) -> BlobUrl | None:
    """The container of the OS disk of the first SKU version whose OS disk names a blob URL:
    the guide wants the package beside the VHDs (CRT-ARTIFACTS)."""
    from vmimage.storage.blob_url import parse_blob_url
    from vmimage.storage.package_upload import container_of_blob

    for image in cert.images:
        for disk in image.disks:
            if disk.label == "os" and disk.url:
                return container_of_blob(parse_blob_url(disk.url, "the OS disk's blob URL"))
    return None


def _upload(cert: Certification, output: Path, container: BlobUrl | None,
            progress: Callable[[str], None]) -> None:
    from vmimage.errors import InputError
    from vmimage.report.console import printable
    from vmimage.storage.package_upload import blob_display, upload_directory

    container = container or _default_container(cert)
    if container is None:
        raise InputError("--upload", "no OS disk names a blob URL (url, or storage."
                                     "container_url with a file): give --container-url")
    offer = _UNSAFE.sub("_", cert.manifest.offer.id).lstrip(".") or "_"
    prefix = f"certification/{offer}/{cert.started.strftime('%Y%m%dT%H%M%SZ')}/"
    progress(f"uploading the package to {blob_display(container, prefix)}")
    names = upload_directory(output, container, prefix)
    print(printable(f"uploaded {len(names)} files to {blob_display(container, prefix)}"))
