"""The ``vmimage`` command: thin wrappers that parse, call the application layer, and print.

Exit codes: 0 nothing failed (warnings allowed), 1 a rule failed, 2 an input could not be used
(one line on stderr naming it and the problem, never a traceback), 130 interrupted, 143
terminated.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, NoReturn

from vmimage import __version__
from vmimage.errors import VmimageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmimage.cli.parsing import Parser

DESCRIPTION = """Prepare, check, generalize, upload and submit Azure Marketplace VM images.

Settings: a flag beats the environment (VMIMAGE_PROFILE, VMIMAGE_FAIL_ON, VMIMAGE_WAIVERS),
which beats vmimage.toml (here or in a parent directory, or ~/.config/vmimage/); see
docs/configuration.md. Exit codes: 0 passed, 1 a rule failed, 2 unusable input."""


def build_parser() -> Parser:
    """The whole command tree (every command module is thin: importing them all is cheap)."""
    from vmimage.cli import (
        certify,
        check,
        checks,
        generalize,
        offer,
        register,
        sas,
        secdata,
        serve,
        submit,
        upload,
        vhd,
        vm,
    )
    from vmimage.cli.parsing import Parser

    parser = Parser(prog="vmimage", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"vmimage {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="say what is chosen and done (profile, configuration, phases)")
    parser.add_argument("--debug", action="store_true",
                        help="also every read of the image and every rule's time (never a "
                             "secret)")
    parser.set_defaults(handler=None, parser=parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    check.register(sub)
    checks.register(sub)
    vhd.register(sub)
    upload.register(sub)
    sas.register(sub)
    offer.register(sub)
    submit.register(sub)
    register.register(sub)
    certify.register(sub)
    generalize.register(sub)
    vm.register(sub)
    serve.register(sub)
    secdata.register(sub)
    completion = sub.add_parser("completion", help="print a shell completion script",
                                description="Print a completion script: eval it, or save it "
                                            "where your shell loads completions "
                                            "(docs/cli.md).")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.set_defaults(handler=_completion, parser=completion)
    return parser


def _completion(args: object) -> int:
    from vmimage.cli.parsing import completion_script

    print(completion_script(build_parser(), args.shell), end="")  # type: ignore[attr-defined]
    return 0


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run the command; errors propagate (:func:`main` maps them)."""
    from vmimage.cli import common

    common.reset()
    args = build_parser().parse_args(list(argv))
    if args.verbose or args.debug:  # else logging is left unloaded until something logs
        from vmimage import log

        log.configure(verbose=args.verbose, debug=args.debug)
    if args.handler is None:  # a group named without a command, or nothing at all
        args.parser.print_help()
        return 0
    rc: int = args.handler(args)
    return rc


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
    from vmimage.secrets import redact
    from vmimage.textsafe import printable

    return printable(redact(" ".join(str(exc).split("\n"))))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command and map errors to exit codes."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:  # what scripts ask most often: no parser, no command modules
        print(f"vmimage {__version__}")
        sys.exit(0)
    signal.signal(signal.SIGTERM, _on_sigterm)
    from vmimage.cli.parsing import UsageError

    try:
        rc = run(args)
    except VmimageError as exc:
        print(f"vmimage: {_error_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except UsageError as exc:
        # One line, like every other input error: what is wrong and where to look.
        print(f"vmimage: {_error_line(exc)} (see {exc.prog} --help)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _stopped()
    except BrokenPipeError:  # `vmimage checks list | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(rc)
