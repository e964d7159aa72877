"""``vmimage offer validate | urls``: the offer manifest, checked and shown."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmimage.cli.common import (
    DATA_FORMATS,
    add_format,
    add_profile,
    add_report_options,
    emit_data,
    plan_outputs,
    resolve_profile,
    run_report,
)
from vmimage.cli.parsing import Parser, command, group
from vmimage.cli.serve import register_push

MANIFEST_HELP = "the offer manifest (offer.yaml)"


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage offer ...``."""
    offer = group(sub, "offer", "Validate an offer manifest (offer.yaml), show its public "
                                "addresses, push it to a publishing service.")
    p = command(offer, "validate", validate, validate.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help=MANIFEST_HELP)
    p.add_argument("--previous", metavar="FILE", type=Path,
                   help="the manifest as last published: versions must move forward by the "
                        "profile's rule")
    p.add_argument("--no-disks", action="store_true",
                   help="do not open local disk files (size, OS family and boot type rules "
                        "skip)")
    add_report_options(p)
    p = command(offer, "urls", urls, urls.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help=MANIFEST_HELP)
    add_profile(p)
    add_format(p, DATA_FORMATS)
    register_push(offer)


def validate(args: argparse.Namespace) -> int:
    """Check every OFR-* and PUB-* rule; exit 1 when one fails, 2 when a file is unreadable."""
    from vmimage.app.offer import validate_report

    return run_report(args, lambda profile: validate_report(
        args.manifest, profile, args.previous, open_disks=not args.no_disks))


def urls(args: argparse.Namespace) -> int:
    """Show each SKU's public addresses (OFR-URL): the marketplace listing, the portal's
    create page and the image URN for az vm create --image; the 2015 guide's URLs too under
    azure-2015."""
    from vmimage.app.offer import sku_urls
    from vmimage.textsafe import printable

    outputs = plan_outputs(args.fmt, args.outputs, DATA_FORMATS)
    found = sku_urls(args.manifest, resolve_profile(args.profile))

    def text() -> str:
        lines = []
        for u in found:
            lines.append(printable(u.sku))
            lines += [printable(f"  {label + ':':34} {url}") for label, url in u.lines()]
        return "\n".join(lines) + "\n"

    emit_data(text, lambda: [u.to_dict() for u in found], outputs)
    return 0
