"""The ``vmimage`` command: thin wrappers that parse, call the library, and print.

Exit codes: 0 all passed (warnings allowed), 1 a rule failed, 2 an input could not be used
(one line on stderr naming it and the problem, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

import typer

from vmimage.cli import certify, check, checks, offer, sas, submit, upload, vhd
from vmimage.errors import VmimageError

try:  # typer >= 0.24 vendors its own click, whose exceptions are other classes
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses the click package
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

app = typer.Typer(
    name="vmimage",
    help="Prepare, check, generalize, upload and submit Azure Marketplace VM images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(vhd.app, name="vhd")
app.add_typer(checks.app, name="checks")
app.command(name="check")(check.check)
app.add_typer(offer.app, name="offer")
app.add_typer(submit.app, name="submit")
app.command(name="certify")(certify.certify)
app.command(name="upload")(upload.upload)
app.add_typer(sas.app, name="sas")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program stands so that every cleanup an interrupt runs
    (temporary files removed, a resumable upload's state kept) runs for it too."""


_terminated = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise Terminated


def _stopped() -> NoReturn:
    if _terminated:
        print("vmimage: terminated", file=sys.stderr)
        sys.exit(143)
    print("vmimage: interrupted", file=sys.stderr)
    sys.exit(130)


def _error_line(exc: BaseException | str) -> str:
    """The one line an error prints: control and bidi characters from an image or a URL
    shown escaped (they could hide text or rewrite the terminal), secrets redacted."""
    from vmimage.report.console import printable
    from vmimage.secrets import redact

    return printable(redact(" ".join(str(exc).split("\n"))))


def main() -> None:
    """Entry point: run the app and map errors to exit codes."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rc = app(standalone_mode=False, prog_name="vmimage")
    except VmimageError as exc:
        print(f"vmimage: {_error_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _stopped()
    except click_exceptions.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help is already printed: nothing was asked, nothing failed
        # One line, like every other input error: what is wrong and where to look.
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "vmimage"
        print(f"vmimage: {_error_line(exc.format_message())} (see {where} --help)",
              file=sys.stderr)
        sys.exit(2)
    if rc == 130:  # typer turns Ctrl-C (and so SIGTERM) into Exit(130) before it reaches us
        _stopped()
    sys.exit(rc if isinstance(rc, int) else 0)
