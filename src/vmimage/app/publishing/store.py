"""The service's store: the database (SQLite file or PostgreSQL), the key that seals SAS
tokens, and the profile every rule is judged by, opened once per process.

Every use case runs in one transaction of :meth:`Store.read` or :meth:`Store.write`; a
unique-key race between two requests (two creates of one offer) becomes a
:class:`~vmimage.app.publishing.errors.Conflict`, never an error page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vmimage.app.catalog import profile as load_profile
from vmimage.app.publishing.errors import Conflict, PublishingError
from vmimage.catalog import db, migrate
from vmimage.catalog.sealing import Sealer, load_key
from vmimage.profiles import DEFAULT_PROFILE, Profile
from vmimage.rules import Subject

DB_FILE = "service.db"
KEY_FILE = "service.key"


class Unavailable(PublishingError):
    """The database cannot be reached or used (a 503 for the routers)."""

    status = 503


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/vmimage``, else ``~/.local/state/vmimage``: where the SQLite file
    and the sealing key live unless told otherwise."""
    base = os.environ.get("XDG_STATE_HOME")
    return (Path(base) if base else Path("~/.local/state").expanduser()) / "vmimage"


@dataclass
class Store:
    """One process's handle on the service's records."""

    engine: Engine
    sealer: Sealer
    profile: Profile
    #: The database URL as it may be shown (password hidden).
    database: str
    revision: str
    _reader: sessionmaker[Session]
    _writer: sessionmaker[Session]

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads."""
        with _mapped(), self._reader.begin() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that writes (on SQLite it takes the write lock first), committed when
        the block ends without an error, rolled back otherwise."""
        with _mapped(), self._writer.begin() as session:
            yield session

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise Conflict("another request changed the same record at the same time: send it "
                       "again") from None
    except OperationalError as exc:
        raise Unavailable(f"the database is not available: {type(exc.orig).__name__}") from None


def open_store(database: str | None = None, *, state_dir: Path | None = None,
               key_file: Path | None = None, profile: str | Profile = DEFAULT_PROFILE,
               migrate_schema: bool = True) -> Store:
    """Open (and by default migrate) the database, load the sealing key and the profile.

    ``database`` is a URL (``sqlite:///FILE``, ``postgresql+psycopg://...``); None means the
    SQLite file ``service.db`` in ``state_dir`` (default :func:`default_state_dir`).

    Raises:
        InputError: the URL, the key file or the profile cannot be used.
        Unavailable: the database cannot be reached.
    """
    state = state_dir if state_dir is not None else default_state_dir()
    url = db.parse_url(database) if database else db.sqlite_url(state / DB_FILE)
    policy = load_profile(profile, (Subject.MANIFEST, Subject.SAS_URI))
    sealer = Sealer(load_key(key_file if key_file is not None else state / KEY_FILE))
    engine = db.open_engine(url)
    try:
        with _mapped():
            if migrate_schema:
                revision = migrate.upgrade(engine)
            else:
                with engine.connect() as connection:
                    revision = migrate.current(connection) or "none"
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, sealer, policy, db.shown(url), revision,
                 sessionmaker(engine, expire_on_commit=False),
                 sessionmaker(db.writer(engine), expire_on_commit=False))
