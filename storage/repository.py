"""The one Repository implementation: SQLAlchemy 2 Core on SQLite or PostgreSQL.

``SQLRepository`` holds the transactions, articles and stories here; its sources and
its outbox and the stories users see and correct are written in ``_sources``,
``_outbox`` and ``_stories``, the dedupe index rows in ``_index`` and the candidate
lookup SQL in ``_lookup``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConcurrentWriteError, StorageError
from monitor.types import (
    ArticleIntent,
    BatchCandidates,
    Candidate,
    DecisionKind,
    Fingerprint,
)

from . import models as m
from ._engine import (
    RETRY_FOR,
    error_detail,
    insert_ignoring,
    make_engine,
    retry_transactions,
    retrying,
    upsert,
)
from ._index import PendingIndex, Upkeep, index_values
from ._lookup import (
    BATCH_IDS,
    _batch_postings,
    _compared,
    _Decoded,
    _holding,
    _lookup,
    _own_keys,
    _rank_postings,
    _stored,
    chunks,
)
from ._outbox import OutboxStore, alert_payload
from ._sources import SourceStore
from ._stories import StoryStore, join_story, story_and_article, story_open

__all__ = ["SQLRepository", "alert_payload"]

log = logging.getLogger("monitor.storage")

DECODED = 3000  # candidates kept decoded (about 13 kB each, see _compared)


def _fp_to_json(fp: Fingerprint) -> dict[str, Any]:
    return {
        "keys": list(fp.keys),
        "bands": list(fp.bands),
        "terms": list(fp.terms),
        "data": fp.data,
        "version": fp.version,
    }


@retry_transactions(skip=("as_candidate", "close", "hold_lock", "ping", "transaction"))
class SQLRepository(SourceStore, StoryStore, OutboxStore):
    """Stores sources, articles, stories, matches and the outbox.

    Contract:
        - Every datetime in and out is UTC-aware; a naive one is refused. Text comes back
          as it went in, on both backends, less NUL and lone surrogates (``models``).
        - Each public method is one transaction (or part of the caller's, inside
          ``transaction``); ``add_article`` writes the article, its
          dedupe index rows, its story, its matches and its outbox rows together or not
          at all. A transaction that fails on a transient error (server restart, dropped
          connection, deadlock) rolled back and is run again with backoff, for up to
          ``retry_for`` seconds (``ping`` answers at once).
        - Errors from the database surface as ``StorageError``, chained.
        - Safe to share between threads (one engine, a connection per call); several
          processes may share one PostgreSQL database: work is claimed with leases
          (``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE`` in one transaction; on
          SQLite the transaction holds the write lock), rows are inserted once by their
          unique keys (``ON CONFLICT DO NOTHING``), and ``hold_lock`` serialises start-up.
        - The schema version is recorded; a database of a newer version is refused.
    """

    def __init__(self, url: str, *, echo: bool = False, retry_for: float = RETRY_FOR) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, echo=echo)
        self.dialect = self.engine.dialect.name
        self.retry_for = retry_for
        self._insert = insert_ignoring(self.dialect)
        self._local = threading.local()  # the connection of this thread's ``transaction``
        self._decoded = _Decoded(DECODED)
        self._upkeep = Upkeep(self.engine)
        # An article's statements, built once (building them cost more than running them).
        st = m.stories.c
        greatest = func.max if self.dialect == "sqlite" else func.greatest
        self._join_story = update(m.stories).where(  # a merged story is left alone
            st.id == bindparam("b_story"), st.merged_into.is_(None)).values(
            articles=st.articles + 1,
            last_at=greatest(st.last_at, bindparam("b_when", type_=st.last_at.type)))  # fmt: skip
        self._new_story = insert(m.stories).returning(st.id)
        self._new_article = self._insert(m.articles).returning(m.articles.c.id)
        if self.dialect == "postgresql":  # the story's statement and the article's in one
            written = [c for c in m.stories.columns if c.name not in ("id", "merged_into")]
            new_story = insert(m.stories).values(
                {c.name: bindparam(f"s_{c.name}", type_=c.type) for c in written})
            self._join_and_add = story_and_article(self._join_story.returning(st.id))
            self._new_and_add = story_and_article(new_story.returning(st.id))
        self._new_matches = insert(m.matches)
        self._new_alert = self._insert(m.outbox)  # one per story, watchlist and target

    # -- lifecycle ---------------------------------------------------------------------

    def create(self) -> None:
        """Create or migrate the schema to this code's revision; refuse a newer one.

        Raises:
            StorageError: the database is newer than this code, or unreachable.
        """
        from .schema import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def in_transaction(self) -> bool:
        """Whether this thread's calls are part of a ``transaction`` block."""
        return getattr(self._local, "conn", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make this thread's calls in the block one transaction: committed when the block
        ends, rolled back (nothing of it written) when it raises.

        Calls inside are not retried on their own, and one that would have rolled back
        its own transaction raises instead (``add_article`` finding its item stored
        already raises ``ConcurrentWriteError``): the block is the unit to run again.
        A nested block is part of the outer one.
        """
        if self.in_transaction:
            yield
            return
        pending = PendingIndex(self.engine.dialect)
        try:
            with self._tx() as conn:
                self._local.conn, self._local.pending = conn, pending
                try:
                    yield
                    self._flush_index(conn)
                finally:
                    self._local.conn = self._local.pending = None
        except BaseException:
            self._decoded.forget(pending.written)
            raise

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        shared = getattr(self._local, "conn", None)
        try:
            if shared is not None:
                yield shared
                return
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {error_detail(exc)}") from exc
        self._upkeep.committed()

    def release_leases(self) -> None:
        """Drop every lease (only for a database one daemon owns alone, e.g. SQLite)."""
        with self._tx() as conn:
            for table in (m.sources, m.outbox):
                conn.execute(update(table).where(table.c.lease_owner.is_not(None))
                             .values(lease_owner=None, lease_until=None))  # fmt: skip

    def ping(self) -> None:
        """One trivial query: the database answers, or ``StorageError``."""
        with self._tx() as conn:
            conn.execute(select(1)).scalar()

    @contextmanager
    def hold_lock(self, name: str) -> Iterator[None]:
        """Hold the database-wide lock ``name`` (waiting for it) while the block runs.

        On PostgreSQL a session advisory lock: daemons starting together on one database
        load the seed articles one after the other. SQLite needs none: one daemon per
        file holds the file lock.
        """
        if self.dialect != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    def get_meta(self, key: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(select(m.meta.c.value).where(m.meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute(upsert(self.dialect, m.meta, {"key": key, "value": value}, "key"))

    # -- articles ----------------------------------------------------------------------

    def get_seen_items(self, source: str, item_keys: Sequence[str]) -> set[str]:
        """The item keys of ``source`` already stored (one query per call)."""
        if not item_keys:
            return set()
        a = m.articles.c
        found: set[str] = set()
        with self._tx() as conn:
            for chunk in chunks(list(dict.fromkeys(item_keys)), 500):
                q = select(a.item_key).where(a.source == source, a.item_key.in_(chunk))
                found.update(conn.execute(q).scalars())
        return found

    def get_stored_items(self, items: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``items`` (source, item key) are stored (a query per 500 items)."""
        a = m.articles.c
        found: set[tuple[str, str]] = set()
        with self._tx() as conn:
            for chunk in chunks(list(dict.fromkeys(items)), 500):
                q = select(a.source, a.item_key).where(tuple_(a.source, a.item_key).in_(chunk))
                found.update((r.source, r.item_key) for r in conn.execute(q))
        return found

    def get_candidates(self, fp: Fingerprint, at: datetime, window: timedelta,
                       limit: int, *, per_term: int = 100) -> list[Candidate]:  # fmt: skip
        """Stored articles dedupe compares a new one with (``monitor.dedupe``'s contract).

        Every article sharing a key or a band (any age); and of the latest ``per_term``
        postings of each index term within ``window`` of ``at``, the ``limit`` articles
        found by most terms (ties: newest, then highest id). Each term reads at most
        ``per_term`` index entries, so the cost does not grow with the store.
        """
        keys, bands, terms = index_values(fp)
        if min(limit, per_term) <= 0:
            terms = []
        if not (keys or bands or terms):
            return []
        with self._tx() as conn:  # one round trip
            self._flush_index(conn)
            return _lookup(conn, self._decoded, keys, bands, terms,
                           (at - window, at + window), per_term, limit)  # fmt: skip

    def get_candidates_batch(self, probes: Sequence[tuple[Fingerprint, datetime]],
                             window: timedelta, limit: int, *,
                             per_term: int = 100) -> list[BatchCandidates]:  # fmt: skip
        """``get_candidates`` for a batch of articles in four statements (keys, bands, term
        postings, the candidates' rows; more only past ``ROWS_PER_QUERY`` values), each
        article seeing the earlier ones of the batch as if they were stored already.

        For the article at position ``n`` of ``probes`` (fingerprint and time), the
        candidates are those of the retrieval contract over the stored articles and
        ``probes[:n]``, on the assumption that each earlier article is stored, in order,
        with an id above every stored one, before article ``n`` is decided: the stored
        ones come back as ``Candidate``s, the earlier ones by position. When an earlier
        article is not stored after all, ``n`` must be looked up alone
        (``BatchCandidates`` says nothing about which articles its absence changes).
        """
        if not probes:
            return []
        indexed = [index_values(fp) for fp, _ in probes]
        keys, bands = [k for k, _, _ in indexed], [b for _, b, _ in indexed]
        use_terms = min(limit, per_term) > 0
        terms = [t if use_terms else [] for _, _, t in indexed]
        rows = [(n, at - window, at, at + window) for n, (_, at) in enumerate(probes)]
        found: list[set[int]] = [set() for _ in probes]
        with self._tx() as conn:
            self._flush_index(conn)
            for index, table in ((keys, m.article_keys), (bands, m.article_bands)):
                holders: dict[str, list[int]] = {}
                for n, vs in enumerate(index):
                    for v in vs:
                        holders.setdefault(v, []).append(n)
                for value, article_id in _holding(conn, table, list(holders)):
                    for n in holders[value]:
                        found[n].add(int(article_id))
            if any(terms):
                postings = _batch_postings(conn, rows, terms, per_term)
                for n, ranked in _rank_postings(postings, limit).items():
                    found[n].update(ranked)
            ids = sorted({i for f in found for i in f if i < BATCH_IDS})
            stored = _stored(conn, self._decoded, ids)
        _own_keys(keys, bands, found)
        return [BatchCandidates(
            stored=tuple(stored[i] for i in sorted(f) if i < BATCH_IDS and i in stored),
            earlier=tuple(sorted(i - BATCH_IDS for i in f if i >= BATCH_IDS)),
        ) for f in found]  # fmt: skip

    def as_candidate(self, intent: ArticleIntent, article_id: int, story_id: int) -> Candidate:
        """The stored article of ``intent`` as ``get_candidates`` would read it back (text
        and fingerprint cleaned and through JSON), without reading it."""
        # Only what _compared keeps goes through the cleaning and JSON.
        raw = _fp_to_json(replace(intent.fingerprint, bands=(), terms=()))
        fp = orjson.loads(m.json_as_stored(raw))
        when = intent.article.when.astimezone(UTC)
        found = Candidate(article_id=article_id, story_id=story_id, when=when,
                          title=m.clean_text(intent.article.title),
                          fingerprint=_compared(fp))  # fmt: skip
        self._decoded.put(found)
        return found

    def add_article(self, intent: ArticleIntent, now: datetime) -> int | None:
        """Store an article with its story, index rows, matches and outbox rows.

        Returns:
            The new article's id, or None when the item (source and item key) was already
            stored, by another daemon say: then nothing is written, story included.

        Raises:
            ConcurrentWriteError: the article is not a duplicate by its decision, but
                another article holding one of its keys (GUID, URL, text) was stored
                since the candidates were read: nothing is written; decide again.
        """
        stored = self._add_article(intent, now)
        return stored[0] if stored is not None else None

    def add_article_story(self, intent: ArticleIntent, now: datetime) -> tuple[int, int] | None:
        """``add_article``, returning the new article's id and the id of the story it is
        stored in (a batch decides its next article with both), or None."""
        return self._add_article(intent, now)

    def _add_article(self, intent: ArticleIntent, now: datetime) -> tuple[int, int] | None:
        with self._tx() as conn:
            written = self._story_and_article(conn, intent, now)
            if written is None:
                joined = self._story_for(conn, intent, now)
                written = joined, self._insert_article(conn, intent, joined)
            story_id, article_id = written
            if article_id is None or story_id is None:  # story_id is None only with it
                if self.in_transaction:  # the caller's transaction holds more than this
                    raise ConcurrentWriteError(
                        f"{intent.article.source}: the item was stored concurrently")
                conn.rollback()
                return None
            self._index(conn, article_id, intent)
            if intent.matches:  # one statement for all, built once
                conn.execute(self._new_matches, [{
                    "article_id": article_id, "story_id": story_id, "watchlist": match.watchlist,
                    "terms": list(match.terms), "created_at": now,
                } for match in intent.matches])  # fmt: skip
            for alert in intent.alerts:
                conn.execute(self._new_alert, {
                    "key": f"{story_id}/{alert.watchlist}/{alert.target}",
                    "story_id": story_id, "article_id": article_id,
                    "watchlist": alert.watchlist, "target": alert.target,
                    "payload": alert.payload, "status": "pending", "digest": alert.digest,
                    "attempts": 0, "next_attempt_at": alert.due or now, "created_at": now,
                })  # fmt: skip
        return article_id, story_id

    def _story_and_article(self, conn: Connection, intent: ArticleIntent,
                           now: datetime) -> tuple[int | None, int | None] | None:  # fmt: skip
        """On PostgreSQL, the story's and the article's rows in one statement: the new
        article's story id and id, or the article id None when it conflicts with a
        stored one (the story id too, for a new story; the caller rolls back). None when
        nothing was written: not PostgreSQL, or the story to join is merged or gone (the
        two statements of ``_story_for`` and ``_insert_article`` follow the merge)."""
        if self.dialect != "postgresql":
            return None
        d, art = intent.decision, intent.article
        values = {f"a_{c}": v for c, v in self._article_values(intent).items()}
        if d.story_id is None:
            values.update({f"s_{c}": v for c, v in self._story_values(intent, now).items()})
            row = conn.execute(self._new_and_add, values).first()
            return (row.story_id, row.id) if row is not None else (None, None)
        values.update(b_story=d.story_id, b_when=art.when)
        row = conn.execute(self._join_and_add, values).first()
        if row is not None:
            return row.story_id, row.id
        if not story_open(conn, d.story_id):
            return None  # the UPDATE wrote nothing, so neither did the INSERT
        return d.story_id, None

    def _story_for(self, conn: Connection, intent: ArticleIntent, now: datetime) -> int:
        d, art = intent.decision, intent.article
        if d.story_id is not None:
            return join_story(conn, self._join_story, d.story_id, art.when)
        values = self._story_values(intent, now)
        return int(conn.execute(self._new_story, values).scalar_one())

    @staticmethod
    def _story_values(intent: ArticleIntent, now: datetime) -> dict[str, Any]:
        """The new story row of ``intent``'s article (every column of ``stories`` but
        ``id`` and ``merged_into``)."""
        art = intent.article
        return {"title": art.title or art.body[:120], "first_at": art.when, "last_at": art.when,
                "articles": 1, "related_story_id": intent.decision.related_story_id,
                "created_at": now}  # fmt: skip

    def _insert_article(self, conn: Connection, intent: ArticleIntent,
                        story_id: int) -> int | None:  # fmt: skip
        values = {**self._article_values(intent), "story_id": story_id}
        found = conn.execute(self._new_article, values).scalar()
        return int(found) if found is not None else None

    @staticmethod
    def _article_values(intent: ArticleIntent) -> dict[str, Any]:
        """The article row of ``intent``: every column of ``articles`` but ``id`` and
        ``story_id`` (``story_and_article`` binds them all)."""
        art, d = intent.article, intent.decision
        return {
            "source": art.source, "item_key": intent.item_key, "title": art.title,
            "body": art.body, "url": art.url, "link": art.link, "guid": art.guid,
            "author": art.author, "published": art.published, "fetched": art.fetched,
            "at": art.when, "fingerprint": _fp_to_json(intent.fingerprint),
            "decision": d.kind.value, "level": d.level, "score": d.score, "reason": d.reason,
            "matched_article_id": d.article_id, "related_story_id": d.related_story_id,
            "backlog": intent.backlog, "pruned": False,
        }  # fmt: skip

    def _index(self, conn: Connection, article_id: int, intent: ArticleIntent) -> None:
        """Write the article's index rows (``_flush_index``); inside ``transaction`` they
        are held back and written with the others before the next read of the index and
        at the end.

        Raises:
            ConcurrentWriteError: when written now, as ``_flush_index``.
        """
        held: PendingIndex | None = getattr(self._local, "pending", None)
        pending = held if held is not None else PendingIndex(conn.dialect)
        pending.add(article_id, intent.fingerprint, intent.article.when,
                    checked=intent.decision.kind is not DecisionKind.DUPLICATE)
        if held is None:
            self._flush_index(conn, pending)

    def _flush_index(self, conn: Connection, pending: PendingIndex | None = None) -> None:
        """Write the index rows of ``pending`` (by default those ``transaction`` holds
        back): one statement per index.

        Raises:
            ConcurrentWriteError: a key of an article that is not a duplicate belongs to
                another one (stored by another daemon since the candidates were read).
        """
        if pending is None:
            pending = getattr(self._local, "pending", None)
        if not pending:
            return
        self._upkeep.written(len(pending))
        pending.write(conn, self._insert)

    def get_article(self, article_id: int) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(select(m.articles).where(m.articles.c.id == article_id)).first()
        return dict(row._mapping) if row else None

    def iter_articles(self, since: datetime | None = None, *,
                      batch: int = 1000) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Stored (not pruned) articles, newest first, in batches of ``batch``."""
        a = m.articles.c
        cols = (a.id, a.source, a.title, a.body, a.url, a.link, a.at, a.story_id)
        last: tuple[datetime, int] | None = None
        while True:
            q = select(*cols).where(a.pruned.is_(False)).order_by(a.at.desc(), a.id.desc())
            if since is not None:
                q = q.where(a.at >= since)
            if last is not None:
                q = q.where(or_(a.at < last[0], and_(a.at == last[0], a.id < last[1])))
            rows = self._rows(q.limit(batch))
            yield from (dict(r._mapping) for r in rows)
            if len(rows) < batch:
                return
            last = (rows[-1].at, rows[-1].id)

    @retrying
    def _rows(self, query: Any) -> list[Any]:
        with self._tx() as conn:
            return list(conn.execute(query).all())

    def count_articles(self, since: datetime | None = None, *,
                       include_pruned: bool = True) -> int:  # fmt: skip
        """Stored articles (of time ``at`` >= ``since``); ``include_pruned=False`` counts
        only those that still have their body, as ``iter_articles`` yields them."""
        a = m.articles.c
        q = select(func.count()).select_from(m.articles)
        if since is not None:
            q = q.where(a.at >= since)
        if not include_pruned:
            q = q.where(a.pruned.is_(False))
        with self._tx() as conn:
            return int(conn.execute(q).scalar_one())

    def get_entry_counts(self, since: datetime) -> dict[str, int]:
        """``source -> articles stored from it`` (fetched at or after ``since``)."""
        a = m.articles.c
        with self._tx() as conn:
            rows = conn.execute(select(a.source, func.count()).where(a.fetched >= since)
                                .group_by(a.source)).all()  # fmt: skip
        return {str(source): int(n) for source, n in rows}

    def prune_articles(self, before: datetime, *, limit: int = 500) -> int:
        """Drop the bodies of up to ``limit`` articles fetched before ``before``, oldest first.

        The rows stay, with their item key, fingerprint, story, decision and index rows, so
        a pruned article that comes back is still recognised (same item, same text, same
        story); only ``body`` becomes empty and ``pruned`` true. One transaction per call.

        Returns:
            How many articles were pruned now (less than ``limit``: nothing older is left).
        """
        a = m.articles.c
        with self._tx() as conn:
            ids = conn.execute(select(a.id).where(a.pruned.is_(False), a.fetched < before)
                               .order_by(a.fetched).limit(limit)).scalars().all()  # fmt: skip
            if ids:
                conn.execute(update(m.articles).where(a.id.in_(ids))
                             .values(body="", pruned=True))  # fmt: skip
        return len(ids)
