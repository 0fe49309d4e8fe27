"""Candidate lookup in SQL: ``monitor.dedupe``'s retrieval contract for one article
(``_lookup``) or a batch of them (``_holding``, ``_batch_postings``,
``_rank_postings``, ``_stored``), and the stored candidates as dedupe compares them
(``_compared``, kept decoded by ``_Decoded``). ``SQLRepository.get_candidates`` and
``get_candidates_batch`` run them.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
    union,
    union_all,
)

from monitor.types import Candidate, Fingerprint

from . import models as m

# In a batch lookup's term ranking, the batch's own articles count with ids above every
# stored one (``get_candidates_batch``): they are stored after it, in batch order.
BATCH_IDS = 1 << 62
ROWS_PER_QUERY = 2000  # ids bound in one IN list (old SQLite builds allow 32,766 in all)
T = TypeVar("T")


def chunks(items: list[T], size: int = ROWS_PER_QUERY) -> Iterator[list[T]]:
    """``items`` in slices of at most ``size``: the values one statement binds."""
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def _lookup(conn: Connection, decoded: _Decoded, keys: list[str], bands: list[str],
            terms: list[str], window: tuple[datetime, datetime], per: int,
            limit: int) -> list[Candidate]:  # fmt: skip
    """The candidates of one article in one statement: those sharing a key or a band,
    and the ``limit`` the level-3 lookup of ``terms`` in ``window`` finds (``_by_terms``).

    The statement is compiled once per size class of the keys, bands and terms (padded
    with values no row holds) and sent to the driver as it is, and a fingerprint is
    decoded only when ``decoded`` does not hold it: SQLAlchemy's compiling, binding and
    decoding every row took longer than the query. Compiling one took 7-15 ms: with a
    statement for every exact count, the first lookups of each count were the 99th
    percentile of 500 lookups (15-19 ms, against 4 ms once compiled).
    """
    keys, bands = _padded(keys, 4), _padded(bands, 16)
    terms = _padded(terms, 8) if terms else terms
    sql, names, fixed = _candidates_sql(conn.dialect, len(keys), len(bands), len(terms))
    d, t = conn.dialect, m.article_terms.c
    key_, band_, term_, at_ = (_bind(c.type, d) for c in (
        m.article_keys.c.key, m.article_bands.c.band, t.term, t.at))  # fmt: skip
    bound: dict[str, Any] = {**fixed, "per": per, "limit": limit,
                             "low": at_(window[0]), "high": at_(window[1])}  # fmt: skip
    bound.update({f"k{i}": key_(v) for i, v in enumerate(keys)})
    bound.update({f"b{i}": band_(v) for i, v in enumerate(bands)})
    bound.update({f"t{i}": term_(v) for i, v in enumerate(terms)})
    when_ = _result(m.articles.c.at.type, d)
    return [_from_row(decoded, when_, row) for row in _run(conn, sql, names, bound)]


def _stored(conn: Connection, decoded: _Decoded, ids: list[int]) -> dict[int, Candidate]:
    """The stored articles ``ids`` as candidates, by id: those ``decoded`` holds read only
    their story (and time, to tell a reused id)."""
    out: dict[int, Candidate] = {}
    when_ = _result(m.articles.c.at.type, conn.dialect)
    for id_, story_id, at in _rows(conn, [i for i in ids if i in decoded], full=False):
        hit = decoded.get(id_, when_(at))
        if hit is not None:
            out[id_] = _in_story(hit, story_id)
    for row in _rows(conn, [i for i in ids if i not in out], full=True):
        out[row[0]] = _from_row(decoded, when_, row)
    return out


def _from_row(decoded: _Decoded, when_: Any, row: Sequence[Any]) -> Candidate:
    """The candidate of a driver's row (id, story_id, at, title, fingerprint), decoding
    the fingerprint only when ``decoded`` does not hold it."""
    id_, story_id, at, title, raw = row
    when = when_(at)
    hit = decoded.get(id_, when)
    if hit is None:
        fp = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
        return decoded.put(Candidate(article_id=id_, story_id=story_id, when=when,
                                     title=title, fingerprint=_compared(fp)))  # fmt: skip
    return _in_story(hit, story_id)


def _in_story(hit: Candidate, story_id: int) -> Candidate:
    """A decoded candidate in the story its row names now (merges move articles)."""
    return hit if hit.story_id == story_id else replace(hit, story_id=story_id)


def _rows(conn: Connection, ids: list[int], *, full: bool) -> Iterator[Any]:
    """The driver's rows of the articles ``ids``: id, story_id, at and, when ``full``,
    title and fingerprint (``ROWS_PER_QUERY`` ids a statement)."""
    for part in chunks(ids):
        if conn.dialect.name == "postgresql":
            sql, names, fixed = _rows_sql(conn.dialect, 0, full)
            bound = {**fixed, "ids": part}
        else:
            size = _size_class(len(part))
            sql, names, fixed = _rows_sql(conn.dialect, size, full)
            bound = {**fixed, **{f"i{k}": part[k] if k < len(part) else -1
                                 for k in range(size)}}  # fmt: skip
        yield from _run(conn, sql, names, bound)


@functools.lru_cache(maxsize=64)
def _rows_sql(dialect: Any, size: int, full: bool) -> tuple[str, list[str], dict[str, Any]]:
    """``_rows``' statement for ``size`` ids (``i0`` …), or on PostgreSQL for one array
    of them (``ids``) whatever their number."""
    a = m.articles.c
    cols = [a.id, a.story_id, a.at, *((a.title, a.fingerprint) if full else ())]
    if dialect.name == "postgresql":
        return _compiled(select(*cols).where(a.id == _any("ids", a.id.type)), dialect)
    ids = [bindparam(f"i{k}", type_=a.id.type) for k in range(size)]
    return _compiled(select(*cols).where(a.id.in_(ids)), dialect)


def _array(name: str, type_: Any) -> Any:
    """The array of ``type_`` bound as ``name`` (PostgreSQL): a statement of any number of
    values stays short, so the driver and the server do not parse and plan thousands of
    parameters on every run."""
    return cast(bindparam(name), ARRAY(type_))


def _any(name: str, type_: Any) -> Any:
    return any_(_array(name, type_))


@functools.lru_cache(maxsize=256)
def _candidates_sql(dialect: Any, keys: int, bands: int,
                    terms: int) -> tuple[str, list[str], dict[str, Any]]:  # fmt: skip
    """The SQL of ``_lookup`` (keys bound as ``k0`` …, bands as ``b0`` …, terms as in
    ``_by_terms``), as ``_compiled`` gives it."""
    k, b, a = m.article_keys.c, m.article_bands.c, m.articles.c
    found = []
    if keys:
        found.append(select(k.article_id).where(
            k.key.in_([bindparam(f"k{i}", type_=k.key.type) for i in range(keys)])))  # fmt: skip
    if bands:
        found.append(select(b.article_id).where(
            b.band.in_([bindparam(f"b{i}", type_=b.band.type) for i in range(bands)])))  # fmt: skip
    if terms:
        found.append(select(_by_terms(terms).subquery().c.article_id))
    ids = union(*found).subquery()
    q = select(a.id, a.story_id, a.at, a.title, a.fingerprint).where(
        a.id.in_(select(ids.c.article_id)))  # fmt: skip
    return _compiled(q, dialect)


def _run(conn: Connection, sql: str, names: list[str], bound: dict[str, Any]) -> list[Any]:
    """The driver's rows of ``sql`` (from ``_compiled``) with the values ``bound``."""
    params = tuple(bound[n] for n in names) if conn.dialect.positional else bound
    with _planned_for_values(conn):
        found = conn.exec_driver_sql(sql, params)
        return list(found.cursor.fetchall() if found.cursor else found.all())


