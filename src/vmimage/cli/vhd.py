"""``vmimage vhd inspect | convert | create | resize | validate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmimage.cli.common import (
    DATA_FORMATS,
    add_format,
    add_report_options,
    emit_data,
    plan_outputs,
    run_report,
    to_text,
)
from vmimage.cli.options import size_option
from vmimage.cli.parsing import Parser, command, group
from vmimage.errors import InputError
from vmimage.profiles import ROLES
from vmimage.units import format_size


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage vhd ...``."""
    vhd = group(sub, "vhd", "Inspect, convert, create, resize and validate VHDs.")
    p = command(vhd, "inspect", inspect, inspect.__doc__)
    p.add_argument("file", metavar="FILE", type=Path, help="disk image file")
    p.add_argument("--lenient", action="store_true",
                   help="decode a corrupt footer instead of refusing it")
    add_format(p, DATA_FORMATS)

    p = command(vhd, "convert", convert, convert.__doc__)
    p.add_argument("src", metavar="IN", type=Path, help="input: raw, VHD, VHDX, qcow2 or VMDK")
    p.add_argument("out", metavar="OUT", type=Path, nargs="?", help="output fixed VHD")
    p.add_argument("--size", help="virtual size of the output (whole MiB); default: the "
                                  "input's, rounded up")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--in-place", action="store_true",
                   help="append a footer to a raw file instead of copying it")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    p = command(vhd, "create", create, create.__doc__)
    p.add_argument("out", metavar="OUT", type=Path, help="the new VHD")
    p.add_argument("--size", required=True, help="virtual size, e.g. 32GiB")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")

    p = command(vhd, "resize", resize, resize.__doc__)
    p.add_argument("file", metavar="FILE", type=Path, help="a fixed VHD")
    p.add_argument("--size", required=True, help="new virtual size (whole MiB)")

    p = command(vhd, "validate", validate, validate.__doc__)
    p.add_argument("file", metavar="FILE", type=Path, help="disk image file")
    p.add_argument("--role", choices=ROLES, required=True, help="what the disk is for")
    add_report_options(p)


def inspect(args: argparse.Namespace) -> int:
    """Show the format, sizes, allocation, every footer field and the problems found."""
    from vmimage.app.disk import inspect as inspect_disk

    outputs = plan_outputs(args.fmt, args.outputs, DATA_FORMATS)
    info = inspect_disk(args.file, lenient=args.lenient)

    def text() -> str:
        from vmimage.report.console import render_disk_info

        return to_text(render_disk_info(info))

    emit_data(text, info.to_dict, outputs)
    return 1 if args.lenient and info.problems else 0


def convert(args: argparse.Namespace) -> int:
    """Convert an image to a sparse fixed VHD (holes are never written).

    With --in-place, a raw image becomes a fixed VHD by appending a footer: no copy.
    """
    from vmimage.app import disk as conv
    from vmimage.cli.progress import Progress

    if args.in_place:
        if args.out is not None or args.size is not None:
            raise InputError("--in-place", "takes only the raw file: no OUT and no --size")
        result = conv.convert_in_place(args.src)
    else:
        if args.out is None:
            raise InputError(str(args.src), "missing OUT (or use --in-place)")
        size = size_option(args.size) if args.size else None
        with Progress("convert", quiet=args.quiet) as progress:
            result = conv.convert(args.src, args.out, size, args.force, progress.advance)
    _say(f"{result.output}: fixed VHD of {format_size(result.virtual_size)} ({result.method})")
    return 0


def create(args: argparse.Namespace) -> int:
    """Create an empty, sparse fixed VHD (an empty data disk)."""
    from vmimage.app import disk as conv

    result = conv.create(args.out, size_option(args.size), args.force)
    _say(f"{result.output}: empty fixed VHD of {format_size(result.virtual_size)}")
    return 0


def resize(args: argparse.Namespace) -> int:
    """Grow a fixed VHD in place; shrink only when the cut tail holds zeros."""
    from vmimage.app import disk as conv

    result = conv.resize(args.file, size_option(args.size))
    _say(f"{result.output}: {result.method}, now {format_size(result.virtual_size)}")
    return 0


def validate(args: argparse.Namespace) -> int:
    """Check a disk against the format and size rules of a role; exit 1 when one fails."""
    from vmimage.app.disk import validate_report

    return run_report(args, lambda profile: validate_report(args.file, args.role, profile))


def _say(text: str) -> None:
    from vmimage.textsafe import printable

    print(printable(text))
