"""``vmimage submit render``: the documents the marketplace needs, from the manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.cli.common import add_profile, resolve_profile
from vmimage.cli.parsing import Parser, command, group

if TYPE_CHECKING:
    from vmimage.app.submit import Rendered

FORMATS = ("classic-xml", "partner-center")


def _err(text: str) -> None:
    from vmimage.secrets import redact
    from vmimage.textsafe import printable

    print(printable(redact(text)), file=sys.stderr)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage submit ...``."""
    submit = group(sub, "submit", "Render submission documents from an offer manifest.")
    p = command(submit, "render", render, render.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path,
                   help="the offer manifest (offer.yaml)")
    p.add_argument("--format", "-f", dest="fmt", choices=FORMATS, required=True,
                   help="the documents to render: classic-xml (the guide's Create VM Image "
                        "bodies) or partner-center (the plan's technical configuration)")
    p.add_argument("--output", "-o", metavar="DIR", type=Path,
                   help="write the documents into this directory (files 0600: they hold SAS "
                        "URIs); without it they are printed with every SAS signature redacted")
    add_profile(p)
    p.add_argument("--sas-env", metavar="NAME",
                   help="name of an environment variable holding SAS URIs or a token (never "
                        "the token itself: arguments show in ps)")
    p.add_argument("--sas-file", metavar="FILE", type=Path,
                   help="file holding SAS URIs or a token, one per line")


def render(args: argparse.Namespace) -> int:
    """Render the Create VM Image request bodies (classic-xml, the guide's §4.1) or the
    Partner Center plan technical configuration (partner-center).

    Exit 1 when the manifest breaks a rule, 2 when it cannot be rendered.
    """
    from vmimage.app import submit
    from vmimage.report.console import describe_evidence

    manifest, fmt = args.manifest, args.fmt
    result = submit.render(manifest, fmt, resolve_profile(args.profile), args.sas_env,
                           args.sas_file)
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
    if args.output is not None:
        from vmimage.textsafe import printable

        for path in submit.write(rendered, args.output):
            print(printable(f"wrote {path}"))
    else:
        _print(rendered, fmt, tokens_given=bool(args.sas_env or args.sas_file))
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
