"""Where a use case hands work to the job engine, once what it recorded is committed.

The engine is plugged in by the server or worker that runs one (:mod:`.jobs`); without one
(a tool that only opens the store) the work stays recorded and waits: an engine that starts
later finds it. Certification requests and classic registrations each have one
:class:`Starter`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

#: Not vmimage.log.get(): in the server, uvicorn's logging configuration (redacting) owns it.
_log = logging.getLogger("vmimage.service")
T = TypeVar("T")


class Starter(Generic[T]):
    """The engine's entry point for one kind of work, set and cleared by the engine."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._starter: Callable[[T], object] | None = None
        self._lock = threading.Lock()

    def set(self, starter: Callable[[T], object] | None) -> None:
        """Register the engine's entry point (None: work waits, unstarted)."""
        with self._lock:
            self._starter = starter

    def start(self, item: T, name: str) -> None:
        """Hand ``item`` (``name`` in the log) to the engine; a failure only logs: the work
        stays recorded and an engine picks it up at its next start."""
        with self._lock:
            starter = self._starter
        if starter is None:
            _log.info("%s %s waits: no job engine is registered", self._what, name)
            return
        try:
            starter(item)
        except Exception as exc:
            _log.warning("%s %s was not started: %s", self._what, name, exc)
