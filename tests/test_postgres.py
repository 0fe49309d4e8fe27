"""PostgreSQL going away and coming back: dropped connections, a restart, time zones.

On the real server at 127.0.0.1:5432. Connections are cut with ``pg_terminate_backend``
(only this test's own, picked by ``application_name``) or by a TCP proxy in front of the
server that goes down and up again, as a restart looks to the client.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

import storage._index
from monitor.app import open_runtime
from monitor.config import load_config
from monitor.types import ArticleIntent
from storage import SQLRepository, make_repository
from storage import models as m
from tests.conftest import POSTGRES_URL, write_config
from tests.feeds import rss, story_items
from tests.servers import HTTPServer, Response
from tests.smtp import SMTPServer
from tests.tcpproxy import TCPProxy
from tests.test_storage import T0, _alert, _intent

pytestmark = pytest.mark.postgres
LEASE = timedelta(minutes=2)


def _with(url: str, **query: str) -> str:
    """``url`` with more query parameters (``options`` values are joined)."""
    u = make_url(url)
    merged = dict(u.query)
    for key, value in query.items():
        merged[key] = f"{merged[key]} {value}" if key == "options" and key in merged else value
    return u.set(query=merged).render_as_string(hide_password=False)


@pytest.fixture
def app_name() -> str:
    return f"monitor-test-{uuid.uuid4().hex[:10]}"


def _terminate(app_name: str) -> int:
    """Cut every server connection of ``app_name``; returns how many were cut."""
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND application_name = %s AND pid <> pg_backend_pid()",
            [app_name],
        ).fetchall()
    return len(rows)


def _count(repo: SQLRepository, table: Any, *where: Any) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())  # fmt: skip


@pytest.fixture
def runtime_config(tmp_path: Path, postgres_url: str, app_name: str,
                   feed_server: HTTPServer, smtp: SMTPServer) -> Path:  # fmt: skip
    feed_server.routes["/rss"] = Response(200, rss([]), {"Content-Type": "application/rss+xml"})
    return write_config(
        tmp_path / "monitor.yaml", database=_with(postgres_url, application_name=app_name),
        alert_backlog=True, feeds=[{"name": "Wire", "url": feed_server.url("/rss")}],
        notifiers={"desk": smtp.apprise_url()},
        watchlists=[{"name": "jfhq", "query": '"joint force headquarters"', "notify": ["desk"]}],
    )  # fmt: skip


def test_connections_cut_between_operations_lose_and_repeat_no_alert(
    runtime_config: Path, app_name: str, feed_server: HTTPServer, smtp: SMTPServer
) -> None:
    items = story_items(3, seed=1)
    with ExitStack() as stack:
        rt = open_runtime(load_config(runtime_config), stack)
        for n in (1, 2, 3):
            feed = rss(items[:n])
            feed_server.routes["/rss"] = Response(200, feed, {"Content-Type": "text/xml"})
            assert _terminate(app_name) >= 1  # the pooled connections are gone
            assert rt.pipeline.run_cycle(all_enabled=True).alerts == 1
            assert _terminate(app_name) >= 1
            assert rt.deliverer.deliver_due().sent == 1
            assert _terminate(app_name) >= 1
            assert rt.deliverer.deliver_due().sent == 0
        summary = rt.repo.get_outbox_summary()
    assert sorted(msg["Subject"] for msg in smtp.messages) == sorted(i.title for i in items)
    assert summary["pending"] == summary["retrying"] == summary["dead"] == 0


def _cut_once_before(repo: SQLRepository, app_name: str, statement: str) -> list[str]:
    """Cut the connection the first time ``statement`` is about to run (mid-transaction).
    Returns a list that records each cut."""
    cuts: list[str] = []

    @event.listens_for(repo.engine, "before_cursor_execute")
    def cut(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if not cuts and sql.lstrip().upper().startswith(statement):
            cuts.append(sql)
            assert _terminate(app_name) >= 1

    return cuts


def test_a_transaction_cut_midway_is_run_again_whole(
    postgres_url: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repository(_with(postgres_url, application_name=app_name))
    try:
        caplog.set_level(logging.WARNING, "monitor.storage")
        cuts = _cut_once_before(repo, app_name, "INSERT INTO OUTBOX")
        article_id = repo.add_article(_intent(1, alerts=(_alert(),)), T0)  # story, article first
        assert cuts and article_id is not None
        assert (_count(repo, m.stories), _count(repo, m.articles), _count(repo, m.outbox)) \
            == (1, 1, 1)  # fmt: skip
        (item,) = repo.claim_alerts(T0, "one", LEASE)
        cuts = _cut_once_before(repo, app_name, "UPDATE OUTBOX")
        repo.mark_sent(item.id, T0)
        assert cuts and _count(repo, m.outbox, m.outbox.c.status == "sent") == 1
        assert repo.claim_alerts(T0 + LEASE * 2, "two", LEASE) == []
        retries = [r for r in caplog.records if "storage.retry" in r.getMessage()]
        assert len(retries) == 2
    finally:
        repo.close()


def test_a_batch_lookup_cut_midway_is_run_again(
    postgres_url: str, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The statement that reads a batch's term postings, the largest of a cycle: a
    # connection lost there is waited out, and the lookup's result is whole.
    repo = make_repository(_with(postgres_url, application_name=app_name))
    try:
        stored = repo.add_article(_intent(1, terms=("tokyo", "okinawa")), T0)
        caplog.set_level(logging.WARNING, "monitor.storage")
        cuts = _cut_once_before(repo, app_name, "WITH BATCH_TERMS")
        probes = [(_intent(2 + k, terms=("tokyo",)).fingerprint, T0) for k in range(3)]
        found = repo.get_candidates_batch(probes, timedelta(days=7), 24)
        assert cuts
        assert [[c.article_id for c in f.stored] for f in found] == [[stored]] * 3
        assert [list(f.earlier) for f in found] == [[], [0], [0, 1]]
        assert [r for r in caplog.records if "storage.retry" in r.getMessage()]
    finally:
        repo.close()


def test_a_restart_is_waited_out_without_losing_or_repeating(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = make_url(postgres_url)
    with TCPProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
        repo = make_repository(real.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            repo.add_article(_intent(1, alerts=(_alert(),)), T0)
            caplog.set_level(logging.WARNING, "monitor.storage")
            proxy.down()  # the server goes away: open connections cut, new ones refused
            threading.Timer(1.5, proxy.up).start()  # and is back 1.5 s later
            started = time.monotonic()
            (item,) = repo.claim_alerts(T0, "one", LEASE)  # waits, retrying, then works
            assert 1.4 < time.monotonic() - started < 15
            repo.mark_sent(item.id, T0)
            assert repo.add_article(_intent(1, alerts=(_alert(),)), T0) is None
            assert repo.get_outbox_summary()["pending"] == 0
            assert len(repo.get_sent_alerts(T0 - timedelta(days=1))) == 1
            assert any("storage.retry" in r.getMessage() for r in caplog.records)
        finally:
            repo.close()


def test_candidate_lookups_are_planned_for_their_values(postgres_url: str) -> None:
    # psycopg prepares a statement run five times, and PostgreSQL may then plan it once
    # for any array of values: a key lookup planned so on a small store went on scanning
    # the whole table. The lookups must never be prepared; article writes still are.
    repo = make_repository(postgres_url)
    try:
        for n in range(8):
            repo.add_article(_intent(n, keys=(f"url:{n}",), bands=(f"b{n}",),
                                     terms=("tokyo", f"t{n}")), T0)  # fmt: skip
        for n in range(8):
            probes = [(_intent(100 + n + k, keys=(f"url:{n}",), bands=(f"b{n}",),
                               terms=("tokyo",)).fingerprint, T0) for k in range(3)]  # fmt: skip
            found = repo.get_candidates_batch(probes, timedelta(days=7), 24)
            assert found[0].stored  # the stored article with the key
        with repo.engine.connect() as conn:
            prepared = conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements").scalars().all()
    finally:
        repo.close()
    assert any("INSERT INTO articles" in s for s in prepared)  # the same connection
    lookups = [s for s in prepared if "ANY (" in s or "unnest(" in s]  # the array binds
    assert lookups == []


def test_the_index_tables_are_vacuumed_as_they_grow(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lookup reads postings from the index alone only on pages VACUUM has marked
    # visible to every transaction, and a band lookup uses the index only once the
    # planner has statistics; autovacuum comes late (or never: a server may run without
    # it), so the repository vacuums and analyzes the index tables itself.
    monkeypatch.setattr(storage._index, "VACUUM_ROWS", 40)
    repo = make_repository(postgres_url)
    tables = ("article_terms", "article_keys", "article_bands")

    def pages_all_visible() -> dict[str, int]:
        with repo.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT relname, relallvisible FROM pg_class WHERE oid = ANY(%(t)s::regclass[])",
                {"t": list(tables)}).all()  # fmt: skip
        return {name: int(n) for name, n in rows}

    def with_statistics() -> set[str]:  # the planner's, by ANALYZE
        with repo.engine.connect() as conn:
            return set(conn.exec_driver_sql(
                "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema() "
                "AND tablename = ANY(%(t)s)", {"t": list(tables)}).scalars())  # fmt: skip

    def article(n: int) -> ArticleIntent:  # 1 key, 2 bands and 10 terms: 13 index rows
        return _intent(n, bands=(f"b{n}", f"c{n}"), terms=tuple(f"t{n}.{k}" for k in range(10)))

    try:
        with repo.engine.begin() as conn:
            for table in tables:  # only the repository's VACUUM marks pages here
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        repo.add_article(article(0), T0)
        with repo.transaction():
            repo.add_article(article(1), T0)
        assert pages_all_visible() == dict.fromkeys(tables, 0)  # 26 rows: not yet
        assert with_statistics() == set()
        with repo.transaction():
            for n in (2, 3):
                repo.add_article(article(n), T0)
        assert pages_all_visible() == dict.fromkeys(tables, 1)  # 52 rows, one page each
        assert with_statistics() == set(tables)  # the first vacuum analyzes them too
    finally:
        repo.close()


def test_the_session_time_zone_changes_no_stored_time(postgres_url: str) -> None:
    utc_repo = make_repository(postgres_url)
    tokyo_repo = make_repository(_with(postgres_url, options="-cTimeZone=Asia/Tokyo"))
    try:
        with tokyo_repo.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "Asia/Tokyo"
        article_id = tokyo_repo.add_article(_intent(1), T0)
        for repo in (utc_repo, tokyo_repo):
            row = repo.get_article(article_id)  # type: ignore[arg-type]
            assert row is not None and row["published"] == T0
            assert row["published"].utcoffset() == timedelta(0)
        utc_repo.sync_sources([("a", "https://a.example/rss", "feed")], T0)
        (state,) = tokyo_repo.claim_sources(T0, "one", LEASE)
        assert state.next_poll_at == T0 and state.next_poll_at.tzname() == "UTC"
    finally:
        utc_repo.close()
        tokyo_repo.close()


def test_daemons_starting_together_on_an_empty_database(
    tmp_path: Path, postgres_url: str, feed_server: HTTPServer
) -> None:
    config = load_config(write_config(
        tmp_path / "monitor.yaml", database=postgres_url,
        feeds=[{"name": f"Feed {n}", "url": feed_server.url(f"/{n}")} for n in range(20)],
    ))  # fmt: skip
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            with ExitStack() as stack:
                open_runtime(config, stack)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    repo = make_repository(postgres_url)
    try:
        assert len(repo.get_sources()) == 20
        seeds = list(repo.iter_articles())
        assert len(seeds) == 2 and len({a["story_id"] for a in seeds}) == 1
        assert _count(repo, m.stories) == 1
    finally:
        repo.close()


@pytest.fixture(autouse=True)
def _no_leftover_connections(app_name: str) -> Iterator[None]:
    """Every engine a test opened is closed by its end (pool-leak check)."""
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name"
                                " = %s", [app_name]).fetchone()  # fmt: skip
        if left is None or left[0] == 0:
            return
        time.sleep(0.1)
    pytest.fail(f"connections of {app_name} left open")
