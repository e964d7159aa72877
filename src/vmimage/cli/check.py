"""``vmimage check TARGET``: certify an image or a root directory offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, choice, profile_option
from vmimage.report import FORMATS


def check(
    target: Annotated[str, typer.Argument(help="Disk image (raw, VHD, VHDX, qcow2, VMDK) or a "
                                               "directory holding a root filesystem.")],
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    fmt: Annotated[str, typer.Option("--format", help=f"Output: {', '.join(FORMATS)}.")] = "text",
    output: Annotated[Path | None, typer.Option(help="Write the report to this file.")] = None,
    role: Annotated[str, typer.Option(help="What the disk is for.")] = "os-linux",
    only: Annotated[list[str] | None, typer.Option("--check", help="Run only this check ID "
                                                   "(repeatable).")] = None,
) -> int:
    """Check TARGET against every rule of its role; exit 0 if nothing failed, 1 if a rule
    failed, 2 if TARGET holds no operating system for an OS role."""
    from vmimage.app.check import check_target
    from vmimage.profiles import ROLES
    from vmimage.report.render import render

    choice("--format", "format", fmt, FORMATS)
    choice("--role", "role", role, ROLES)
    report = check_target(target, profile_option(profile), role, only)
    if output is None:
        text = render(report, fmt, color=sys.stdout.isatty())
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        from vmimage.privatefile import write_public

        write_public(output, render(report, fmt))  # temp file then rename; one-line errors
        from vmimage.report.console import printable

        print(printable(f"{output}: {report.counts_line}"))
    return report.exit_code
