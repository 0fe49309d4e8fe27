"""Engines and transactions that behave the same on SQLite and PostgreSQL.

- ``make_engine``: SQLite in WAL mode whose transactions begin ``IMMEDIATE`` (a claim's
  SELECT and UPDATE are one atomic step, as ``FOR UPDATE SKIP LOCKED`` makes them on
  PostgreSQL); PostgreSQL with pre-ping (a connection the server dropped while idle in
  the pool is replaced before use), a connect timeout and TCP keep-alives.
- ``retry_transactions``: every public method of a repository is one transaction; one
  that fails on a transient error (the server restarting, a dropped connection, a
  deadlock, a busy SQLite file) rolled back, so it is run again, with backoff, for up to
  ``retry_for`` seconds.
- ``insert_ignoring`` / ``upsert``: ``INSERT … ON CONFLICT`` for the dialect in use.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from monitor.errors import StorageError

__all__ = [
    "RETRY_FOR",
    "error_detail",
    "insert_ignoring",
    "is_transient",
    "make_engine",
    "retry_transactions",
    "retrying",
    "safe_url",
    "upsert",
]

log = logging.getLogger("monitor.storage")

RETRY_FOR = 30.0  # seconds a failing transaction is retried: covers a server restart
FIRST_DELAY = 0.05  # seconds; doubles per attempt
MAX_DELAY = 2.0
# SQLSTATE classes and codes after which the same transaction may well succeed:
# 08 connection exception, 57P01-03 server shutting down or starting, 53300 too many
# connections, 40001 serialization failure, 40P01 deadlock.
_TRANSIENT_STATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)

T = TypeVar("T")


def error_detail(exc: BaseException, limit: int = 300) -> str:
    """A database error in one line: its type and the first line of the driver's message
    (SQLAlchemy's own adds the statement and its parameters), at most ``limit`` characters
    of it."""
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:limit]
    return f"{type(exc).__name__}: {detail}"


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` (a SQLAlchemy error) leaves the database usable a moment later."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY
    state = getattr(orig, "sqlstate", None)
    if state is None:  # psycopg: a client-side connection failure (refused, closed, reset)
        return True
    return str(state).startswith(_TRANSIENT_STATES)


def retrying(method: Callable[..., T]) -> Callable[..., T]:
    """Method decorator: run ``method`` (one transaction) again on a transient error."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        if getattr(self, "in_transaction", False):  # part of the caller's transaction
            return method(self, *args, **kwargs)
        deadline = time.monotonic() + self.retry_for
        delay, attempt = FIRST_DELAY, 0
        while True:
            try:
                return method(self, *args, **kwargs)
            except StorageError as exc:
                wait = delay * random.uniform(0.5, 1.0)
                if not is_transient(exc.__cause__) or time.monotonic() + wait > deadline:
                    raise
                attempt += 1
                log.warning("storage.retry method=%s attempt=%d in=%.2fs error=%s",
                            method.__name__, attempt, wait, exc)  # fmt: skip
                time.sleep(wait)
                delay = min(delay * 2, MAX_DELAY)

    return call


def retry_transactions(*, skip: tuple[str, ...] = ()) -> Callable[[type[T]], type[T]]:
    """Class decorator: retry each public method (one transaction) on transient errors.

    The instance must have ``retry_for`` (seconds) and its methods must translate
    database errors into ``StorageError`` chained from the SQLAlchemy error. A call made
    while the instance's ``in_transaction`` is true is part of the caller's transaction
    and is not retried on its own. Generator methods and those named in ``skip`` are left
    as they are.
    """

    def wrap(cls: type[T]) -> type[T]:
        for name, value in list(vars(cls).items()):
            if (name.startswith("_") or name in skip or not inspect.isfunction(value)
                    or inspect.isgeneratorfunction(value)):  # fmt: skip
                continue
            setattr(cls, name, retrying(value))
        return cls

    return wrap


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (fingerprints above all: every candidate a new article is compared with is
# read back) through orjson, several times faster than the json module both ways.
_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (see the module docstring).

    Raises:
        StorageError: the URL is unusable or its driver is missing.
    """
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url, echo=echo)
        args: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1,
                                "keepalives_idle": 30, "keepalives_interval": 10,
                                "keepalives_count": 3}  # fmt: skip
        if "application_name" not in make_url(url).query:
            args["application_name"] = "monitor"
        return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=args, **_JSON)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StorageError(f"cannot open database {safe_url(url)}: {type(exc).__name__}") from None


WAL_CHECKPOINT_PAGES = 10_000  # of SQLite's 4 kB pages


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30}, **_JSON)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver begins nothing; "begin" below does
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Copy the WAL into the database every 40 MB, not every 4 MB: a poll cycle's
        # chunk of new articles writes a few MB, so the default checkpointed (and
        # synced) at nearly every commit, 5% of an all-new cycle; this halves it.
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # The write lock up front: a SELECT then UPDATE cannot interleave with another
        # writer, and a second writer waits (busy timeout) instead of failing to upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def insert_ignoring(dialect: str) -> Callable[[Table], Any]:
    """``INSERT … ON CONFLICT DO NOTHING`` for the dialect in use."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return lambda table: pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return lambda table: sqlite_insert(table).on_conflict_do_nothing()


def upsert(dialect: str, table: Table, values: dict[str, Any], key: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` setting every other column of ``values``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as make_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as make_insert  # type: ignore[assignment]
    stmt = make_insert(table).values(**values)
    return stmt.on_conflict_do_update(
        index_elements=[key],
        set_={k: stmt.excluded[k] for k in values if k != key},
    )


def safe_url(url: str) -> str:
    """``url`` with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "(unparsable URL)"
