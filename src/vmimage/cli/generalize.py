"""``vmimage generalize TARGET``: plan, show, confirm, apply, and prove with the checks."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from vmimage.cli.common import DATA_FORMATS, add_profile, check_format, resolve_profile
from vmimage.cli.parsing import Parser, command
from vmimage.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TextIO

    from vmimage.app.generalize import Operation, Plan


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage generalize``."""
    p = command(sub, "generalize", run, run.__doc__)
    p.add_argument("target", metavar="TARGET", nargs="?",
                   help="a root directory, or a raw or fixed VHD disk image (root needed)")
    p.add_argument("--output", "-o", metavar="COPY",
                   help="generalize a copy (reflinked or sparse) written to COPY; TARGET is "
                        "left untouched and no confirmation is asked")
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    p.add_argument("--operations", metavar="A,B", help="run only these operations")
    p.add_argument("--enable", metavar="A,B", help="also run these (off by default)")
    p.add_argument("--disable", metavar="A,B", help="skip these")
    p.add_argument("--user", metavar="NAME",
                   help="also delete this build user and its home (waagent's +user)")
    p.add_argument("--live-host", action="store_true",
                   help="allow TARGET to be this system's own / (inside the VM to capture)")
    p.add_argument("--list-operations", action="store_true",
                   help="list every operation: name, on by default (*), heading, checks fixed")
    p.add_argument("--format", "-f", dest="fmt", choices=DATA_FORMATS,
                   help="text (default) or json: the plan and the result, for CI")
    add_profile(p)


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def run(args: argparse.Namespace) -> int:
    """Generalize TARGET: a superset of waagent -deprovision, shown as a plan first.

    Every operation plans from what it finds (a second run plans nothing), writes by
    temporary file and rename, and never follows a link out of TARGET. After applying, the
    checks the operations claim run on the result: exit 1 if one still fails.
    """
    from vmimage.app import generalize as gen

    check_format(args.fmt, DATA_FORMATS)
    if args.list_operations:
        _list(gen.OPERATIONS.values(), args.fmt)
        return 0
    if args.target is None:
        raise InputError("generalize", "missing TARGET (or --list-operations)")
    chosen = gen.choose(_names(args.operations), _names(args.enable), _names(args.disable))
    profile = resolve_profile(args.profile)
    options = gen.Options(user=args.user, profile=profile, live_host=args.live_host)
    if args.dry_run or (not args.yes and args.output is None):
        plan = gen.plan_for(args.target, chosen, options)
        if args.dry_run or not plan.actions:
            _show(plan, args.fmt, applied=False)
            return 0
        _show(plan, "text", applied=False, stream=sys.stderr)
        _confirm(args.target)
    # With --yes (or a copy to make) the plan is made once, by the run that applies it.
    result = gen.run(args.target, chosen, profile, options, args.output)
    if not result.done and args.output is None:
        _show(result.plan, args.fmt, applied=False)
        return 0
    if args.fmt == "json":
        import json

        # "checks" here are the findings of the checks run, not the IDs the plan claims
        print(json.dumps({**result.plan.to_dict(),
                          "done": [a.to_dict() for a in result.done],
                          "checks": None if result.report is None else
                          [f.to_dict() for f in result.report.findings],
                          "verdict": None if result.report is None else result.report.verdict},
                         indent=2))
    else:
        _show(result.plan, "text", applied=True)
        if result.report is not None:
            from vmimage.report.render import render

            print(render(result.report, "text", color=sys.stdout.isatty()), end="")
    return 0 if result.report is None else result.report.exit_code


def _confirm(target: str) -> None:
    if not sys.stdin.isatty():
        raise InputError(target, "not changed: confirm with --yes (no terminal to ask on), or "
                                 "see the plan with --dry-run")
    answer = input(f"Apply these changes to {target}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise InputError(target, "not changed: not confirmed")


def _show(plan: Plan, fmt: str | None, applied: bool, stream: TextIO | None = None) -> None:
    from vmimage.textsafe import printable

    out = stream or sys.stdout
    if fmt == "json":
        import json

        print(json.dumps(plan.to_dict(), indent=2), file=out)
        return
    verb = "done" if applied else "planned"
    for note in plan.warnings:
        print(printable(f"warning: {note.operation}: {note.text}"), file=out)
    if not plan.actions:
        print("nothing to do: every chosen operation finds the target generalized",
              file=out)
        return
    for action in plan.actions:
        print(printable(f"{action.operation:20} {action.kind:6} {action.path}  ({action.reason})"),
              file=out)
    print(f"{len(plan.actions)} changes {verb}", file=out)


def _list(operations: Iterable[Operation], fmt: str | None) -> None:
    ops = list(operations)
    if fmt == "json":
        import json

        print(json.dumps([{"name": op.name, "default": op.default, "heading": op.heading,
                           "fixes": list(op.fixes), "waagent": op.waagent} for op in ops],
                         indent=2))
        return
    for op in ops:
        fixes = f"  [{', '.join(op.fixes)}]" if op.fixes else ""
        print(f"{op.name:22} {'*' if op.default else ' '} {op.heading}{fixes}")
