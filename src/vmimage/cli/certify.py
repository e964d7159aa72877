"""``vmimage certify``: check every local disk of an offer and write the certification package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, profile_option


def certify(
    manifest: Annotated[Path, typer.Argument(help="The offer manifest (offer.yaml).",
                                             readable=False)],
    output: Annotated[Path, typer.Option(
        help="Directory for the certification package (created 0700, files 0600).",
        file_okay=False, writable=False, readable=False)] = Path("certification"),
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress on stderr.")] = False,
) -> int:
    """Run vhd validate and check on each local disk of each SKU version and write the
    package (results in JSON and HTML, log, questionnaire, summary); exit 0 when certified,
    1 when not (a failure, or a disk that could not be checked)."""
    from vmimage.offer.certify import certify_offer, write_package
    from vmimage.report.console import printable

    chosen = profile_option(profile)

    def progress(text: str) -> None:
        if not quiet:
            print(printable(text), file=sys.stderr)

    cert = certify_offer(manifest, chosen, progress)
    write_package(cert, output)
    print(f"{cert.verdict}: package in {output}/ (summary.txt, summary.html, summary.json)")
    return 0 if cert.certified else 1
