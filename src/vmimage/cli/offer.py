"""``vmimage offer validate | urls``: the offer manifest, checked and shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, profile_option
from vmimage.findings import worst_exit_code

app = typer.Typer(help="Validate an offer manifest (offer.yaml) and show its public URLs.",
                  no_args_is_help=True)

ManifestArg = Annotated[Path, typer.Argument(help="The offer manifest (offer.yaml).",
                                             readable=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def validate(
    manifest: ManifestArg,
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    previous: Annotated[Path | None, typer.Option(
        help="The manifest as last published: versions may only raise the patch number.",
        readable=False)] = None,
    no_disks: Annotated[bool, typer.Option("--no-disks", help="Do not open local disk files "
                                           "(size, OS family and boot type rules skip).")] = False,
    as_json: JsonOpt = False,
) -> int:
    """Check every OFR-* and PUB-* rule; exit 1 when one fails, 2 when a file is unreadable."""
    from vmimage.app.offer import validate as validate_manifest
    from vmimage.report.console import console, render_findings, summary_line

    chosen = profile_option(profile)
    findings = validate_manifest(manifest, chosen, previous, open_disks=not no_disks)
    if as_json:
        counts = {s: sum(1 for f in findings if str(f.status) == s)
                  for s in ("pass", "fail", "warning", "skip")}
        print(json.dumps({"manifest": str(manifest), "profile": chosen,
                          "counts": counts, "findings": [f.to_dict() for f in findings]},
                         indent=2))
    else:
        out = console()
        out.print(render_findings(findings, f"{manifest} ({chosen})"))
        out.print(summary_line(findings))
    return worst_exit_code(findings)


@app.command()
def urls(manifest: ManifestArg, as_json: JsonOpt = False) -> int:
    """Show the public marketplace and portal URLs of each SKU (OFR-URL)."""
    from vmimage.app.offer import sku_urls

    found = sku_urls(manifest)
    if as_json:
        print(json.dumps([u.to_dict() for u in found], indent=2))
        return 0
    from vmimage.report.console import printable

    labels = ("marketplace (2015 guide)", "portal (2015 guide)", "storefront (today)")
    for u in found:
        print(printable(u.sku))
        for label, url in zip(labels, (u.marketplace, u.portal, u.storefront), strict=True):
            print(printable(f"  {label + ':':26} {url}"))
    return 0
