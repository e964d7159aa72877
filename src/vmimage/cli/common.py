"""The options every result-printing command shares, and the one way results are written.

One set of conventions (issue 9): ``--format`` with the same names wherever a format applies,
``--output FILE`` (repeatable) with the format taken from the file's extension, ``--fail-on``,
``--only-failed``, ``--profile NAME|FILE`` and ``--waivers FILE``, each also settable from the
environment and ``vmimage.toml`` (:mod:`vmimage.config`). A command adds the options with the
functions below and hands its report to :func:`emit`; none prints a format of its own.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import InputError
from vmimage.report import FORMATS

if TYPE_CHECKING:
    from collections.abc import Callable
    from logging import Logger

    from vmimage.config import Settings
    from vmimage.report.model import Report

DATA_FORMATS = ("text", "json")
#: File extension -> format, longest first (``.sarif.json`` is SARIF, ``.junit.xml`` JUnit).
EXTENSIONS = ((".sarif.json", "sarif"), (".junit.xml", "junit"), (".sarif", "sarif"),
              (".json", "json"), (".html", "html"), (".htm", "html"), (".xml", "junit"),
              (".txt", "text"), (".log", "text"))


def add_format(parser: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    """``--format`` and ``--output`` (repeatable), with the formats this command writes."""
    parser.add_argument("--format", "-f", dest="fmt", metavar="FORMAT", choices=formats,
                        help=f"{', '.join(formats)}; default text on stdout, and for --output "
                             "the file's extension")
    parser.add_argument("--output", "-o", dest="outputs", metavar="FILE", type=Path,
                        action="append",
                        help="write the result to FILE in the format its extension names "
                             "(.json, .sarif, .html, .xml/.junit.xml, .txt) or --format's; "
                             "repeatable, for several formats from one run (stdout then "
                             "gets the verdict)")


def add_profile(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME|FILE``."""
    parser.add_argument("--profile", "-p", metavar="NAME|FILE",
                        help="azure-current (default), azure-2015, or a .toml profile file "
                             "that extends one ($VMIMAGE_PROFILE, vmimage.toml)")


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Everything a command with findings takes: profile, formats, fail-on, waivers."""
    add_profile(parser)
    add_format(parser)
    parser.add_argument("--fail-on", choices=("fail", "warning"),
                        help="exit 1 when a finding at or above this level is not waived "
                             "(default fail; $VMIMAGE_FAIL_ON, vmimage.toml)")
    parser.add_argument("--only-failed", action="store_true",
                        help="list failures, warnings and waived findings only; the counts "
                             "and the verdict still cover every rule")
    parser.add_argument("--waivers", metavar="FILE", type=Path,
                        help="a waiver file: rule, reason, expiry and optional path per "
                             "[[waiver]] ($VMIMAGE_WAIVERS, vmimage.toml)")


_settings: Settings | None = None


def _resolver() -> Settings:
    """The settings of this run (the configuration file is read on first need)."""
    global _settings
    if _settings is None:
        from vmimage.config import Settings

        _settings = Settings()
    return _settings


def _log() -> Logger:
    from vmimage import log

    return log.get("cli")


def reset() -> None:
    """A fresh resolver for each command run (the configuration file is read once per run)."""
    global _settings
    _settings = None


def resolve_profile(flag: str | None) -> str:
    """The profile to use, by flag, environment, file or default; unknown names refused."""
    from vmimage.profiles import DEFAULT_PROFILE, PROFILE_NAMES, is_profile_path

    chosen = _resolver().get("profile", flag, DEFAULT_PROFILE)
    value = chosen.value or DEFAULT_PROFILE
    _log().info("profile %s (from %s)", value, chosen.source)
    if not is_profile_path(value) and value not in PROFILE_NAMES:
        raise InputError(chosen.source, f"unknown profile {value!r} (choose "
                                        f"{', '.join(PROFILE_NAMES)}, or a .toml file that "
                                        "extends one)")
    return value


def resolve_fail_on(flag: str | None) -> str:
    """``fail`` or ``warning``, by flag, environment, file or default."""
    from vmimage.app.results import FAIL_ON

    chosen = _resolver().get("fail-on", flag, "fail")
    if chosen.value not in FAIL_ON:
        raise InputError(chosen.source, f"fail-on must be {' or '.join(FAIL_ON)}, not "
                                        f"{chosen.value!r}")
    _log().info("fail-on %s (from %s)", chosen.value, chosen.source)
    return chosen.value


def resolve_waivers(flag: Path | None) -> str | None:
    """The waiver file, if any, by flag, environment or file."""
    chosen = _resolver().get("waivers", str(flag) if flag is not None else None)
    if chosen.value:
        _log().info("waivers %s (from %s)", chosen.value, chosen.source)
    return chosen.value


def format_for(path: Path, fmt: str | None, allowed: tuple[str, ...]) -> str:
    """The format of an ``--output`` file: its extension's, else ``--format``'s.

    Raises:
        InputError: neither says, or the command cannot write that format.
    """
    name = path.name.lower()
    inferred = next((f for ext, f in EXTENSIONS if name.endswith(ext)), None)
    chosen = inferred or fmt
    if chosen is None:
        raise InputError(path, f"cannot tell the format from the extension: add --format "
                               f"({', '.join(allowed)}) or name the file .{allowed[-1]}")
    if chosen not in allowed:
        raise InputError(path, f"this command writes {', '.join(allowed)}, not {chosen}")
    return chosen


def check_format(fmt: str | None, allowed: tuple[str, ...]) -> str | None:
    """``fmt`` when the command can write it."""
    if fmt is not None and fmt not in allowed:
        raise InputError("--format", f"unknown format {fmt!r} (choose {', '.join(allowed)})")
    return fmt


@dataclass(frozen=True)
class Outputs:
    """Where a command's result goes: stdout in ``fmt``, or each file in its own format."""

    fmt: str | None
    files: tuple[tuple[Path, str], ...]


