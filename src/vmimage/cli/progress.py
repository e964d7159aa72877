"""Progress of long operations on stderr: a live bar on a terminal, plain lines in a log.

A conversion, an upload or a whole-file MD5 can take minutes. On a terminal the user sees a
bar; in CI, where stderr is a file, a bar is noise and nothing at all looks like a hang, so a
plain line is printed every ``VMIMAGE_PROGRESS_INTERVAL`` seconds (default 10) and once at the
end. Nothing here imports rich unless a terminal is there to draw on.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType

from vmimage.units import format_size

DEFAULT_INTERVAL = 10.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("VMIMAGE_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class Progress:
    """One operation's progress in bytes, ``what`` naming it (``convert``, ``upload``...).

    Use as a context manager; call :meth:`update` with the bytes done so far (and the total
    when it becomes known) or :meth:`advance` with the bytes just done.
    """

    def __init__(self, what: str, total: int | None = None, *, quiet: bool = False) -> None:
        self.what, self.total, self.done = what, total, 0
        self._quiet = quiet
        self._tty = not quiet and sys.stderr.isatty()
        self._interval = _interval()
        self._start = self._last = time.monotonic()
        self._bar: object | None = None
        self._task: object | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]
        elif not self._quiet and kind is None and self.done:
            self._line(final=True)

    def advance(self, n: int) -> None:
        """``n`` more bytes done."""
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` bytes of ``total`` (or of the total given before)."""
        self.done = done
        if total is not None:
            self.total = total
        if self._quiet:
            return
        if self._tty:
            self._draw()
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line()

    def _draw(self) -> None:
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as Bar

            from vmimage.report.console import console

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(),
                            console=console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        self._bar.update(self._task, completed=self.done, total=self.total)  # type: ignore[attr-defined]

    def _line(self, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = self.done / elapsed
        text = f"vmimage: {self.what}: {format_size(self.done)}"
        if self.total:
            text += f" of {format_size(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f", {format_size(int(rate))}/s"
        if final:
            text += f", done in {elapsed:.1f} s"
        elif self.total and rate > 0:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
