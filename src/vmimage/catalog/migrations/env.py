"""Alembic's environment: the connection comes from :func:`vmimage.catalog.migrate.upgrade`
(or a maintainer's ``alembic`` run through the same configuration), the target schema from
the models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from vmimage.catalog.models import Base

config = context.config
connection: Connection | None = config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline SQL generation is not offered
    raise RuntimeError("vmimage's migrations run through vmimage.catalog.migrate")
# Batch mode: SQLite cannot ALTER most things; Alembic copies the table instead.
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
