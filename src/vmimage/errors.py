"""Typed errors: the library raises them, only the CLI turns them into messages and exit codes."""

from __future__ import annotations

import os


class VmimageError(Exception):
    """Base of every error vmimage raises on purpose."""

    exit_code = 2


class InputError(VmimageError):
    """An input (file, URL, argument) cannot be used.

    The message always names the input and the problem on one line, because the CLI prints
    exactly ``vmimage: <input>: <problem>`` and exits 2.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = os.fspath(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class UnsupportedError(InputError):
    """The input is valid but of a kind vmimage does not handle (a differencing VHD, btrfs...)."""
