"""``vmimage check TARGET``: certify an image or a root directory offline."""

from __future__ import annotations

import argparse

from vmimage.cli.common import (
    add_report_options,
    run_report,
)
from vmimage.cli.parsing import Parser, command
from vmimage.profiles import ROLES


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage check``."""
    p = command(sub, "check", run, run.__doc__)
    p.add_argument("target", metavar="TARGET",
                   help="disk image (raw, VHD, VHDX, qcow2, VMDK) or a directory holding a "
                        "root filesystem")
    p.add_argument("--role", choices=("auto", *ROLES), default="auto",
                   help="what the disk is for (default auto: the OS role of the Linux or "
                        "Windows system found; a data disk needs --role data)")
    p.add_argument("--check", dest="only", metavar="ID", action="append",
                   help="run only this check ID (repeatable)")
    add_report_options(p)


def run(args: argparse.Namespace) -> int:
    """Check TARGET against every rule of its role.

    Exit 0 if nothing failed, 1 if a rule failed (or warned, with --fail-on warning), 2 if
    TARGET cannot be used or holds no operating system for an OS role.
    """
    from vmimage.app.check import check_target

    return run_report(args, lambda profile: check_target(args.target, profile, args.role,
                                                         args.only))
