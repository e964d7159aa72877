"""The command-line parser: argparse, with one-line usage errors and generated completion.

Why argparse and not a framework: the whole process of ``vmimage --version`` or ``vmimage vhd
convert --in-place`` must finish in 0.15 s (docs/benchmarks.md); typer alone took 0.2 s to
import here, as its 0.29 release imports pydantic to convert every parameter. argparse is in
the standard library, costs a few milliseconds, and its tree of parsers is all that shell
completion needs (:func:`completion_script`).

Every usage error becomes :class:`UsageError` (exit 2, one line naming the command's help),
like every other bad input.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that does not parse: printed as one line, exit 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - argparse's own
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)  # --out must not silently mean --output
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise the error for the CLI to print on one line."""
        raise UsageError(self.prog, message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help as written in the docstrings (paragraphs kept), options aligned at 30 columns."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


def command(sub: argparse._SubParsersAction[Parser], name: str, handler: Handler,
            doc: str | None, **kwargs: Any) -> Parser:  # noqa: ANN401 - add_parser's
    """Add a command whose help is its handler's docstring (first paragraph as the summary)."""
    text = (doc or "").strip()
    summary = text.split("\n\n")[0].replace("\n", " ")
    parser: Parser = sub.add_parser(name, help=summary, description=_dedent(text), **kwargs)
    parser.set_defaults(handler=handler, parser=parser)
    return parser


def group(sub: argparse._SubParsersAction[Parser], name: str, summary: str) -> \
        argparse._SubParsersAction[Parser]:
    """A command with subcommands (``vhd``, ``offer``...); alone it prints its help."""
    parser: Parser = sub.add_parser(name, help=summary, description=summary)
    parser.set_defaults(handler=None, parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)


def _dedent(text: str) -> str:
    import textwrap

    first, _, rest = text.partition("\n")
    return first + ("\n" + textwrap.dedent(rest) if rest else "")


# --------------------------------------------------------------------------------------------
# Shell completion, generated from the parser tree so it never drifts from the commands.


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
          ) -> Iterator[tuple[tuple[str, ...], list[str], list[str]]]:
    """``(command path, subcommand names, option strings)`` for every parser in the tree."""
    subs: list[str] = []
    options: list[str] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        options += [s for s in action.option_strings if s.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subs.append(name)
                children.append((name, child))
    yield path, subs, options
    for name, child in children:
        yield from _walk(child, (*path, name))


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A completion script for ``bash``, ``zsh`` (through bashcompinit) or ``fish``."""
    tree = list(_walk(parser))
    if shell == "fish":
        return _fish(tree)
    cases = []
    for path, subs, options in tree:
        words = " ".join(shlex.quote(w) for w in subs + options)
        label = shlex.quote(" ".join(path)) if path else '""'
        cases.append(f"        {label}) words={shlex.quote(words)} ;;")
    body = "\n".join(cases)
    script = f"""# vmimage completion for bash (and zsh with bashcompinit)
_vmimage() {{
    local cur path="" w i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ "$w" == -* ]] && continue
        case "${{path:+$path }}$w" in
{_known_paths(tree)}) path="${{path:+$path }}$w" ;;
        esac
    done
    local words=""
    case "$path" in
{body}
    esac
    if [[ "$cur" == -* || -n "$words" ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
    return 0
}}
"""
    if shell == "zsh":
        script += "autoload -U +X bashcompinit && bashcompinit\n"
    return script + "complete -o filenames -F _vmimage vmimage\n"


def _known_paths(tree: Sequence[tuple[tuple[str, ...], list[str], list[str]]]) -> str:
    paths = [" ".join(p) for p, _, _ in tree if p]
    return "        " + "|".join(shlex.quote(p) for p in paths)


def _fish(tree: Sequence[tuple[tuple[str, ...], list[str], list[str]]]) -> str:
    lines = ["# vmimage completion for fish", "complete -c vmimage -f"]
    for path, subs, options in tree:
        cond = ("__fish_use_subcommand" if not path else
                " ; and ".join(f"__fish_seen_subcommand_from {w}" for w in path))
        for name in subs:
            lines.append(f"complete -c vmimage -n '{cond}' -a {shlex.quote(name)}")
        for opt in options:
            lines.append(f"complete -c vmimage -n '{cond}' -l {shlex.quote(opt[2:])}")
    lines.append("complete -c vmimage -F")
    return "\n".join(lines) + "\n"
