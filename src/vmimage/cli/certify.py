"""``vmimage certify``: check every local disk of an offer and write the certification package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.cli.common import add_profile, resolve_profile
from vmimage.cli.parsing import Parser, command

if TYPE_CHECKING:
    from collections.abc import Callable

    from vmimage.app.certify import BlobUrl, Certification

CONTAINER_URL_HELP = ("Blob container for --upload (a SAS may ride in its query), or @FILE to "
                      "read it from a file, which keeps a SAS out of the process list. Default: "
                      "the container of the first OS disk that names a blob URL.")


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage certify``."""
    p = command(sub, "certify", run, run.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path,
                   help="the offer manifest (offer.yaml)")
    p.add_argument("--output", "-o", metavar="DIR", type=Path, default=Path("certification"),
                   help="directory for the certification package (created 0700, files 0600; "
                        "default ./certification)")
    add_profile(p)
    p.add_argument("--upload", action="store_true",
                   help="also save the package as block blobs under "
                        "certification/<offer>/<timestamp>/ in the VHDs' container "
                        "(CRT-ARTIFACTS)")
    p.add_argument("--container-url", metavar="URL|@FILE", help=CONTAINER_URL_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    """Run vhd validate and check on each local disk of each SKU version and write the
    certification package (results in JSON and HTML, log, questionnaire, summary).

    Exit 0 when certified, 1 when not (a failure, or a disk that could not be checked), 2
    when --upload fails (the local package is written first and stays).

    Upload credentials, as for vmimage upload: a SAS in the URL, AZURE_STORAGE_SAS_TOKEN,
    AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, or Entra ID (docs/storage.md).
    """
    from vmimage.app.certify import certify_offer, write_package
    from vmimage.errors import InputError
    from vmimage.textsafe import printable

    output: Path = args.output
    container: BlobUrl | None = None
    if args.container_url is not None:
        if not args.upload:
            raise InputError("--container-url", "is used only with --upload")
        # Parsed before the checks run, so a mistyped URL costs seconds, not a whole run.
        container = _parse_container(args.container_url)

    def progress(text: str) -> None:
        if not args.quiet:
            print(printable(text), file=sys.stderr)

    cert = certify_offer(args.manifest, resolve_profile(args.profile), progress)
    write_package(cert, output)
    print(printable(f"{cert.verdict}: package in {output}/ (summary.txt, summary.html, "
                    "summary.json)"))
    if args.upload:
        _upload(cert, output, container, progress)
    return 0 if cert.certified else 1


def _parse_container(text: str) -> BlobUrl:
    from vmimage.app.certify import parse_container

    return parse_container(text)


def _upload(cert: Certification, output: Path, container: BlobUrl | None,
            progress: Callable[[str], None]) -> None:
    from vmimage.app.certify import upload_package
    from vmimage.textsafe import printable

    shown, names = upload_package(cert, output, container, progress)
    print(printable(f"uploaded {len(names)} files to {shown}"))
