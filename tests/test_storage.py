"""The storage contract, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from monitor.errors import StorageError
from monitor.types import (
    AlertIntent,
    Article,
    ArticleIntent,
    Decision,
    DecisionKind,
    Fingerprint,
    Hit,
    Match,
    PollIntent,
)
from storage import SQLRepository, alert_payload, make_repository
from storage import models as m
from tests.conftest import statements_sent, write_config

T0 = datetime(2024, 7, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def repo(db_url: str) -> Iterator[SQLRepository]:
    r = make_repository(db_url)
    yield r
    r.close()


def _article(n: int, at: datetime = T0, source: str = "wire") -> Article:
    return Article(source=source, title=f"Title {n} – 在日米軍", body=f"Body {n} ü",
                   url=f"https://example.org/{n}", link=f"https://example.org/{n}?utm_source=x",
                   guid=f"g{n}", published=at, fetched=at)  # fmt: skip


def _intent(n: int, *, story: int | None = None, keys: tuple[str, ...] = (),
            terms: tuple[str, ...] = (), bands: tuple[str, ...] = (), at: datetime = T0,
            alerts: tuple[AlertIntent, ...] = ()) -> ArticleIntent:  # fmt: skip
    kind = DecisionKind.NEW if story is None else DecisionKind.REREPORT
    return ArticleIntent(
        article=_article(n, at), item_key=f"g:{n}",
        fingerprint=Fingerprint(keys=keys or (f"url:{n}",), bands=bands, terms=terms,
                                data={"n": n, "w": {"tokyo": 1.5}}),
        decision=Decision(kind=kind, level=0 if story is None else 3, score=0.5,
                          reason="test", story_id=story),
        matches=(Match("usfj", (Hit("USFJ", "title", 0, 4),)),), alerts=alerts,
    )  # fmt: skip


def _alert(target: str = "desk") -> AlertIntent:
    payload = alert_payload({
        "watchlist": "usfj", "target": target, "title": "T", "source": "wire",
        "link": "https://example.org/1", "published": T0, "snippet": "US Forces Japan",
        "terms": ("USFJ",), "fields": ("title",), "highlights": ((0, 4),),
        "follows": None, "sources": ("wire",),
    })  # fmt: skip
    return AlertIntent(watchlist="usfj", target=target, digest="immediate", payload=payload)


def test_schema_newer_than_code_is_refused(repo: SQLRepository) -> None:
    with repo.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError, match="newer than this code"):
        repo.create()


def _alembic() -> Any:
    """An Alembic config of the project's migrations."""
    from alembic.config import Config as AlembicConfig

    from storage.schema import MIGRATIONS

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _revisions() -> list[str]:
    """Every migration revision, oldest first."""
    from alembic.script import ScriptDirectory

    walked = ScriptDirectory.from_config(_alembic()).walk_revisions()
    return [s.revision for s in reversed(list(walked))]


@pytest.mark.parametrize("start", [None, *_revisions()[:-1]],
                         ids=lambda r: f"from-{r or 'empty'}")  # fmt: skip
