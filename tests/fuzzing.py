"""Run untrusted-input code the way the fuzz tests need: bounded in time and memory, in a child.

Every fuzz test asserts the same three things of a parser fed hostile bytes: it raises nothing
but the typed input error (``vmimage.errors.VmimageError``, which the CLI prints as one line and
exit 2), it finishes within a time bound, and it stays within a memory bound. A hang or a
runaway allocation in the test process would take the whole suite down with it, so each call
runs in a forked child with ``RLIMIT_AS`` raised only by the budget over what the child already
maps, and an alarm. The parent reports what happened as an :class:`Ending`.

    ending = run_bounded(lambda: parse(data))
    assert ending.ok, ending
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

MiB = 1024 * 1024
#: What one call may take by default: CI machines have 2 cores and run two workers.
DEFAULT_SECONDS = 10.0
DEFAULT_MEMORY = 512 * MiB


@dataclass(frozen=True)
class Ending:
    """How a bounded call ended: ``returned``, ``input-error`` (a VmimageError: the typed,
    one-line refusal), ``crash`` (any other exception), ``timeout`` or ``killed``."""

    kind: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Returned, or refused with the typed error: what every hostile input must get."""
        return self.kind in ("returned", "input-error")


def _mapped_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(fn: Callable[[], object], seconds: float, memory: int, out: int) -> None:
    from vmimage.errors import VmimageError

    limit = _mapped_bytes() + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the alarm kills: no handler to outrun
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        fn()
        result = ("returned", "")
    except VmimageError as exc:
        text = str(exc)
        result = ("input-error", text) if "\n" not in text else ("crash", f"multi-line: {text!r}")
    except MemoryError:
        result = ("crash", "MemoryError: over the memory bound")
    except BaseException as exc:  # the finding: anything but the typed error
        result = ("crash", f"{type(exc).__name__}: {exc}"[:2000])
    with os.fdopen(out, "wb") as fh:
        pickle.dump(result, fh)


def run_bounded(fn: Callable[[], object], *, seconds: float = DEFAULT_SECONDS,
                memory: int = DEFAULT_MEMORY) -> Ending:
    """Call ``fn()`` in a forked child limited to ``seconds`` and ``memory`` more bytes."""
    read, write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _child(fn, seconds, memory, write)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    took = time.monotonic() - started
    if data:
        kind, detail = pickle.loads(data)
        return Ending(kind, detail, took)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        return Ending("timeout", f"over {seconds:g} s", took)
    return Ending("killed", f"wait status {status}", took)


@dataclass(frozen=True)
class CliRun:
    """What ``vmimage ARGS`` did in a bounded child: exit code (None: it did not exit by
    itself), its output and how it ended."""

    code: int | None
    stdout: str
    stderr: str
    ending: Ending


def run_cli_bounded(args: list[str], *, seconds: float = 60.0,
                    memory: int = 2048 * MiB) -> CliRun:
    """Run ``vmimage ARGS`` as its console script does, in a forked child (no interpreter start:
    hundreds of runs stay cheap), with stdin closed and stdout/stderr captured."""
    import sys
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        codes: list[int] = []

        def call() -> None:
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's own streams
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            sys.argv = ["vmimage", *args]
            from vmimage.cli import main

            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(err.fileno(), f"\n\0EXIT {code}\n".encode())
                raise SystemExit(code) from None

        ending = run_bounded(call, seconds=seconds, memory=memory)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        raw_err = err.read().decode("utf-8", "replace")
    stderr, _, tail = raw_err.rpartition("\n\0EXIT ")
    if tail:
        codes.append(int(tail.strip()))
    else:
        stderr = raw_err
    return CliRun(codes[0] if codes else None, stdout, stderr, ending)
