"""``vmimage register``: register every image of a manifest with the Create VM Image API of a
service (the guide's §4.1 against ``vmimage serve``), and wait for each operation."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vmimage.cli.common import add_profile, resolve_profile
from vmimage.cli.parsing import Parser, command
from vmimage.errors import InputError

DEFAULT_TIMEOUT = 900.0


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage register ...``."""
    p = command(sub, "register", run, run.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help="the offer manifest")
    p.add_argument("--server", metavar="URL", default=os.environ.get("VMIMAGE_SERVER"),
                   help="the service, e.g. https://mgmt.example:8443 ($VMIMAGE_SERVER)")
    p.add_argument("--subscription", metavar="ID",
                   default=os.environ.get("VMIMAGE_SUBSCRIPTION"),
                   help="the subscription in the API's paths ($VMIMAGE_SUBSCRIPTION; looked "
                        "up with an API token when not given)")
    p.add_argument("--cert", metavar="PEM", type=Path,
                   help="the management certificate with its private key (one PEM file, as "
                        "the classic clients took; or the key in --cert-key)")
    p.add_argument("--cert-key", metavar="PEM", type=Path,
                   help="the certificate's private key, when not in --cert")
    p.add_argument("--token-env", metavar="VAR", default="VMIMAGE_TOKEN",
                   help="the environment variable holding an API token, used when it is set "
                        "(default VMIMAGE_TOKEN)")
    p.add_argument("--ca-file", metavar="PEM", type=Path,
                   help="the CA that signed the service's certificate (default: the "
                        "system's, $SSL_CERT_FILE)")
    p.add_argument("--sas-env", metavar="NAME",
                   help="an environment variable holding the disks' SAS URIs or a token: "
                        "each MediaLink carries its token, for the service to read the blob")
    p.add_argument("--sas-file", metavar="FILE", type=Path,
                   help="a file holding SAS URIs or a token, one per line")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT,
                   help=f"how long to wait for each operation (default {DEFAULT_TIMEOUT:.0f})")
    add_profile(p)


def run(args: argparse.Namespace) -> int:
    """Register the manifest's images (one per SKU version) with a service's Create VM Image
    API (REG-CREATE) and wait for each operation (REG-ASYNC). The service reads every
    MediaLink and refuses a specialized OS disk (REG-GENERALIZED).

    Exit 0 every image registered (or registered before), 1 the service refused one (its
    reason is printed), 2 the manifest, credentials or service cannot be used."""
    from vmimage.app.publishing import classicclient as cc
    from vmimage.app.submit import registration_requests
    from vmimage.secrets import redact
    from vmimage.textsafe import printable

    if not args.server:
        raise InputError("--server", "name the service (--server URL or $VMIMAGE_SERVER)")
    if not 0 < args.timeout <= 86400:
        raise InputError("--timeout", "must be between 0 and 86400 seconds")
    token = cc.token_from(args.token_env)
    if args.cert is None and token is None:
        raise InputError("--cert", f"give a management certificate (--cert PEM) or an API "
                                   f"token in ${args.token_env}")
    credentials = cc.Credentials(args.cert, args.cert_key, token, args.ca_file)
    result = registration_requests(args.manifest, resolve_profile(args.profile), args.sas_env,
                                   args.sas_file)
    if result.failed:
        for f in result.failed:
            print(printable(redact(f"vmimage: {f.check_id}: {f.message}")), file=sys.stderr)
        print(f"vmimage: {args.manifest}: {len(result.failed)} rule(s) failed: nothing sent "
              "(vmimage offer validate shows every finding)", file=sys.stderr)
        return 1
    rendered = result.rendered
    assert rendered is not None
    if rendered.problems:
        raise InputError(args.manifest, "; ".join(rendered.problems))
    subscription = args.subscription or cc.subscription_of(args.server, credentials)
    client = cc.ClassicClient(args.server, subscription, credentials)
    refused = 0
    try:
        for body in rendered.documents.values():
            outcome = cc.register_one(client, body, args.timeout)
            if outcome.status in ("Succeeded", "AlreadyRegistered"):
                what = "registered" if outcome.status == "Succeeded" else "registered before"
                took = f" in {outcome.seconds:.1f} s" if outcome.operation else ""
                print(f"vmimage: {outcome.name}: {what}{took}")
            else:
                refused += 1
                code, message = outcome.error or ("Failed", "")
                print(printable(redact(f"vmimage: {outcome.name}: refused: {code}: {message}")))
    finally:
        client.close()
    return 1 if refused else 0
