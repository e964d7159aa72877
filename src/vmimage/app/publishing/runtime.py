"""What a ``vmimage serve`` process runs with: its store and limits, handed from the command
that opened them to the application uvicorn loads (``vmimage.service.app:create``), and the
logging every line of the server goes through (redacted: no SAS signature, key or token is
ever logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vmimage.app.publishing.store import Store
from vmimage.jobs.model import JobSettings
from vmimage.secrets import redact

#: The largest request body by default: a 4 MiB manifest, JSON-escaped, fits.
MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class Runtime:
    """The store and the limits of this server process, and how it runs jobs."""

    store: Store
    max_body: int = MAX_BODY
    jobs: JobSettings = field(default_factory=JobSettings)
    #: Blob endpoints the certification runs may read besides Azure's (``--allow-endpoint``).
    allow_endpoints: tuple[str, ...] = ()


_runtime: Runtime | None = None


def configure(runtime: Runtime) -> None:
    """Set what :func:`current` returns (``vmimage serve`` does, before uvicorn starts)."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    """The runtime ``vmimage serve`` configured.

    Raises:
        RuntimeError: nothing configured it (the application was started without the
            command).
    """
    if _runtime is None:
        raise RuntimeError("start the service with `vmimage serve`")
    return _runtime


class RedactingFormatter(logging.Formatter):
    """A log line with every secret the redactor knows (or recognises) removed."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted line, redacted, on one line."""
        return " ".join(redact(super().format(record)).split("\n"))


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's ``log_config``: its error and access logs and vmimage's own, on stderr,
    through :class:`RedactingFormatter`."""
    formatter = {"()": f"{__name__}.RedactingFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "redacting",
               "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"redacting": formatter}, "handlers": {"stderr": handler},
            "loggers": {name: {"handlers": ["stderr"], "level": level, "propagate": False}
                        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "vmimage",
                                     "dramatiq")}}