def plan_outputs(fmt: str | None, outputs: list[Path] | None,
                 allowed: tuple[str, ...] = FORMATS) -> Outputs:
    """Check ``--format`` and every ``--output`` name before any work starts, so a mistyped
    extension costs a second, not a whole run.

    Raises:
        InputError: an unknown format, or a file whose format cannot be told or written.
    """
    check_format(fmt, allowed)
    return Outputs(fmt, tuple((path, format_for(path, fmt, allowed)) for path in outputs or ()))


def emit(report: Report, outputs: Outputs, *, only_failed: bool = False) -> None:
    """Print ``report`` (stdout: ``--format``, text by default) or write it to each output
    file in its format, then print the counts and the verdict."""
    from vmimage.report.render import render

    if not outputs.files:
        _print(render(report, outputs.fmt or "text", color=sys.stdout.isatty(),
                      only_failed=only_failed))
        return
    from vmimage.privatefile import write_public
    from vmimage.textsafe import printable

    for path, chosen in outputs.files:
        write_public(path, render(report, chosen, only_failed=only_failed))
        print(printable(f"wrote {path} ({chosen})"))
    print(printable(report.counts_line))
    print(printable(report.verdict_line))


def emit_data(text: Callable[[], str], data: Callable[[], object], outputs: Outputs) -> None:
    """Print or write a command's result that has no findings (``vhd inspect``, ``upload``,
    ``checks list``...): text for people, JSON for programs."""
    import json

    def render(chosen: str) -> str:
        return json.dumps(data(), indent=2) + "\n" if chosen == "json" else text()

    if not outputs.files:
        _print(render(outputs.fmt or "text"))
        return
    from vmimage.privatefile import write_public
    from vmimage.textsafe import printable

    for path, chosen in outputs.files:
        write_public(path, render(chosen))
        print(printable(f"wrote {path} ({chosen})"))


def _print(text: str) -> None:
    print(text, end="" if text.endswith("\n") else "\n")


def to_text(renderable: object) -> str:
    """A formatter's result as text: a string as it is, a rich renderable drawn plainly (no
    colour codes unless stdout is a terminal)."""
    if isinstance(renderable, str):
        return renderable if renderable.endswith("\n") else renderable + "\n"
    import io

    from rich.console import Console

    tty = sys.stdout.isatty()
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=tty, color_system="standard" if tty else None,
            width=None if tty else 100, highlight=False, soft_wrap=not tty).print(renderable)
    return buffer.getvalue()


def run_report(args: argparse.Namespace, build: Callable[[str], Report]) -> int:
    """What every command with findings does once its input is read: check the output names,
    resolve fail-on, waivers and profile, build the report with that profile, apply the
    waivers, write it, and return the exit code ``--fail-on`` gives."""
    from vmimage.app.results import exit_code, waive

    outputs = plan_outputs(args.fmt, args.outputs)
    failing = resolve_fail_on(args.fail_on)
    waiver_file = resolve_waivers(args.waivers)
    report = waive(build(resolve_profile(args.profile)), waiver_file)
    emit(report, outputs, only_failed=args.only_failed)
    return exit_code(report.findings, failing)
