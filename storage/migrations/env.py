"""Alembic environment: runs on the connection the monitor hands over (see storage.schema)."""

from __future__ import annotations

from alembic import context

from storage.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by the alembic command line
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    connection = engine.connect()

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
