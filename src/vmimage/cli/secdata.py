"""``vmimage security-data fetch IMAGE DIR``: the security data for checks without network."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmimage.cli.parsing import Parser, command, group


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage security-data ...``."""
    data = group(sub, "security-data", "The distribution's security data (LNX-PATCHES) for "
                                       "checks without network.")
    p = command(data, "fetch", fetch, fetch.__doc__)
    p.add_argument("image", metavar="IMAGE",
                   help="disk image or root directory whose package sources name the archives")
    p.add_argument("directory", metavar="DIR", type=Path,
                   help="where to write the data (created; pass it as --security-data DIR)")


def fetch(args: argparse.Namespace) -> int:
    """Fetch the security data IMAGE's own package sources name into DIR, and say what it
    says of IMAGE. Then `vmimage check IMAGE --security-data DIR` needs no network.

    Exit 0 when fetched (whatever the comparison says), 2 when it cannot be.
    """
    from vmimage.app.security import fetch_security_data
    from vmimage.textsafe import printable

    found, manifest = fetch_security_data(args.image, args.directory)
    print(printable(f"fetched: {found.data}"))
    print(printable(f"written: {manifest}"))
    state = (f"{len(found.updates)} package(s) with a security update" if found.updates
             else "no package with a security update")
    print(printable(f"{found.compared} packages compared: {state}"))
    for update in found.updates:
        print(printable(f"  {update.line}"))
    for note in found.notes:
        print(printable(f"note: {note}"))
    return 0
