"""``vmimage certify``: check every local disk of an offer and write the certification package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, profile_option

if TYPE_CHECKING:
    from collections.abc import Callable

    from vmimage.app.certify import BlobUrl, Certification

CONTAINER_URL_HELP = ("Blob container for --upload (a SAS may ride in its query), or @FILE to "
                      "read it from a file, which keeps a SAS out of the process list. Default: "
                      "the container of the first OS disk that names a blob URL.")


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
    print(printable(f"{cert.verdict}: package in {output}/ (summary.txt, summary.html, "
                    "summary.json)"))
    if upload:
        _upload(cert, output, container, progress)
    return 0 if cert.certified else 1


def _parse_container(text: str) -> BlobUrl:
    from vmimage.app.certify import parse_container

    return parse_container(text)


def _upload(cert: Certification, output: Path, container: BlobUrl | None,
            progress: Callable[[str], None]) -> None:
    from vmimage.app.certify import upload_package
    from vmimage.report.console import printable

    shown, names = upload_package(cert, output, container, progress)
    print(printable(f"uploaded {len(names)} files to {shown}"))