@contextmanager
def _planned_for_values(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the block's statements are planned for the values they bind: never
    prepared. psycopg prepares a statement run five times, and PostgreSQL may then run
    it with one plan for any values ("generic"). In one of several all-new cycles the
    lookup of keys ``= ANY`` an array got such a plan: a scan of the whole table that
    compared each row with each value, its time growing with the store (3 ms a call at
    the start, 110 ms at 27,000 keys; 11 s of the cycle). Planned for its values, the
    array is hashed or the index read. Statements that write rows keep their prepared
    plans."""
    raw = conn.connection.driver_connection if conn.dialect.name == "postgresql" else None
    if raw is None or not hasattr(raw, "prepare_threshold"):
        yield
        return
    threshold, raw.prepare_threshold = raw.prepare_threshold, None
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def _compiled(statement: Any, dialect: Any) -> tuple[str, list[str], dict[str, Any]]:
    """``statement``'s SQL for ``dialect``, its parameter names in the order a positional
    driver takes them, and the values of those the dialect added (SQLite's ``OFFSET``)."""
    compiled = statement.compile(dialect=dialect)
    fixed = {n: v for n, v in compiled.params.items() if v is not None}
    return compiled.string, list(compiled.positiontup or compiled.params), fixed


def _result(type_: Any, dialect: Any) -> Any:
    """What SQLAlchemy does to a value of ``type_`` the driver returns."""
    process = type_.dialect_impl(dialect).result_processor(dialect, None)
    return process or (lambda value: value)


def _by_terms(n: int) -> Any:
    """The level-3 lookup for ``n`` terms (bound as ``t0`` …): each term's latest ``per``
    postings in ``[low, high]`` (an index range scan that stops early), then the ``limit``
    articles found by most terms (compiled once per size by ``_candidates_sql``)."""
    t = m.article_terms.c
    postings = [select(t.article_id, t.at)
                .where(t.term == bindparam(f"t{i}"), t.at >= bindparam("low"),
                       t.at <= bindparam("high"))
                .order_by(t.at.desc(), t.article_id.desc())
                .limit(bindparam("per", type_=Integer)).subquery()
                for i in range(n)]  # fmt: skip
    found = union_all(*(select(p.c.article_id, p.c.at) for p in postings)).subquery()
    return (select(found.c.article_id).group_by(found.c.article_id)
            .order_by(func.count().desc(), func.max(found.c.at).desc(),
                      found.c.article_id.desc())
            .limit(bindparam("limit", type_=Integer)))  # fmt: skip


def _holding(conn: Connection, table: Any, values_: list[str]) -> list[Any]:
    """``(value, id)`` of the index rows of ``table`` (keys or bands) with those values
    (``IN`` their list, on PostgreSQL ``ANY`` of their array)."""
    col = table.c.key if table is m.article_keys else table.c.band
    out: list[Any] = []
    for part in chunks(values_):
        if conn.dialect.name == "postgresql":
            q = select(col, table.c.article_id).where(col == _any("vals", col.type))
            with _planned_for_values(conn):
                out += conn.execute(q, {"vals": part}).all()
        else:
            out += conn.execute(select(col, table.c.article_id).where(col.in_(part))).all()
    return out


def _batch_postings(conn: Connection, rows: list[tuple[int, datetime, datetime, datetime]],
                    terms: list[list[str]], per: int) -> Iterator[list[Postings]]:  # fmt: skip
    """Per article of the batch, in order: per term, its ``per`` latest postings in the
    article's window as two lists, ids and times (``models.micros``), among the stored
    ones and the batch's earlier articles (ids ``BATCH_IDS + position``), in no
    particular order.

    The stored ones come from one statement: per article and term, the term's ``per``
    latest postings in the window (an index range scan that stops there, so each term
    reads at most ``per`` index entries whatever the store's size), as an array of ids
    and one of times: on SQLite the JSON of the two (an array of ``[id, time]`` pairs,
    decoded to a list per posting, took 0.96 against 0.76 ms per article for this
    function), on PostgreSQL two arrays (where building JSON per posting took a quarter of the
    statement's time: 140 -> 103 ms for 100 articles). The batch's own are found here
    (``_own_postings``).

    The statement reads thousands of values: bound one by one, SQLAlchemy would spend
    longer compiling and binding them than the database spends running it. They are
    bound as a few values whatever their number, so the statement is compiled once and
    sent to the driver as it is: on PostgreSQL as arrays (``_array``), on SQLite as one
    JSON array of ``[number, term, low, high]`` rows that ``json_each`` reads (one
    statement per size class, padded, took 0.2-0.6 s to compile on each class's first
    chunk, about 2 s of a 200-feed all-new cycle, and 0.31 against 0.26 ms an article to
    bind and run at 1M stored).
    """
    t = m.article_terms.c
    at_, term_ = _bind(t.at.type, conn.dialect), _bind(t.term.type, conn.dialect)
    terms = [[term_(term) for term in ts] for ts in terms]  # as stored, to match own ones
    pairs = [(n, term) for n, ts in enumerate(terms) for term in ts]
    sql, names, fixed = _postings_sql(conn.dialect, per)
    if conn.dialect.name == "postgresql":  # arrays
        bound: dict[str, Any] = {
            **fixed, "q": [q for q, *_ in rows], "lo": [at_(low) for _, low, _, _ in rows],
            "hi": [at_(high) for *_, high in rows], "tq": [q for q, _ in pairs],
            "tj": list(range(len(pairs))), "tt": [term for _, term in pairs],
        }
        # (j, ids, times), the arrays NULL where a term has no postings
        stored: dict[int, Postings] = {j: (ids, ats) for j, ids, ats
                                       in _run(conn, sql, names, bound) if ids}  # fmt: skip
    else:  # one JSON array of rows, the times as stored (integers)
        spans = [(at_(low), at_(high)) for _, low, _, high in rows]
        probes = [(j, term, *spans[n]) for j, (n, term) in enumerate(pairs)]
        bound = {**fixed, "probes": orjson.dumps(probes).decode()}
        # (j, the JSON of [ids, times])
        stored = {j: orjson.loads(got) for j, got in _run(conn, sql, names, bound)}
    own = _own_postings(rows, terms, per)
    j = 0
    for ts in terms:
        article = []
        for _ in ts:
            ids, ats = stored.get(j, _NONE)
            mine = own.get(j, ())
            if mine and len(ids) + len(mine) <= per:  # all of them, in no particular order
                ids, ats = [*ids, *(i for _, i in mine)], [*ats, *(at for at, _ in mine)]
            elif mine:
                latest = sorted([*zip(ats, ids, strict=True), *mine], reverse=True)[:per]
                ids, ats = [i for _, i in latest], [at for at, _ in latest]
            article.append((ids, ats))
            j += 1
        yield article


Postings = tuple[Sequence[int], Sequence[int]]  # ids, and their times (models.micros)
_NONE: Postings = ((), ())


def _own_postings(rows: list[tuple[int, datetime, datetime, datetime]], terms: list[list[str]],
                  per: int) -> dict[int, list[tuple[int, int]]]:  # fmt: skip
    """By (article, term) number as ``_batch_postings`` counts them: the ``per`` latest
    postings ``(time, id)`` of the batch's earlier articles holding the term, their time
    in the article's window (the latest ``per`` of all postings are among them and the
    stored ones').

    Each term's earlier holders are kept in time order, so an article's window is two
    binary searches and a slice, not a pass over every earlier article: a batch of 100
    articles of one day that share their names took 0.2 ms an article the other way."""
    holders: dict[str, list[tuple[int, int]]] = {}  # term: (time, id) of earlier ones, in order
    out: dict[int, list[tuple[int, int]]] = {}
    j = 0
    for (n, low, at, high), ts in zip(rows, terms, strict=True):
        lo, hi = m.micros(low), m.micros(high)
        me = (m.micros(at), BATCH_IDS + n)
        for term in ts:
            held = holders.get(term)
            if held is None:
                holders[term] = [me]
            else:
                end = bisect.bisect_right(held, (hi, BATCH_IDS << 1))  # above every id
                start = max(bisect.bisect_left(held, (lo, -1)), end - per)
                if start < end:
                    out[j] = held[start:end]
                bisect.insort(held, me)
            j += 1
    return out


def _bind(type_: Any, dialect: Any) -> Any:
    """What SQLAlchemy does to a value of ``type_`` before handing it to the driver."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def _size_class(n: int, least: int = 16) -> int:
    """``n`` rounded up to ``least`` times a power of two (a few statements cover every
    size)."""
    size = least
    while size < n:
        size *= 2
    return size


def _padded(values: list[str], least: int) -> list[str]:
    """``values`` padded to their size class with the empty string, which no key, band
    or term is (``index_values``)."""
    return values + [""] * (_size_class(len(values), least) - len(values))


@functools.lru_cache(maxsize=8)
def _postings_sql(dialect: Any, per: int) -> tuple[str, list[str], dict[str, Any]]:
    """The SQL of ``_batch_postings``, as ``_compiled`` gives it: one statement for any
    number of (article, term) rows, bound on PostgreSQL as arrays and on SQLite as one
    JSON array (``probes``). A row of its result is the (article, term) number and the
    postings: on SQLite the JSON of ``[ids, times]`` (JSON1 builds it), on PostgreSQL an
    array of ids and one of times."""
    t = m.article_terms.c
    dt, tt = t.at.type, t.term.type
    if dialect.name == "postgresql":  # the rows as arrays, unnested side by side

        def unnest(name: str, type_: Any, label: str) -> Any:
            return func.unnest(_array(name, type_)).label(label)

        arts = select(unnest("q", Integer(), "q"), unnest("lo", dt, "low"),
                      unnest("hi", dt, "high")).cte("batch_arts")  # fmt: skip
        words = select(unnest("tq", Integer(), "q"), unnest("tj", Integer(), "j"),
                       unnest("tt", tt, "term")).cte("batch_terms")  # fmt: skip
        probe = (select(words.c.j, words.c.term, arts.c.low, arts.c.high)
                 .join_from(words, arts, words.c.q == arts.c.q).cte("batch_probe"))  # fmt: skip
    else:  # [j, term, low, high] rows of one JSON array, the times as stored (integers)
        rows = func.json_each(bindparam("probes")).table_valued("value").alias("probes")

        def field(n: int, type_: Any, label: str) -> Any:
            return func.json_extract(rows.c.value, literal_column(f"'$[{n}]'"),
                                     type_=type_).label(label)  # fmt: skip

        probe = select(field(0, Integer(), "j"), field(1, tt, "term"), field(2, dt, "low"),
                       field(3, dt, "high")).cte("batch_probe")  # fmt: skip
    latest = (select(t.article_id, t.at)
              .where(t.term == probe.c.term, t.at >= probe.c.low, t.at <= probe.c.high)
              .order_by(t.at.desc(), t.article_id.desc())
              .limit(literal_column(str(int(per)), Integer()))
              .correlate(probe).subquery("latest"))  # fmt: skip
    # The times are integers of microseconds already (models.IndexTime).
    if dialect.name == "postgresql":  # two arrays: ids and times
        agg = select(func.array_agg(latest.c.article_id).label("ids"),
                     func.array_agg(latest.c.at).label("ats")).lateral("agg")  # fmt: skip
        return _compiled(select(probe.c.j, agg.c.ids, agg.c.ats).select_from(probe)
                         .join(agg, true()), dialect)  # fmt: skip
    # SQLite: one aggregate pass over the postings builds both arrays, so they pair up.
    got = func.json_array(func.json_group_array(latest.c.article_id),
                          func.json_group_array(latest.c.at))  # fmt: skip
    return _compiled(select(probe.c.j, select(got).scalar_subquery()), dialect)


def _rank_postings(articles: Iterable[list[Postings]], limit: int) -> dict[int, list[int]]:
    """Per article, the ``limit`` ids found by most terms among its terms' postings
    (ties: later, then higher id), as ``_by_terms`` ranks them. One article's counts
    are held at a time."""
    out: dict[int, list[int]] = {}
    for q, postings in enumerate(articles):
        counts: Counter[int] = Counter()
        for ids, _ in postings:
            counts.update(ids)
        shortlist: Iterable[int] = counts
        if len(counts) > limit:  # only those found by as many terms as the limit-th can rank
            floor = heapq.nlargest(limit, counts.values())[-1]
            shortlist = [i for i, c in counts.items() if c >= floor]
        when: dict[int, int] = {}  # an article's postings all carry its time
        for ids, ats in postings:
            when.update(zip(ids, ats, strict=True))
        out[q] = heapq.nlargest(limit, shortlist, key=functools.partial(_rank_key, counts, when))
    return out


def _rank_key(counts: Counter[int], when: dict[int, Any], article_id: int) -> tuple[Any, ...]:
    return counts[article_id], when[article_id], article_id


class _Decoded:
    """Candidates whose stored fingerprint was decoded lately, by article id (the latest
    ``size``): a poll's new articles are compared with the same stored ones again and
    again, and decoding their JSON costs more than reading it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_id: OrderedDict[int, Candidate] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, article_id: int) -> bool:
        return article_id in self._by_id

    def get(self, article_id: int, when: datetime) -> Candidate | None:
        """The candidate ``article_id``, unless the row read has another time (the id
        was given to another article since)."""
        with self._lock:
            found = self._by_id.get(article_id)
            if found is None or found.when != when:
                self._by_id.pop(article_id, None)
                return None
            self._by_id.move_to_end(article_id)
            return found

    def put(self, candidate: Candidate) -> Candidate:
        with self._lock:
            self._by_id[candidate.article_id] = candidate
            self._by_id.move_to_end(candidate.article_id)
            while len(self._by_id) > self.size:
                self._by_id.popitem(last=False)
        return candidate

    def forget(self, article_ids: Iterable[int]) -> None:
        """Drop ``article_ids`` (written by a transaction that rolled back: SQLite gives
        their ids to the next articles)."""
        with self._lock:
            for i in article_ids:
                self._by_id.pop(i, None)


def _compared(raw: dict[str, Any]) -> Fingerprint:
    """The part of a stored fingerprint dedupe compares: keys and data, the signature as
    an array (a fifth of a list of ints), without the bands and terms storage indexes.
    Thousands of candidates stay decoded (``DECODED``): this takes each from about 18 kB
    to 13 kB."""
    data = raw.get("data", {})
    if isinstance(sig := data.get("sig"), list):
        data["sig"] = array("Q", sig)
    return Fingerprint(keys=tuple(raw.get("keys", ())), bands=(), terms=(), data=data,
                       version=raw.get("version", 1))  # fmt: skip


def _own_keys(keys: list[list[str]], bands: list[list[str]], found: list[set[int]]) -> None:
    """Add to ``found`` the batch's earlier articles sharing a key or a band (any age)."""
    for index in (keys, bands):
        first: dict[str, list[int]] = {}
        for n, items in enumerate(index):
            earlier = {i for v in items for i in first.get(v, ())}
            found[n].update(BATCH_IDS + i for i in earlier)
            for v in items:
                first.setdefault(v, []).append(n)
