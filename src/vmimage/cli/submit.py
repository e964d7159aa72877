"""``vmimage submit render``: the documents the marketplace needs, from the manifest."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, choice, profile_option
from vmimage.errors import InputError
from vmimage.findings import Status

if TYPE_CHECKING:
    from vmimage.offer.submission import Rendered

FORMATS = ("classic-xml", "partner-center")
#: Rules about local files: rendering needs blob URLs only, not the VHDs on this machine.
_LOCAL_ONLY = frozenset({"OFFER-DISK-FILE"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

app = typer.Typer(help="Render submission documents from an offer manifest.",
                  no_args_is_help=True)


def _err(text: str) -> None:
    from vmimage.report.console import printable
    from vmimage.secrets import redact

    print(printable(redact(text)), file=sys.stderr)


@app.command()
def render(
    manifest: Annotated[Path, typer.Argument(help="The offer manifest (offer.yaml).",
                                             readable=False)],
    fmt: Annotated[str, typer.Option("--format", help=f"{' or '.join(FORMATS)}.")],
    output: Annotated[Path | None, typer.Option(
        help="Write the documents into this directory (files 0600: they hold SAS URIs). "
             "Without it they are printed with every SAS signature redacted.",
        file_okay=False, writable=False, readable=False)] = None,
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    sas_env: Annotated[str | None, typer.Option(
        help="Name of an environment variable holding SAS URIs or a token (never the token "
             "itself: arguments show in ps).")] = None,
    sas_file: Annotated[Path | None, typer.Option(
        help="File holding SAS URIs or a token, one per line.", readable=False)] = None,
) -> int:
    """Render the Create VM Image request bodies (classic-xml, the guide's §4.1) or the Partner
    Center plan technical configuration (partner-center); exit 1 when the manifest breaks a
    rule, 2 when it cannot be rendered."""
    from vmimage.offer.classic import render_classic
    from vmimage.offer.manifest import load_manifest
    from vmimage.offer.partner_center import render_partner_center
    from vmimage.offer.rules import validate_offer
    from vmimage.offer.sas import read_tokens, redact_finding
    from vmimage.report.console import describe_evidence

    choice("--format", "format", fmt, FORMATS)
    if fmt == "classic-xml" and (sas_env or sas_file):
        raise InputError("--sas-env/--sas-file", "the classic request names blobs in your own "
                                                 "storage account: it takes no SAS tokens")
    loaded = load_manifest(manifest)
    findings = validate_offer(loaded, profile_option(profile), probe=None)
    failed = [redact_finding(f) for f in findings
              if f.status is Status.FAIL and f.check_id not in _LOCAL_ONLY]
    if failed:
        for f in failed:
            where = "; ".join(describe_evidence(e) for e in f.evidence)
            _err(f"vmimage: {f.check_id}: {f.message}" + (f" ({where})" if where else ""))
        _err(f"vmimage: {manifest}: {len(failed)} rule(s) failed: nothing rendered "
             "(vmimage offer validate shows every finding)")
        return 1
    model = loaded.require()
    if fmt == "classic-xml":
        rendered = render_classic(model)
    else:
        rendered = render_partner_center(model, read_tokens(sas_env, sas_file))
    for warning in rendered.warnings:
        _err(f"vmimage: warning: {warning}")
    if rendered.problems:
        for problem in rendered.problems:
            _err(f"vmimage: {manifest}: {problem}")
        return 2
    if output is not None:
        _write(rendered, output)
    else:
        _print(rendered, fmt, tokens_given=bool(sas_env or sas_file))
    return 0


def _write(rendered: Rendered, output: Path) -> None:
    from vmimage.privatefile import private_dir, write_private

    private_dir(output)
    for name, text in rendered.documents.items():
        path = write_private(output / _SAFE_NAME.sub("_", name), text)
        print(f"wrote {path}")


def _print(rendered: Rendered, fmt: str, tokens_given: bool) -> None:
    from vmimage.offer.classic import request_line
    from vmimage.secrets import redact

    if fmt == "classic-xml":
        for name, text in rendered.documents.items():
            print(f"# {request_line(name)}")
            print(text, end="")
    else:
        print(redact(rendered.documents["configure.json"]), end="")
    if tokens_given:
        _err("vmimage: SAS signatures are redacted on standard output: use --output DIR to "
             "write the submission")
