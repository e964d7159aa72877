"""``vmimage checks list | show``: the one rule registry, for people and for programs."""

from __future__ import annotations

import argparse

from vmimage.cli.common import DATA_FORMATS, add_format, emit_data, plan_outputs, to_text
from vmimage.cli.parsing import Parser, command, group


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage checks ...``."""
    checks = group(sub, "checks",
                   "List every rule (image, offer and SAS) and show where each one lives.")
    p = command(checks, "list", list_checks, list_checks.__doc__)
    add_format(p, DATA_FORMATS)
    p = command(checks, "show", show, show.__doc__)
    p.add_argument("check_id", metavar="ID", help="a rule ID (any case)")
    add_format(p, DATA_FORMATS)


def list_checks(args: argparse.Namespace) -> int:
    """Every rule: ID, title, default severity, subject, requirements covered, OS, module."""
    from vmimage.app.catalog import all_rules
    from vmimage.report.catalog import check_dict, checks_table

    outputs = plan_outputs(args.fmt, args.outputs, DATA_FORMATS)
    metas = all_rules()
    emit_data(lambda: to_text(checks_table(metas)), lambda: [check_dict(m) for m in metas],
              outputs)
    return 0


def show(args: argparse.Namespace) -> int:
    """Everything about one rule, starting with the file and line that define it."""
    from vmimage.app.catalog import find_rule, profiles
    from vmimage.app.generalize import fixed_by
    from vmimage.report.catalog import check_detail, check_dict

    outputs = plan_outputs(args.fmt, args.outputs, DATA_FORMATS)
    meta = find_rule(args.check_id)
    known = profiles()
    fixes = fixed_by(meta.id)
    emit_data(lambda: to_text(check_detail(meta, known, fixes)),
              lambda: check_dict(meta, detail=True, profiles=known, fixed_by=fixes), outputs)
    return 0
