"""Open the service's database: an SQLite file by default (nothing to set up), PostgreSQL by
URL (``postgresql+psycopg://user@host/db``) where several service processes share one.

SQLite is opened in WAL mode with a busy timeout, so the server's worker threads and a second
process (``vmimage serve token create`` while the server runs) wait for each other instead of
failing with "database is locked"; foreign keys are switched on, as SQLite leaves them off.
A transaction that writes begins ``IMMEDIATE`` (:func:`writer`): a deferred one that read
first and then writes cannot wait for another writer in WAL mode, it fails at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from vmimage.errors import InputError

#: Drivers this service is tested with; ``postgresql://`` means psycopg 3 (psycopg2 is not a
#: dependency).
BACKENDS = ("sqlite", "postgresql")
_SQLITE_BUSY_MS = 10_000


def parse_url(text: str) -> URL:
    """The database URL, ``postgresql://`` read as psycopg 3.

    Raises:
        InputError: not a URL SQLAlchemy reads, or a database other than SQLite/PostgreSQL.
    """
    try:
        url = make_url(text)
    except ArgumentError:
        raise InputError("--db", "not a database URL (sqlite:///FILE or "
                                 "postgresql+psycopg://USER@HOST/DB)") from None
    if url.get_backend_name() not in BACKENDS:
        raise InputError("--db", f"{url.get_backend_name()!r} is not supported (choose SQLite "
                                 "or PostgreSQL)")
    if url.get_backend_name() == "postgresql":
        if url.get_driver_name() not in ("psycopg", "psycopg2"):
            raise InputError("--db", "PostgreSQL is reached with psycopg 3: use "
                                     "postgresql+psycopg://...")
        url = url.set(drivername="postgresql+psycopg")
    return url


def shown(url: URL) -> str:
    """The URL as it may be printed: the password hidden."""
    return url.render_as_string(hide_password=True)


def sqlite_url(path: Path) -> URL:
    """The URL of an SQLite file."""
    return URL.create("sqlite", database=os.fspath(path))


def open_engine(url: URL) -> Engine:
    """An engine for ``url``; an SQLite file's directory is created (mode 0700) if missing.

    Raises:
        InputError: the SQLite file's directory cannot be made.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        raise InputError("--db", "the service needs an SQLite file, not an in-memory database")
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(path.parent, f"cannot create the database directory: "
                                      f"{exc.strerror}") from None
    engine = create_engine(url.set(database=os.fspath(path)),
                           connect_args={"check_same_thread": False,
                                         "timeout": _SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # Safe with WAL (the database stays consistent); a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        cursor.close()
        # SQLAlchemy emits BEGIN itself (below), so that a writer can ask for IMMEDIATE.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")

    return engine


def writer(engine: Engine) -> Engine:
    """The engine for transactions that write: on SQLite they take the write lock first."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")
