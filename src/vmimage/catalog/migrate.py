"""Bring the database to the schema of :mod:`vmimage.catalog.models`, by the Alembic
migrations shipped in this package (``migrations/``), at every start of the service.

On PostgreSQL, where several service processes may start at once against one database, the
upgrade holds an advisory lock, so the migrations run once and the others wait for them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_lock key: "vmimage" in ASCII, so that no other application's lock collides.
_LOCK_KEY = 0x766D696D616765


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision the shipped migrations end at."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "the package ships no migration"
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Apply every migration the database lacks; return the revision it is at."""
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        command.upgrade(_config(connection), "head")
        revision = current(connection)
    assert revision is not None
    return revision
