"""``vmimage sas create | verify``: SAS URIs for a Marketplace submission."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, URL_ARG_HELP, profile_option
from vmimage.errors import InputError
from vmimage.findings import worst_exit_code

app = typer.Typer(help="Make and verify the SAS URIs a Marketplace submission needs.",
                  no_args_is_help=True)

ENV_SAS_URI = "VMIMAGE_SAS_URI"


@app.command()
def create(
    blob_url: Annotated[str, typer.Argument(metavar="BLOB_URL", help=URL_ARG_HELP)],
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    container: Annotated[bool, typer.Option(
        "--container/--blob-scope",
        help="A container SAS (sr=c, sp=rl) with the blob's path appended, as the guide made "
             "it; --blob-scope signs the blob alone (sr=b, sp=r).")] = True,
    days: Annotated[int | None, typer.Option(
        help="Validity beyond the profile's minimum (business days in azure-2015, days in "
             "azure-current); never less than the minimum.")] = None,
    user_delegation: Annotated[bool, typer.Option(
        "--user-delegation", help="Sign with an Entra ID user delegation key (refused: it "
                                  "cannot outlive 7 days).")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the SAS URI to this file (mode 0600) and print only a "
                               "redacted summary.")] = None,
) -> int:
    """Make a read-and-list SAS URI by the profile's rules, signed with the account key.

    The key: AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING.

    Without --output the URI itself, a secret, is printed on stdout.
    """
    from vmimage.app.sas import create
    from vmimage.privatefile import write_private
    from vmimage.report.console import console, printable

    made = create(blob_url, profile_option(profile), blob_scope=not container, days=days,
                  user_delegation=user_delegation)
    if output is not None:
        write_private(output, made.url.url + "\n")
        console().print(printable(f"{made.summary()}\nwritten to {output} (mode 0600)"),
                        markup=False)
    else:
        console(stderr=True).print(printable(made.summary()), markup=False)
        print(made.url.url)
    return 0


@app.command()
def verify(
    uris: Annotated[list[str] | None, typer.Argument(
        metavar="SAS_URI|@FILE",
        help=f"SAS URIs, or @FILE with one per line; default: ${ENV_SAS_URI}. A file keeps "
             "the signature out of the process list.")] = None,
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Check the URI's text only; do not open the blob.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
) -> int:
    """Check SAS URIs against every rule of the guide; exit 1 when one fails.

    Each rule is a finding with its requirement ID (SAS-PERM, SAS-START, SAS-DURATION, SAS-BLOB,
    SAS-SCHEME, SAS-WORKS; SAS-EACH across several URIs).
    """
    from vmimage.app.sas import verify
    from vmimage.report.console import console, render_findings, summary_line

    texts = _collect(uris or [])
    chosen = profile_option(profile)
    findings = verify(texts, chosen, online=not offline)
    if as_json:
        print(json.dumps({"profile": chosen, "uris": len(texts),
                          "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        out = console()
        out.print(render_findings(findings, f"SAS URIs ({chosen})"))
        out.print(summary_line(findings))
    return worst_exit_code(findings)


def _collect(args: list[str]) -> list[str]:
    """URIs from the arguments, @FILEs (every non-empty line) and the environment."""
    from vmimage.inputs import read_bounded_text, read_url_argument

    texts: list[str] = []
    for arg in args:
        if arg.startswith("@"):
            path = Path(arg[1:])
            lines = read_bounded_text(path).splitlines()
            found = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            if not found:
                raise InputError(path, "the URI file holds no URI")
            texts += found
        else:
            texts.append(read_url_argument(arg))
    if not texts:
        env = os.environ.get(ENV_SAS_URI, "").strip()
        if not env:
            raise InputError("sas verify", f"no SAS URI: give one, @FILE, or set {ENV_SAS_URI}")
        texts = [env]
    return texts
