"""Diagnostics on stderr for ``--verbose`` and ``--debug``, never a secret.

Rules never print and formatters render reports; what a user asks to *see happening* (which
profile and configuration were chosen, each read of the image, each rule's time) goes through
the standard :mod:`logging` tree under ``vmimage``, silent unless the CLI turns it on. Every
message passes the one redactor first, so a SAS URL that reaches a debug line (an SDK error, a
URL being opened) shows ``sig=REDACTED``, as everywhere else.

Hot paths guard their calls with :func:`debugging` so a normal run pays one attribute test.
"""

from __future__ import annotations

import logging
import sys
import time

from vmimage.secrets import redact

ROOT = "vmimage"
_START = time.perf_counter()


_configured = False


def get(name: str) -> logging.Logger:
    """The logger for a part of vmimage (``get("reads")`` is ``vmimage.reads``).

    The first call installs the redacting stderr handler at warning level, so a warning is
    formatted and redacted even when the CLI did not configure logging (it does so only for
    ``--verbose``/``--debug``, to keep ``logging`` out of the fastest commands)."""
    if not _configured:
        configure()
    return logging.getLogger(f"{ROOT}.{name}")


def debugging(logger: logging.Logger) -> bool:
    """Whether ``logger`` would emit a debug line (cheap; call before building one)."""
    return logger.isEnabledFor(logging.DEBUG)


class _Redacting(logging.Formatter):
    """``vmimage: debug: +0.123s message``: the time since start, then the redacted message."""

    def format(self, record: logging.LogRecord) -> str:
        elapsed = record.created - _EPOCH
        text = redact(record.getMessage())
        if record.exc_info and record.levelno <= logging.DEBUG:
            text += " (" + redact(str(record.exc_info[1])) + ")"
        text = " ".join(text.split("\n"))
        return f"vmimage: {record.levelname.lower()}: +{elapsed:.3f}s {text}"


_EPOCH = time.time() - (time.perf_counter() - _START)


def configure(verbose: bool = False, debug: bool = False) -> None:
    """Send ``vmimage.*`` records to stderr: warnings always, info with ``verbose``, every
    read and timing with ``debug``. Idempotent (the CLI may be called twice in one process by
    tests)."""
    global _configured
    _configured = True
    root = logging.getLogger(ROOT)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        if getattr(handler, "_vmimage", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._vmimage = True  # type: ignore[attr-defined]
    handler.setFormatter(_Redacting())
    root.addHandler(handler)
