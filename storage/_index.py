"""The dedupe index an article's fingerprint writes (``article_keys``, ``article_bands``,
``article_terms``) and the values a lookup asks it for, from one function
(``index_values``), so the two cannot drift apart."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from monitor.errors import ConcurrentWriteError, StorageError
from monitor.types import Fingerprint

from . import models as m
from ._engine import error_detail
from ._lookup import _bind, chunks

log = logging.getLogger("monitor.storage")

# On PostgreSQL the index tables are vacuumed each time this many rows were written to
# them (about 400 articles' worth), by whichever daemon wrote the last of them
# (``Upkeep``).
VACUUM_ROWS = 20_000


class PendingIndex:
    """Index rows of a ``transaction`` not written yet, and the keys to check. Band and
    term rows are kept as the driver takes them (``insert_rows``)."""

    def __init__(self, dialect: Any) -> None:
        self._band = _bind(m.article_bands.c.band.type, dialect)
        self._term = _bind(m.article_terms.c.term.type, dialect)
        self._at = _bind(m.article_terms.c.at.type, dialect)
        self.keys: list[dict[str, Any]] = []
        self.bands: list[tuple[Any, ...]] = []
        self.terms: list[tuple[Any, ...]] = []
        self.checked: dict[str, int] = {}  # key -> the article it must belong to
        self.written: list[int] = []  # every article of the transaction

    def __bool__(self) -> bool:
        return bool(self.keys or self.bands or self.terms)

    def __len__(self) -> int:
        """The index rows held."""
        return len(self.keys) + len(self.bands) + len(self.terms)

    def add(self, article_id: int, fp: Fingerprint, at: datetime, *, checked: bool) -> None:
        keys, bands, terms = index_values(fp)
        self.written.append(article_id)
        self.keys += [{"key": key, "article_id": article_id} for key in keys]
        if checked:
            self.checked.update(dict.fromkeys(keys, article_id))
        band, term, at_ = self._band, self._term, self._at(at)
        self.bands += [(band(b), article_id) for b in bands]
        self.terms += [(term(t), at_, article_id) for t in terms]

    def clear(self) -> None:
        self.keys, self.bands, self.terms, self.checked = [], [], [], {}

    def write(self, conn: Connection, insert_ignoring: Callable[[Table], Any]) -> None:
        """Write the rows held, one statement per index, and forget them.

        Raises:
            ConcurrentWriteError: a key of an article that is not a duplicate belongs to
                another one (stored by another daemon since the candidates were read).
        """
        if self.keys:
            conn.execute(insert_ignoring(m.article_keys), self.keys)
            k = m.article_keys.c
            holders = select(k.key, k.article_id).join(m.articles, m.articles.c.id == k.article_id)
            for chunk in chunks(list(self.checked)):
                for key, holder in conn.execute(holders.where(k.key.in_(chunk))):
                    if holder != self.checked[key]:
                        raise ConcurrentWriteError(
                            f"article {self.checked[key]}: an article with the same key "
                            "was stored concurrently; decide again")  # fmt: skip
        if self.bands:
            insert_rows(conn, m.article_bands, ("band", "article_id"), self.bands)
        if self.terms:
            insert_rows(conn, m.article_terms, ("term", "at", "article_id"), self.terms)
        self.clear()


class Upkeep:
    """Keeps the lookups of the index tables reading the index alone, on PostgreSQL.

    A candidate lookup reads each term's latest postings from the index of
    ``article_terms`` (term, time, article), and keys and bands likewise: an index-only
    scan. It reads the table's rows as well wherever the visibility map does not yet
    mark a page visible to every transaction, which only VACUUM does, and the pages a
    lookup reads most are those written last. Autovacuum takes these tables after every
    100,000 inserted rows (revision 0006) and at most once a minute, so in a busy cycle
    most of the postings a lookup read were not marked: in a 200-feed first cycle the
    postings statement took 60-72 ms a chunk, and 44-47 ms with the tables vacuumed
    every 1,000 articles; a lookup of 1,500 terms took 0.048 against 0.018 ms a term.

    So after a commit, once ``VACUUM_ROWS`` index rows were written since the last time,
    the three tables are vacuumed (``SKIP_LOCKED``: a table autovacuum or another daemon
    is vacuuming is left to it). It reads only the pages written since: a few
    milliseconds. A failure (an old server) is logged once and the tables are left to
    autovacuum; a role that does not own them gets a warning in the server's log only.

    The first of these vacuums, and then each one by which the rows this daemon wrote
    had doubled since the last, also ANALYZEs the tables (bounded by PostgreSQL's sample
    size: 0.03-0.2 s for the three, the vacuum with it, in a 500-feed first cycle; six
    of its 52 vacuums analyzed). Without statistics the planner
    takes a band lookup of 1,600 values to match every row and reads the whole table:
    62-65 ms against 15 ms by the index at 370,000 rows, 13 s of a 500-feed first cycle.
    Autovacuum analyzes too, but at most once a minute, and a server may run without it.
    SQLite needs none of this.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._on = engine.dialect.name == "postgresql"
        self._rows = 0  # since the last vacuum
        self._total = 0  # since the start
        self._analyze_at = VACUUM_ROWS  # ... doubled at each ANALYZE
        self._lock = threading.Lock()
        quoted = engine.dialect.identifier_preparer.format_table
        self._tables = ", ".join(map(quoted, (m.article_terms, m.article_keys, m.article_bands)))

    def written(self, rows: int) -> None:
        """Count ``rows`` index rows written (committed or not: a rollback leaves them
        for VACUUM too)."""
        if self._on:
            with self._lock:
                self._rows += rows
                self._total += rows

    def committed(self) -> None:
        """Vacuum the index tables if enough rows were written since the last time."""
        if not self._on or self._rows < VACUUM_ROWS:
            return
        with self._lock:
            rows = self._rows
            if rows < VACUUM_ROWS:  # another thread took them
                return
            self._rows = 0
            analyze = self._total >= self._analyze_at
            if analyze:
                self._analyze_at = 2 * self._total
        start = time.perf_counter()
        try:
            with self._engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                options = "SKIP_LOCKED, ANALYZE" if analyze else "SKIP_LOCKED"
                conn.exec_driver_sql(f"VACUUM ({options}) {self._tables}")
        except SQLAlchemyError as exc:
            self._on = False
            log.warning("index.vacuum failed, left to autovacuum: %s", error_detail(exc, 200))
            return
        log.debug("index.vacuum rows=%d analyze=%s seconds=%.3f", rows, analyze,
                  time.perf_counter() - start)  # fmt: skip