def test_migrations_reach_head_from_empty_and_every_earlier_revision(
    db_url: str, start: str | None
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, inspect

    from storage.schema import HEAD, current_revision, upgrade

    assert _revisions()[-1] == HEAD
    engine = create_engine(db_url)
    try:
        assert current_revision(engine) is None
        if start is not None:  # a database an older monitor left, with data in it
            assert upgrade(engine, start) == start
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO meta (key, value) VALUES ('kept', 'yes')"))
        assert upgrade(engine) == HEAD
        assert set(m.metadata.tables) <= set(inspect(engine).get_table_names())
        assert upgrade(engine) == HEAD  # idempotent
        with engine.connect() as conn:  # the migrations build exactly the models' schema
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            assert compare_metadata(ctx, m.metadata) == []
            if start is not None:
                assert conn.execute(text("SELECT value FROM meta WHERE key = 'kept'")).scalar() \
                    == "yes"  # fmt: skip
    finally:
        engine.dispose()


def test_postgresql_vacuums_the_index_tables_sooner(db_url: str) -> None:
    # Lookups read the newest term rows by index-only scans, fast only once a vacuum
    # has seen them: the migrated schema asks autovacuum to come every 100,000 rows.
    from storage.schema import upgrade

    repo = make_repository(db_url, create=False)
    try:
        upgrade(repo.engine, "0005")
        upgrade(repo.engine)
        if repo.dialect != "postgresql":
            return  # SQLite has no vacuum thresholds; the migration changes nothing
        with repo.engine.connect() as conn:
            options = dict(conn.execute(text(
                "SELECT relname, reloptions FROM pg_class WHERE oid IN "
                "('article_terms'::regclass, 'article_bands'::regclass)")).all())  # fmt: skip
        expected = ["autovacuum_vacuum_insert_scale_factor=0",
                    "autovacuum_vacuum_insert_threshold=100000"]  # fmt: skip
        assert options == {"article_terms": expected, "article_bands": expected}
        _downgrade(repo.engine, "0005")  # and a downgrade takes them back
        with repo.engine.connect() as conn:
            assert conn.execute(text("SELECT reloptions FROM pg_class "
                                     "WHERE oid = 'article_terms'::regclass")).scalar() is None
    finally:
        repo.close()


def test_migration_0005_keeps_index_rows_and_their_times(db_url: str) -> None:
    from sqlalchemy import create_engine, select

    from storage.schema import upgrade

    engine = create_engine(db_url)
    times = [datetime(2024, 7, 28, 9, 0, 0, 123456, tzinfo=UTC),
             datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
             datetime(1969, 12, 31, 23, 59, 58, 250000, tzinfo=UTC)]  # before 0 on SQLite
    try:
        assert upgrade(engine, "0004") == "0004"
        with engine.begin() as conn:  # rows as 0004 wrote them: times as the DateTime type
            for n, at in enumerate(times):
                stored = at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at
                conn.execute(text("INSERT INTO article_terms (term, at, article_id) "
                                  "VALUES ('okinawa', :at, :id)"), {"at": stored, "id": n + 1})
                conn.execute(text("INSERT INTO article_bands (band, article_id) "
                                  "VALUES ('m1.0:ab', :id)"), {"id": n + 1})  # fmt: skip
        upgrade(engine)
        t, b = m.article_terms.c, m.article_bands.c
        with engine.connect() as conn:
            terms = conn.execute(select(t.term, t.at, t.article_id).order_by(t.at)).all()
            assert [tuple(r) for r in terms] == [
                ("okinawa", times[2], 3), ("okinawa", times[1], 2), ("okinawa", times[0], 1)]
            assert conn.execute(select(t.article_id).where(t.at > times[1])).scalars().all() == [1]
            bands = conn.execute(select(b.band, b.article_id).order_by(b.article_id)).all()
            assert [tuple(r) for r in bands] == [("m1.0:ab", n) for n in (1, 2, 3)]
        _downgrade(engine, "0004")  # and back
        with engine.connect() as conn:
            back = conn.execute(text("SELECT at FROM article_terms ORDER BY article_id")).all()
            assert [m.UTCDateTime().process_result_value(
                datetime.fromisoformat(r[0]) if isinstance(r[0], str) else r[0],
                engine.dialect) for r in back] == times  # fmt: skip
    finally:
        engine.dispose()


def test_migration_0007_keeps_term_times_to_the_microsecond(db_url: str) -> None:
    # PostgreSQL's term times become integers of microseconds, as SQLite's are already.
    from sqlalchemy import create_engine, select

    from storage.schema import upgrade

    engine = create_engine(db_url)
    times = [datetime(2024, 7, 28, 9, 0, 0, 123456, tzinfo=UTC),
             datetime(2038, 1, 19, 3, 14, 8, 999999, tzinfo=UTC),
             datetime(1969, 12, 31, 23, 59, 58, 250000, tzinfo=UTC)]  # fmt: skip
    try:
        assert upgrade(engine, "0006") == "0006"
        with engine.begin() as conn:  # as 0006 stored them: a timestamp, or micros on SQLite
            for n, at in enumerate(times):
                stored = m.micros(at) if engine.dialect.name == "sqlite" else at
                conn.execute(text("INSERT INTO article_terms (term, at, article_id) "
                                  "VALUES ('okinawa', :at, :id)"), {"at": stored, "id": n + 1})
        upgrade(engine)
        t = m.article_terms.c
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT at FROM article_terms ORDER BY article_id")).scalars()
            assert list(raw) == [m.micros(at) for at in times]
            rows = conn.execute(select(t.at, t.article_id).order_by(t.at)).all()
            assert [tuple(r) for r in rows] == [(times[2], 3), (times[0], 1), (times[1], 2)]
            assert conn.execute(select(t.article_id).where(t.at > times[0])).scalars().all() == [2]
        _downgrade(engine, "0006")  # and back
        with engine.connect() as conn:
            back = conn.execute(text("SELECT at FROM article_terms ORDER BY article_id")).all()
            assert [m.IndexTime().process_result_value(r[0], engine.dialect)
                    for r in back] == times  # fmt: skip
    finally:
        engine.dispose()


def _downgrade(engine: Any, revision: str) -> None:
    from alembic import command

    cfg = _alembic()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_index_rows_that_cannot_be_written_fail_as_a_storage_error(
    repo: SQLRepository,
) -> None:  # fmt: skip
    # On PostgreSQL index rows are copied in through the driver, past SQLAlchemy: a
    # failure must still be the StorageError, chained from SQLAlchemy's error, that
    # retries and callers understand; and nothing of the transaction is kept.
    from sqlalchemy.exc import IntegrityError

    from storage._index import PendingIndex

    pending = PendingIndex(repo.engine.dialect)
    fp = _intent(1, terms=("tokyo", "okinawa"), bands=("b1",)).fingerprint
    for _ in range(2):  # the same article's rows twice
        pending.add(1, fp, T0, checked=False)
    with pytest.raises(StorageError, match="IntegrityError") as failed:
        with repo._tx() as conn:
            pending.write(conn, repo._insert)
    assert isinstance(failed.value.__cause__, IntegrityError)
    with repo.engine.connect() as conn:
        assert conn.execute(select(m.article_terms.c.term)).all() == []


def test_article_round_trip_keeps_text_and_utc(repo: SQLRepository) -> None:
    article_id = repo.add_article(_intent(1), T0)
    assert article_id is not None
    row = repo.get_article(article_id)
    assert row is not None
    assert row["title"] == "Title 1 – 在日米軍" and row["body"] == "Body 1 ü"
    assert row["published"] == T0 and row["published"].tzinfo is not None
    assert row["fingerprint"]["data"] == {"n": 1, "w": {"tokyo": 1.5}}


def test_monitor_db_upgrade_from_the_previous_revision(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import create_engine

    from monitor.cli import main
    from storage.schema import HEAD, upgrade

    previous = _revisions()[-2] if len(_revisions()) > 1 else None
    if previous is not None:
        engine = create_engine(db_url)
        upgrade(engine, previous)
        engine.dispose()
    config = write_config(tmp_path / "monitor.yaml", database=db_url)
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"schema at revision {HEAD} (was {previous})"
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"schema at revision {HEAD}"


def test_text_is_stored_alike_on_both_backends(repo: SQLRepository) -> None:
    astral = "😀 𠮷野家 𝔘𝔖 🇯🇵"
    dirty = "a\x00b \ud800lone\udfff \ud83d\ude00"  # NUL, lone surrogates, a split pair
    clean = "ab lone 😀"
    base = _intent(1, alerts=(_alert(),))
    art = replace(base.article, source="wire\x00", title=f"{astral} {dirty}", body=dirty,
                  author="Ann\x00", url="https://example.org/\x001")  # fmt: skip
    payload = {**base.alerts[0].payload, "snippet": f"{dirty} {astral}", "terms": [dirty]}
    intent = replace(
        base, article=art, item_key="g:\x001",
        fingerprint=replace(base.fingerprint, keys=("url:\x00k",),
                            data={"w\x00": dirty, "typed": "a\\u0000b"}),  # NUL, as text
        alerts=(replace(base.alerts[0], payload=payload),),
    )  # fmt: skip
    article_id = repo.add_article(intent, T0)
    assert article_id is not None
    row = repo.get_article(article_id)
    assert row is not None
    assert (row["source"], row["title"], row["body"]) == ("wire", f"{astral} {clean}", clean)
    assert (row["author"], row["url"], row["item_key"]) == ("Ann", "https://example.org/1", "g:1")
    assert row["fingerprint"]["data"] == {"w": clean, "typed": "a\\u0000b"}
    assert row["fingerprint"]["keys"] == ["url:k"]
    assert repo.get_seen_items("wire\x00", ["g:\x001"]) == {"g:1"}  # lookups cleaned alike
    assert repo.add_article(intent, T0) is None  # and so are the unique keys
    alert = repo.claim_alerts(T0, "one", timedelta(minutes=2))[0].alert
    assert alert.snippet == f"{clean} {astral}" and alert.terms == (clean,)
    repo.sync_sources([("feed", "https://example.org/rss", "feed")], T0)
    repo.record_poll(PollIntent(source="feed", polled_at=T0, next_poll_at=T0, ok=False,
                                error=f"HTTP 500: {dirty}"))  # fmt: skip
    assert repo.get_sources()[0]["last_error"] == f"HTTP 500: {clean}"
    repo.set_meta("note", dirty)
    repo.set_meta("note", astral)  # set_meta replaces
    assert repo.get_meta("note") == astral


def test_times_are_kept_as_the_same_instant_in_utc(repo: SQLRepository) -> None:
    tokyo = timezone(timedelta(hours=9), "JST")
    at = datetime(2024, 7, 28, 18, 30, 15, 123456, tzinfo=tokyo)
    base = _intent(1)
    article_id = repo.add_article(replace(base, article=replace(
        base.article, published=at, fetched=at)), at)  # fmt: skip
    row = repo.get_article(article_id)  # type: ignore[arg-type]
    assert row is not None
    for key in ("published", "fetched", "at"):
        assert row[key] == at and row[key].utcoffset() == timedelta(0)
        assert (row[key].hour, row[key].microsecond) == (9, 123456)
    repo.sync_sources([("a", "https://a.example/rss", "feed")], at)
    (state,) = repo.claim_sources(at, "one", timedelta(minutes=2))
    assert state.next_poll_at == at and state.next_poll_at.tzinfo is not None
    assert repo.claim_sources(at - timedelta(seconds=1), "two", timedelta(minutes=2)) == []


def test_same_item_is_stored_once(repo: SQLRepository) -> None:
    assert repo.add_article(_intent(1, alerts=(_alert(),)), T0) is not None
    assert repo.add_article(_intent(1, alerts=(_alert(),)), T0) is None
    assert repo.count_articles() == 1
    assert repo.get_outbox_summary()["pending"] == 1
    assert repo.get_seen_items("wire", ["g:1", "g:2"]) == {"g:1"}


def test_candidates_by_key_band_and_windowed_terms(repo: SQLRepository) -> None:
    a = repo.add_article(_intent(1, keys=("url:a",), terms=("tokyo", "austin")), T0)
    b = repo.add_article(_intent(2, keys=("url:b",), bands=("b1",),
                                 at=T0 - timedelta(days=400)), T0)  # fmt: skip
    c = repo.add_article(_intent(3, keys=("url:c",), terms=("tokyo",),
                                 at=T0 - timedelta(days=30)), T0)  # fmt: skip
    probe = Fingerprint(keys=("url:a",), bands=("b1",), terms=("tokyo", "austin"), data={})
    found = {x.article_id for x in repo.get_candidates(probe, T0, timedelta(days=7), 10)}
    assert found == {a, b}  # c shares a term but lies outside the window
    wide = {x.article_id for x in repo.get_candidates(
        Fingerprint(keys=(), bands=(), terms=("tokyo",), data={}), T0, timedelta(days=60), 10)}
    assert wide == {a, c}
    top = repo.get_candidates(Fingerprint(keys=(), bands=(), terms=("tokyo", "austin"),
                                          data={}), T0, timedelta(days=60), 1)  # fmt: skip
    assert [x.article_id for x in top] == [a]
    # what dedupe compares comes back; what only the index reads does not
    fp = top[0].fingerprint
    assert fp.keys == ("url:a",) and fp.data == {"n": 1, "w": {"tokyo": 1.5}}
    assert fp.terms == () and fp.bands == ()


def test_lookups_of_every_size_share_a_few_statements(repo: SQLRepository) -> None:
    # Compiling a lookup's statement takes longer than running it, so lookups of any
    # number of keys, bands and terms run one of a few statements, finding the same.
    a = repo.add_article(_intent(1, keys=("url:a",), bands=("b1",), terms=("tokyo",)), T0)
    with statements_sent(repo.engine) as statements:
        for n in range(1, 33):
            probe = Fingerprint(keys=("url:a", *(f"url:x{k}" for k in range(n % 4))),
                                bands=tuple(f"b{k}" for k in range(n % 17)),
                                terms=("tokyo", *(f"rare{k}" for k in range(n - 1))),
                                data={})  # fmt: skip
            found = repo.get_candidates(probe, T0, timedelta(days=7), 10)
            assert [x.article_id for x in found] == [a]
            assert repo.get_candidates(replace(probe, keys=("url:b",), bands=("b2",)),
                                       T0 + timedelta(days=30), timedelta(days=7), 10) == []
    lookups = {s for s in statements if "article_terms" in s}
    assert len(lookups) == 3  # 8, 16 and 32 terms


def test_batch_lookups_of_every_size_share_one_postings_statement(repo: SQLRepository) -> None:
    # A batch binds its (article, term) rows as a few values, so batches of any size run
    # one statement for the term postings, each article finding what it shares.
    a = repo.add_article(_intent(1, keys=("url:a",), terms=("tokyo",)), T0)
    with statements_sent(repo.engine) as statements:
        for n in (1, 2, 17, 40, 130):
            probes = [(Fingerprint(keys=(f"url:p{n}.{k}",), bands=(),
                                   terms=("tokyo" if k % 2 else "osaka", f"rare{n}.{k}"),
                                   data={}), T0 + timedelta(hours=k % 50))
                      for k in range(n)]  # fmt: skip
            found = repo.get_candidates_batch(probes, timedelta(days=7), 1000)
            for k, got in enumerate(found):
                assert [c.article_id for c in got.stored] == ([a] if k % 2 else [])
                # each finds the batch's earlier articles holding its first term
                assert list(got.earlier) == list(range(k % 2, k, 2))
    postings = {s for s in statements if "article_terms" in s}
    assert len(postings) == 1


def test_a_batch_lookup_finds_terms_json_would_escape(repo: SQLRepository) -> None:
    # SQLite's batch lookup reads its terms from JSON: quotes, backslashes and CJK text
    # come back as they were indexed.
    terms = ("o'brien", "o’brien", 'say "no"', "back\\slash", "在日米軍", "#7.4")
    ids = [repo.add_article(_intent(n, terms=(term,)), T0) for n, term in enumerate(terms, 1)]
    probes = [(Fingerprint(keys=(f"url:q{n}",), bands=(), terms=(term,), data={}), T0)
              for n, term in enumerate(terms)]  # fmt: skip
    found = repo.get_candidates_batch(probes, timedelta(days=7), 10)
    assert [[c.article_id for c in f.stored] for f in found] == [[i] for i in ids]


def test_rereport_joins_the_story(repo: SQLRepository) -> None:
    first = repo.add_article(_intent(1), T0)
    story = repo.get_article(first)["story_id"]  # type: ignore[index]
    second = repo.add_article(_intent(2, story=story), T0 + timedelta(hours=3))
    assert repo.get_article(second)["story_id"] == story  # type: ignore[index]
    info = repo.get_story(story)
    assert info is not None and info["articles"] == 2 and info["alerted"] is False


def test_sources_claim_lease_and_poll(repo: SQLRepository) -> None:
    repo.sync_sources([("a", "https://a.example/rss", "feed"),
                       ("b", "https://b.example/rss", "feed")], T0)  # fmt: skip
    first = repo.claim_sources(T0, "one", timedelta(minutes=2))
    assert {s.name for s in first} == {"a", "b"}
    assert repo.claim_sources(T0, "two", timedelta(minutes=2)) == []  # leased
    taken = repo.claim_sources(T0 + timedelta(minutes=3), "two", timedelta(minutes=2))
    assert {s.name for s in taken} == {"a", "b"}  # an expired lease is taken over
    repo.record_poll(PollIntent(source="a", polled_at=T0, next_poll_at=T0 + timedelta(hours=1),
                                ok=True, etag='"e1"', new_entries=3))  # fmt: skip
    repo.record_poll(PollIntent(source="b", polled_at=T0, next_poll_at=T0 + timedelta(hours=1),
                                ok=False, error="HTTPStatusError: 410",
                                disabled_reason="410 Gone"))  # fmt: skip
    later = T0 + timedelta(hours=2)
    due = repo.claim_sources(later, "one", timedelta(minutes=2))
    assert [s.name for s in due] == ["a"] and due[0].etag == '"e1"'
    rows = {r["name"]: r for r in repo.get_sources()}
    assert rows["a"]["entries_total"] == 3 and rows["b"]["consecutive_failures"] == 1
    repo.sync_sources([("a", "https://a.example/rss", "feed")], later)
    assert {r["name"]: r["enabled"] for r in repo.get_sources()} == {"a": True, "b": False}


def test_retry_after_is_honoured_by_claim_all(repo: SQLRepository) -> None:
    repo.sync_sources([("a", "https://a.example/rss", "feed")], T0)
    repo.claim_sources(T0, "one", timedelta(minutes=2))
    until = T0 + timedelta(hours=1)
    repo.record_poll(PollIntent(source="a", polled_at=T0, next_poll_at=until, ok=False,
                                error="429", retry_after_until=until))  # fmt: skip
    assert repo.claim_sources(T0, "one", timedelta(minutes=2), all_enabled=True) == []
    assert len(repo.claim_sources(until, "one", timedelta(minutes=2), all_enabled=True)) == 1


def test_poll_outcomes_of_a_batch_are_recorded_together(repo: SQLRepository) -> None:
    repo.sync_sources([(n, f"https://{n}.example/rss", "feed") for n in "abc"], T0)
    repo.claim_sources(T0, "one", timedelta(minutes=2))
    later = T0 + timedelta(hours=1)
    repo.record_polls([
        PollIntent(source="a", polled_at=T0, next_poll_at=later, ok=True, not_modified=True),
        PollIntent(source="b", polled_at=T0, next_poll_at=later, ok=True, etag='"b2"',
                   new_entries=2),
        PollIntent(source="c", polled_at=T0, next_poll_at=later, ok=False, error="timeout"),
    ])  # fmt: skip
    rows = {r["name"]: r for r in repo.get_sources()}
    assert all(r["lease_owner"] is None and r["next_poll_at"] == later for r in rows.values())
    assert (rows["b"]["etag"], rows["b"]["entries_total"]) == ('"b2"', 2)
    assert rows["c"]["consecutive_failures"] == 1 and rows["a"]["last_success"] == T0
    repo.record_polls([])  # nothing to write


def test_outbox_claim_send_fail_dead_requeue(repo: SQLRepository) -> None:
    repo.add_article(_intent(1, alerts=(_alert("desk"), _alert("chat"))), T0)
    items = repo.claim_alerts(T0, "one", timedelta(minutes=2))
    assert sorted(i.target for i in items) == ["chat", "desk"]
    assert repo.claim_alerts(T0, "two", timedelta(minutes=2)) == []
    desk = next(i for i in items if i.target == "desk")
    chat = next(i for i in items if i.target == "chat")
    assert desk.alert.highlights == ((0, 4),) and desk.alert.published == T0
    repo.mark_sent(desk.id, T0)
    repo.mark_failed(chat.id, "HTTP 500", retry_at=T0 + timedelta(seconds=30))
    assert repo.get_outbox_summary()["retrying"] == 1
    assert repo.claim_alerts(T0 + timedelta(seconds=10), "one", timedelta(minutes=2)) == []
    again = repo.claim_alerts(T0 + timedelta(seconds=31), "one", timedelta(minutes=2))
    assert [i.target for i in again] == ["chat"]
    repo.mark_failed(again[0].id, "HTTP 400", retry_at=None)
    summary = repo.get_outbox_summary()
    assert summary["dead"] == 1 and summary["dead_letters"][0]["reason"] == "HTTP 400"
    assert repo.requeue_dead(T0) == 1
    assert [i.target for i in repo.claim_alerts(T0, "one", timedelta(minutes=2))] == ["chat"]
    assert len(repo.get_sent_alerts(T0 - timedelta(days=1))) == 1


def test_merge_and_split(repo: SQLRepository) -> None:
    a = repo.add_article(_intent(1), T0)
    b = repo.add_article(_intent(2), T0)
    sa, sb = (repo.get_article(x)["story_id"] for x in (a, b))  # type: ignore[index]
    assert repo.merge_stories(sa, sb) == 1
    assert repo.get_article(b)["story_id"] == sa  # type: ignore[index]
    c = repo.add_article(_intent(3, story=sb), T0)  # a late article of the merged story
    assert repo.get_article(c)["story_id"] == sa  # type: ignore[index]
    assert repo.get_story(sa)["articles"] == 3  # type: ignore[index]
    with repo.engine.connect() as conn:  # the merged one is left as the merge left it
        merged = conn.execute(select(m.stories.c.articles, m.stories.c.merged_into)
                              .where(m.stories.c.id == sb)).one()  # fmt: skip
    assert tuple(merged) == (0, sa)
    new = repo.split_article(b, T0)
    assert repo.get_article(b)["story_id"] == new != sa  # type: ignore[index]
    with pytest.raises(StorageError):
        repo.merge_stories(sa, sa)


def test_a_rereport_stored_already_leaves_its_story_as_it_was(repo: SQLRepository) -> None:
    first = repo.add_article(_intent(1), T0)
    story = repo.get_article(first)["story_id"]  # type: ignore[index]
    later = T0 + timedelta(hours=5)
    assert repo.add_article(_intent(2, story=story, at=later), T0) is not None
    assert repo.add_article(_intent(2, story=story, at=later + timedelta(hours=1)), T0) is None
    kept = repo.get_story(story)
    assert kept is not None and (kept["articles"], kept["last_at"]) == (2, later)
    assert repo.count_articles() == 2


def test_automatic_merge_keeps_a_hand_split_and_is_idempotent(repo: SQLRepository) -> None:
    a, b, c = (repo.add_article(_intent(n), T0) for n in (1, 2, 3))
    sa, sb, sc = (repo.get_article(x)["story_id"] for x in (a, b, c))  # type: ignore[index]
    assert repo.merge_stories(sa, sb, automatic=True) == 1
    assert repo.merge_stories(sa, sb, automatic=True) == 0  # one story already
    split = repo.split_article(b, T0)  # a correction by hand ...
    assert repo.merge_stories(sa, split, automatic=True) == 0  # ... is kept
    assert repo.merge_stories(split, sc, automatic=True) == 0
    assert repo.get_article(b)["story_id"] == split  # type: ignore[index]
    assert repo.merge_stories(sa, split) == 1  # a merge by hand still merges
    assert repo.merge_stories(sa, sc, automatic=True) == 0  # sa now holds the split one


def test_naive_datetime_is_refused(repo: SQLRepository) -> None:
    with pytest.raises((StorageError, ValueError)):
        repo.sync_sources([("a", "https://a.example/", "feed")], datetime(2024, 1, 1))


def test_unreachable_database_is_retried_then_a_storage_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(StorageError) as info:
        make_repository("postgresql+psycopg://user:topsecret@127.0.0.1:1/none", retry_for=0.5)
    assert "topsecret" not in str(info.value)
    assert sum("storage.retry" in r.getMessage() for r in caplog.records) >= 2
    assert not any("topsecret" in r.getMessage() for r in caplog.records)


def test_sqlite_files_are_written_ahead_and_checkpointed_in_large_steps(tmp_path: Path) -> None:
    # WAL lets readers (status, the endpoint) run beside the writer; the checkpoint
    # interval is the one the connection was given, on every pooled connection.
    from storage._engine import WAL_CHECKPOINT_PAGES

    repo = make_repository(f"sqlite:///{tmp_path}/wal.db")
    try:
        pooled = [repo.engine.raw_connection() for _ in range(2)]
        for conn in pooled:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            pages = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            assert pages == WAL_CHECKPOINT_PAGES > 1000  # SQLite's default is 1000
            conn.close()
    finally:
        repo.close()


def test_every_public_method_is_one_retried_transaction() -> None:
    # SQLRepository inherits its sources, stories and outbox methods: each class must
    # wrap its own, or a transient error there would fail at once.
    import inspect

    unwrapped = {"as_candidate", "close", "hold_lock", "ping", "transaction"}
    methods = {name: inspect.getattr_static(SQLRepository, name) for name in dir(SQLRepository)
               if not name.startswith("_")}  # fmt: skip
    checked = [name for name, f in methods.items() if inspect.isfunction(f)
               and not inspect.isgeneratorfunction(inspect.unwrap(f))]  # fmt: skip
    assert {"claim_sources", "claim_alerts", "merge_stories", "add_article"} <= set(checked)
    assert [n for n in checked if hasattr(methods[n], "__wrapped__") == (n in unwrapped)] == []


_TERMS = st.lists(st.sampled_from(["tokyo", "osaka", "naha", "guam", "kadena"]), min_size=1,
                  max_size=4, unique=True)  # fmt: skip
# (terms, days, hours): times at the window's very edges and equal times come up
_ARTICLES = st.lists(st.tuples(_TERMS, st.integers(-10, 10), st.integers(0, 1)), min_size=1,
                     max_size=14)  # fmt: skip


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(stored=_ARTICLES, batch=_ARTICLES, per=st.integers(1, 4), limit=st.integers(1, 5))
@example(stored=[(["tokyo"], 0, 0)], batch=[(["tokyo"], 7, 0), (["tokyo"], 0, 0),
                                            (["tokyo"], -7, 0)], per=1, limit=2)  # edges
@example(stored=[(["tokyo"], 0, 0)], batch=[(["tokyo", "osaka"], 0, 0), (["tokyo"], 0, 0),
                                            (["osaka"], 0, 0)], per=1, limit=1)  # same time
def test_a_batch_lookup_finds_what_lookups_one_by_one_find(
    db_url: str, tmp_path: Path, stored: list[tuple[list[str], int, int]],
    batch: list[tuple[list[str], int, int]], per: int, limit: int,
) -> None:  # fmt: skip
    # Articles days apart (some outside each other's window, some on its edge, some at
    # the same time), sharing a few terms: each batch article finds the stored and
    # earlier batch articles that the one-by-one lookup finds once those earlier ones
    # are stored, truncation by ``per`` included. The two backends build the batch
    # lookup differently (JSON rows on SQLite, arrays on PostgreSQL).
    with _empty_repository(db_url, tmp_path) as repo:
        n = 0

        def intent(terms: list[str], days: int, hours: int) -> ArticleIntent:
            nonlocal n
            n += 1
            return _intent(n, terms=tuple(terms), at=T0 + timedelta(days=days, hours=hours))

        for item in stored:
            repo.add_article(intent(*item), T0)
        probes = [intent(*item) for item in batch]
        window = timedelta(days=7)
        found = repo.get_candidates_batch(
            [(p.fingerprint, p.article.when) for p in probes], window, limit, per_term=per)
        position: dict[int, int] = {}
        for k, probe in enumerate(probes):
            alone = repo.get_candidates(probe.fingerprint, probe.article.when, window,
                                        limit, per_term=per)  # fmt: skip
            assert sorted(c.article_id for c in found[k].stored) == sorted(
                c.article_id for c in alone if c.article_id not in position)
            assert list(found[k].earlier) == sorted(
                position[c.article_id] for c in alone if c.article_id in position)
            article_id = repo.add_article(probe, T0)
            assert article_id is not None
            position[article_id] = k


@contextmanager
def _empty_repository(db_url: str, tmp_path: Path) -> Iterator[SQLRepository]:
    """A repository with nothing stored, for each example of a property: a new SQLite
    file, or the test's PostgreSQL schema emptied."""
    if db_url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            repo = make_repository(f"sqlite:///{folder}/p.db")
            try:
                yield repo
            finally:
                repo.close()
        return
    repo = make_repository(db_url)
    try:
        with repo.engine.begin() as conn:
            tables = ", ".join(t.name for t in m.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {tables} CASCADE")
        yield repo
    finally:
        repo.close()
