"""Schema versions: Alembic migrations, applied at start, newer schemas refused.

The revision the code expects is ``HEAD``. At start the stored revision is read with one
plain query; Alembic is imported only when there is something to migrate, so a normal
start costs nothing extra.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StorageError

__all__ = ["HEAD", "current_revision", "upgrade"]

HEAD = "0007"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x6D6F6E69746F72  # PostgreSQL advisory lock key held while migrating


def current_revision(engine: Engine) -> str | None:
    """The stored schema revision, or None for an empty database."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the schema version: {type(exc).__name__}") from exc


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the schema to ``revision`` (default: this code's head). Returns the revision.

    Raises:
        StorageError: the database holds a revision this code does not know (a newer
            monitor wrote it), or a migration failed.
    """
    found = current_revision(engine)
    if found == HEAD and revision == "head":
        return HEAD
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
    if found is not None and found not in known:
        raise StorageError(f"database schema revision {found} is newer than this code "
                           f"(which knows up to {HEAD}); upgrade the monitor")  # fmt: skip
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # daemons starting together migrate once
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as exc:
        raise StorageError(f"schema migration failed: {type(exc).__name__}") from exc
    return current_revision(engine) or ""
