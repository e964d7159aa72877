"""``vmimage checks list | show``: the registry, for people and for programs."""

from __future__ import annotations

import difflib
import json
from typing import Annotated

import typer

from vmimage.cli.options import choice
from vmimage.errors import InputError

app = typer.Typer(help="List the checks and show where each one lives.", no_args_is_help=True)

LIST_FORMATS = ("text", "json")
FormatOpt = Annotated[str, typer.Option("--format", help="text or json.")]


def _format(fmt: str) -> str:
    return choice("--format", "format", fmt, LIST_FORMATS)


@app.command("list")
def list_checks(fmt: FormatOpt = "text") -> int:
    """Every check: ID, title, default severity, requirements covered, OS, needs, module."""
    from vmimage.report.catalog import all_checks, check_dict, checks_table
    from vmimage.report.console import console

    metas = all_checks()
    if _format(fmt) == "json":
        print(json.dumps([check_dict(m) for m in metas], indent=2))
    else:
        console().print(checks_table(metas))
    return 0


@app.command()
def show(check_id: Annotated[str, typer.Argument(metavar="ID", help="A check ID.")],
         fmt: FormatOpt = "text") -> int:
    """Everything about one check, starting with the file and line that define it."""
    from vmimage.report.catalog import all_checks, check_detail, check_dict
    from vmimage.report.console import console

    metas = {m.id: m for m in all_checks()}
    meta = metas.get(check_id.upper())
    if meta is None:
        close = difflib.get_close_matches(check_id.upper(), metas, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see vmimage checks list)"
        raise InputError(check_id, f"no such check{hint}")
    if _format(fmt) == "json":
        print(json.dumps(check_dict(meta, detail=True), indent=2))
    else:
        console().print(check_detail(meta))
    return 0
