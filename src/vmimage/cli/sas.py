"""``vmimage sas create | verify``: SAS URIs for a Marketplace submission."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vmimage.cli.common import (
    add_profile,
    add_report_options,
    plan_outputs,
    resolve_profile,
    run_report,
)
from vmimage.cli.options import URL_ARG_HELP
from vmimage.cli.parsing import Parser, command, group
from vmimage.errors import InputError

ENV_SAS_URI = "VMIMAGE_SAS_URI"


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage sas ...``."""
    sas = group(sub, "sas", "Make and verify the SAS URIs a Marketplace submission needs.")
    p = command(sas, "create", create, create.__doc__)
    p.add_argument("blob_url", metavar="BLOB_URL", help=URL_ARG_HELP)
    add_profile(p)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--container", dest="container", action="store_true", default=True,
                       help="a container SAS (sr=c, sp=rl) with the blob's path appended, as "
                            "the guide made it (default)")
    scope.add_argument("--blob-scope", dest="container", action="store_false",
                       help="sign the blob alone (sr=b, sp=r)")
    p.add_argument("--days", type=int,
                   help="validity beyond the profile's minimum (business days in azure-2015, "
                        "days in azure-current); never less than the minimum")
    p.add_argument("--user-delegation", action="store_true",
                   help="sign with an Entra ID user delegation key (refused: it cannot "
                        "outlive 7 days)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write the SAS URI to this file (mode 0600) and print only a redacted "
                        "summary")

    p = command(sas, "verify", verify, verify.__doc__)
    p.add_argument("uris", metavar="SAS_URI|@FILE", nargs="*",
                   help=f"SAS URIs, or @FILE with one per line; default: ${ENV_SAS_URI}. A "
                        "file keeps the signature out of the process list")
    p.add_argument("--offline", action="store_true",
                   help="check the URI's text only; do not open the blob")
    add_report_options(p)


def create(args: argparse.Namespace) -> int:
    """Make a read-and-list SAS URI by the profile's rules, signed with the account key.

    The key: AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING.
    Without --output the URI itself, a secret, is printed on stdout.
    """
    import sys

    from vmimage.app.sas import create as create_sas
    from vmimage.privatefile import write_private
    from vmimage.textsafe import printable

    made = create_sas(args.blob_url, resolve_profile(args.profile), blob_scope=not args.container,
                      days=args.days, user_delegation=args.user_delegation)
    if args.output is not None:
        write_private(args.output, made.url.url + "\n")
        print(printable(f"{made.summary()}\nwritten to {args.output} (mode 0600)"))
    else:
        print(printable(made.summary()), file=sys.stderr)
        print(made.url.url)
    return 0


def verify(args: argparse.Namespace) -> int:
    """Check SAS URIs against every rule of the guide; exit 1 when one fails.

    Each rule is a finding with its requirement IDs (SAS-PERM, SAS-START, SAS-DURATION,
    SAS-BLOB, SAS-SCHEME, SAS-WORKS; SAS-EACH across several URIs).
    """
    from vmimage.app.sas import verify_report

    plan_outputs(args.fmt, args.outputs)  # a bad output name is refused before the URIs
    texts = _collect(args.uris)
    return run_report(args, lambda profile: verify_report(texts, profile,
                                                          online=not args.offline))


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
