"""``vmimage vhd inspect | convert | create | resize | validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vmimage.cli.options import DEFAULT, PROFILE_HELP, choice, profile_option, size_option
from vmimage.errors import InputError
from vmimage.findings import worst_exit_code
from vmimage.profiles import ROLES
from vmimage.units import format_size

app = typer.Typer(help="Inspect, convert, create, resize and validate VHDs.",
                  no_args_is_help=True)

# readable=False: typer's own readability test raises its usage error (several lines, and an
# exception class main() does not map); our reader says "permission denied" on one line.
FileArg = Annotated[Path, typer.Argument(help="Disk image file.", readable=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def inspect(file: FileArg, as_json: JsonOpt = False,
            lenient: Annotated[bool, typer.Option(help="Decode a corrupt footer instead of "
                                                       "refusing it.")] = False) -> int:
    """Show the format, sizes, allocation, every footer field and the problems found."""
    from vmimage.app.disk import inspect as inspect_disk
    from vmimage.report.console import console, render_disk_info

    info = inspect_disk(file, lenient=lenient)
    if as_json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        console().print(render_disk_info(info))
    return 1 if lenient and info.problems else 0


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Input: raw, VHD, VHDX, qcow2 or VMDK.",
                                                readable=False)],
    out: Annotated[Path | None, typer.Argument(help="Output fixed VHD.",
                                                         readable=False)] = None,
    size: Annotated[str | None, typer.Option(help="Virtual size of the output (whole MiB); "
                                                  "default: the input's, rounded up.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite OUT if it exists.")] = False,
    in_place: Annotated[bool, typer.Option("--in-place", help="Append a footer to a raw "
                                           "file instead of copying it.")] = False,
) -> int:
    """Convert an image to a sparse fixed VHD (holes are never written)."""
    from vmimage.app import disk as conv
    from vmimage.report.console import console, printable

    if in_place:
        if out is not None or size is not None:
            raise InputError("--in-place", "takes only the raw file: no OUT and no --size")
        result = conv.convert_in_place(src)
    else:
        if out is None:
            raise InputError(str(src), "missing OUT (or use --in-place)")
        result = conv.convert(src, out, size_option(size) if size else None, force)
    console().print(f"{printable(str(result.output))}: fixed VHD of "
                    f"{format_size(result.virtual_size)} ({result.method})", markup=False)
    return 0


@app.command()
def create(
    out: Annotated[Path, typer.Argument(help="The new VHD.", readable=False)],
    size: Annotated[str, typer.Option(help="Virtual size, e.g. 32GiB.")],
    force: Annotated[bool, typer.Option(help="Overwrite OUT if it exists.")] = False,
) -> int:
    """Create an empty, sparse fixed VHD (an empty data disk)."""
    from vmimage.app import disk as conv
    from vmimage.report.console import console, printable

    result = conv.create(out, size_option(size), force)
    console().print(f"{printable(str(result.output))}: empty fixed VHD of "
                    f"{format_size(result.virtual_size)}", markup=False)
    return 0


@app.command()
def resize(
    file: FileArg,
    size: Annotated[str, typer.Option(help="New virtual size (whole MiB).")],
) -> int:
    """Grow a fixed VHD in place; shrink only when the cut tail holds zeros."""
    from vmimage.app import disk as conv
    from vmimage.report.console import console, printable

    result = conv.resize(file, size_option(size))
    console().print(f"{printable(str(result.output))}: {result.method}, now "
                    f"{format_size(result.virtual_size)}", markup=False)
    return 0


@app.command()
def validate(
    file: FileArg,
    role: Annotated[str, typer.Option(help=f"What the disk is for: {', '.join(ROLES)}.")],
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = DEFAULT,
    as_json: JsonOpt = False,
) -> int:
    """Check a disk against the format and size rules of a role; exit 1 when one fails."""
    from vmimage.app.disk import validate_disk
    from vmimage.report.console import console, render_findings, summary_line

    choice("--role", "role", role, ROLES)
    chosen = profile_option(profile)
    findings = validate_disk(file, role, chosen)
    if as_json:
        print(json.dumps({"file": str(file), "role": role, "profile": chosen,
                          "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        out = console()
        out.print(render_findings(findings, f"{file} as {role} ({chosen})"))
        out.print(summary_line(findings))
    return worst_exit_code(findings)
