"""``vmimage checks list | show``: the one rule registry, for people and for programs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vmimage.cli.options import choice

app = typer.Typer(help="List every rule (image, offer and SAS) and show where each one lives.",
                  no_args_is_help=True)

LIST_FORMATS = ("text", "json")
FormatOpt = Annotated[str, typer.Option("--format", help="text or json.")]


def _format(fmt: str) -> str:
    return choice("--format", "format", fmt, LIST_FORMATS)


@app.command("list")
def list_checks(fmt: FormatOpt = "text") -> int:
    """Every rule: ID, title, default severity, subject, requirements covered, OS, module."""
    from vmimage.app.catalog import all_rules
    from vmimage.report.catalog import check_dict, checks_table
    from vmimage.report.console import console

    metas = all_rules()
    if _format(fmt) == "json":
        print(json.dumps([check_dict(m) for m in metas], indent=2))
    else:
        console().print(checks_table(metas))
    return 0


@app.command()
def show(check_id: Annotated[str, typer.Argument(metavar="ID", help="A rule ID.")],
         fmt: FormatOpt = "text") -> int:
    """Everything about one rule, starting with the file and line that define it."""
    from vmimage.app.catalog import find_rule, profiles
    from vmimage.report.catalog import check_detail, check_dict
    from vmimage.report.console import console

    meta = find_rule(check_id)
    chosen = _format(fmt)
    known = profiles()
    if chosen == "json":
        print(json.dumps(check_dict(meta, detail=True, profiles=known), indent=2))
    else:
        console().print(check_detail(meta, known))
    return 0
