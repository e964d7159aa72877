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
    push_cmd = command(submit, "push", push, push.__doc__)
    push_cmd.add_argument("manifest", metavar="MANIFEST", type=Path,
                          help="the offer manifest (offer.yaml)")
    push_cmd.add_argument("--to", metavar="URL", required=True,
                          help="the configure endpoint: Partner Center's "
                               "(https://graph.microsoft.com/rp/product-ingestion) or a "
                               "vmimage service's (https://HOST/rp/product-ingestion)")
    push_cmd.add_argument("--target", choices=("draft", "preview", "live"),
                          help="also submit the offer: preview (certification, then preview "
                               "audience) or live (publish)")
    push_cmd.add_argument("--auth", choices=("auto", "entra", "token"), default="auto",
                          help="entra: a Microsoft Entra ID token (azure-identity: environment, "
                               "managed identity, Azure CLI...); token: the API token in "
                               "--token-env; auto (default): entra for Partner Center")
    push_cmd.add_argument("--token-env", metavar="VAR", default="VMIMAGE_TOKEN",
                          help="the environment variable holding the service's API token "
                               "(default VMIMAGE_TOKEN)")
    push_cmd.add_argument("--timeout", metavar="SECONDS", type=float, default=600.0,
                          help="how long to wait for the job (default 600)")
    add_profile(push_cmd)
    push_cmd.add_argument("--sas-env", metavar="NAME",
                          help="name of an environment variable holding SAS URIs or a token")
    push_cmd.add_argument("--sas-file", metavar="FILE", type=Path,
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


def push(args: argparse.Namespace) -> int:
    """Send the manifest's Partner Center documents (those `submit render --format
    partner-center` renders, with a submission when --target is given) to a configure
    endpoint, and wait for the job.

    Exit 0 the job succeeded, 1 it failed (each error printed), 2 the manifest, the tokens or
    the endpoint cannot be used (or the wait ended first)."""
    import json

    from vmimage.app import submit
    from vmimage.app.publishing import ingestclient
    from vmimage.errors import InputError

    if not 0 < args.timeout <= 7 * 86400:
        raise InputError("--timeout", "must be between 0 and 604800 seconds")
    base = ingestclient.endpoint(args.to)
    result = submit.render(args.manifest, "partner-center", resolve_profile(args.profile),
                           args.sas_env, args.sas_file)
    if result.failed:
        for f in result.failed:
            _err(f"vmimage: {f.check_id}: {f.message}")
        _err(f"vmimage: {args.manifest}: {len(result.failed)} rule(s) failed: nothing sent")
        return 1
    rendered = result.rendered
    assert rendered is not None
    if rendered.problems or rendered.warnings:
        for line in [*rendered.problems, *rendered.warnings]:
            _err(f"vmimage: {args.manifest}: {line}")
        raise InputError(args.manifest, "the documents are not complete: nothing sent "
                                        "(give every disk its SAS URI: --sas-env/--sas-file)")
    document = json.loads(rendered.documents["configure.json"])
    offer_id = document["resources"][0]["product"]["externalId"]
    token = ingestclient.bearer(base, args.auth, args.token_env)
    pushed = ingestclient.push(base, token, ingestclient.with_submission(document, offer_id,
                                                                         args.target),
                               args.timeout)
    if pushed.status != "completed":
        raise InputError("--timeout", f"job {pushed.job_id} is "
                                      f"still {pushed.status} after {args.timeout:.0f} s: "
                                      f"GET {base}/configure/{pushed.job_id}/status")
    if pushed.result != "succeeded":
        for problem in pushed.errors:
            _err(f"vmimage: {problem.get('code')}: {problem.get('message')}")
        _err(f"vmimage: job {pushed.job_id}: {pushed.result}")
        return 1
    print(f"vmimage: job {pushed.job_id}: succeeded" +
          (f" (submitted to {args.target})" if args.target else ""))
    return 0