def insert_rows(conn: Connection, table: Any, names: tuple[str, ...],
                rows: list[tuple[Any, ...]]) -> None:  # fmt: skip
    """INSERT ``rows`` (values of the columns ``names``, processed by ``_bind``) into
    ``table`` through the driver's executemany: SQLAlchemy's took several times as long
    as the inserts, processing each row's parameters. On PostgreSQL the rows are copied
    in (``COPY … FROM STDIN``): 5,000 term rows took 62-103 ms as an executemany, 16-22
    ms copied."""
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, table, names, rows)
        return
    sql, order = _insert_sql(conn.dialect, table, names)
    if conn.dialect.positional:
        index = [names.index(n) for n in order]
        params: list[Any] = rows if index == list(range(len(names))) else [
            tuple(r[i] for i in index) for r in rows]  # fmt: skip
    else:
        params = [dict(zip(names, r, strict=True)) for r in rows]
    conn.exec_driver_sql(sql, params)


def _copy_rows(conn: Connection, table: Any, names: tuple[str, ...],
               rows: list[tuple[Any, ...]]) -> None:  # fmt: skip
    """``rows`` copied into ``table`` on the connection's transaction, a driver error
    raised as SQLAlchemy's (so it is told transient or not as any other)."""
    import psycopg
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)))
    raw = conn.connection.driver_connection
    if raw is None:
        raise StorageError(f"{table.name}: the database connection is closed")
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(f"COPY {table.name}", None, exc, psycopg.Error,
                                  dialect=conn.dialect) from exc  # fmt: skip


@functools.lru_cache(maxsize=16)
def _insert_sql(dialect: Any, table: Any, names: tuple[str, ...]) -> tuple[str, list[str]]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    return compiled.string, list(compiled.positiontup or names)


def index_values(fp: Fingerprint) -> tuple[list[str], list[str], list[str]]:
    """The keys, bands and terms of ``fp`` as the index stores them, each once: what is
    written and what a lookup asks for are the same values. None is empty: a lookup pads
    its lists with the empty string (``_lookup._padded``)."""
    keys = (_index_key(k) for k in fp.keys)
    return (list(dict.fromkeys(k for k in keys if k)),
            list(dict.fromkeys(b for b in fp.bands if b)),
            list(dict.fromkeys(t[:200] for t in fp.terms if t)))  # fmt: skip


def _index_key(key: str) -> str:
    """A dedupe key as stored (cleaned, 200 characters at most): a longer one by its hash,
    so two long URLs that share a beginning stay different keys."""
    key = m.clean_text(key)
    if len(key) <= 200:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
