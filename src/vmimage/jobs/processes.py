"""``vmimage serve worker --processes N``: N worker processes under one supervisor.

Each process runs the same worker (its own database connections, its own Redis connection,
its own threads); the supervisor forks them before opening anything, restarts one that dies
(a crash, an OOM kill: its jobs are taken over through their leases meanwhile), and on SIGTERM
or Ctrl-C stops them all gracefully. One process needs no supervisor: the worker runs in the
command's own process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

_log = logging.getLogger("vmimage.jobs")
#: Seconds between two restarts of a worker process that keeps dying.
RESTART_DELAY = 1.0
#: Seconds the supervisor waits for its processes to stop before it kills them.
STOP_GRACE = 20.0

Child = Callable[[threading.Event], None]


def _fork(child: Child) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the child: SIGTERM and Ctrl-C reach it as the command's own (KeyboardInterrupt)
        child(threading.Event())
    except KeyboardInterrupt:
        code = 0
    except BaseException as exc:
        print(f"vmimage: worker process {os.getpid()} failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def supervise(processes: int, child: Child) -> None:
    """Run ``child`` in ``processes`` processes until interrupted (in this process if one)."""
    if processes <= 1:
        child(threading.Event())
        return
    children = {_fork(child) for _ in range(processes)}
    try:
        while True:
            pid, status = os.wait()
            if pid not in children:
                continue
            children.discard(pid)
            _log.warning("worker process %d ended (%s): starting another", pid,
                         _how(status))
            time.sleep(RESTART_DELAY)
            children.add(_fork(child))
    finally:
        _stop(children)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _stop(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        for pid in list(children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                children.discard(pid)
        time.sleep(0.05)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
