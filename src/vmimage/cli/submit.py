"""``vmimage submit render``: the documents the marketplace needs, from the manifest."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, choice, profile_option

if TYPE_CHECKING:
    from vmimage.app.submit import Rendered

FORMATS = ("classic-xml", "partner-center")

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
    from vmimage.app import submit
    from vmimage.report.console import describe_evidence

    choice("--format", "format", fmt, FORMATS)
    result = submit.render(manifest, fmt, profile_option(profile), sas_env, sas_file)
    if result.failed:
        for f in result.failed:
            where = "; ".join(describe_evidence(e) for e in f.evidence)
            _err(f"vmimage: {f.check_id}: {f.message}" + (f" ({where})" if where else ""))
        _err(f"vmimage: {manifest}: {len(result.failed)} rule(s) failed: nothing rendered "
             "(vmimage offer validate shows every finding)")
        return 1
    rendered = result.rendered
    assert rendered is not None
    for warning in rendered.warnings:
        _err(f"vmimage: warning: {warning}")
    if rendered.problems:
        for problem in rendered.problems:
            _err(f"vmimage: {manifest}: {problem}")
        return 2
    if output is not None:
        for path in submit.write(rendered, output):
            from vmimage.report.console import printable

            print(printable(f"wrote {path}"))
    else:
        _print(rendered, fmt, tokens_given=bool(sas_env or sas_file))
    return 0


def _print(rendered: Rendered, fmt: str, tokens_given: bool) -> None:
    from vmimage.app.submit import request_line
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
