"""Poll batches (issue 9): worker processes store what inline work stores, seen items are
not prepared again, poll outcomes are written together."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import monitor._prepare
from monitor._poll import POOL_MIN_ENTRIES
from monitor.app import open_runtime, rebuild_runtime
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.conftest import Clock, write_config
from tests.feeds import atom, rss, story_items
from tests.servers import HTTPServer, Response

FEEDS = 10
ITEMS = POOL_MIN_ENTRIES // FEEDS + 2  # so that a batch of every feed uses the workers


def _serve(server: HTTPServer, extra: int = 0) -> list[dict[str, str]]:
    feeds = []
    for i in range(FEEDS):
        items = story_items(ITEMS + extra, seed=i, site=f"https://site{i}.example")
        body, ctype = ((atom(items), "application/atom+xml") if i % 3 == 2
                       else (rss(items), "application/rss+xml"))  # fmt: skip
        server.routes[f"/f{i}"] = Response(200, body, {"Content-Type": ctype})
        feeds.append({"name": f"feed {i}", "url": server.url(f"/f{i}")})
    server.routes["/broken"] = Response(200, b"<html><title>Sign in</title></html>",
                                        {"Content-Type": "text/html"})  # fmt: skip
    feeds.append({"name": "broken", "url": server.url("/broken")})
    return feeds


def _cycle(config: Path, clock: Clock) -> tuple[Any, list[tuple[Any, ...]]]:
    with ExitStack() as stack:
        rt = open_runtime(load_config(config), stack, clock=clock)
        stats = rt.pipeline.run_cycle(all_enabled=True)
        rows = {(a["source"], a["title"], a["body"], a["url"], a["story_id"] is not None)
                for a in rt.repo.iter_articles()}  # fmt: skip
        workers = rt.pipeline._workers
        stats.pooled = workers is not None and workers.started
    return stats, sorted(rows)


def _counts(stats: Any) -> tuple[int, ...]:
    return (stats.sources, stats.failed, stats.not_modified, stats.entries, stats.new,
            stats.duplicates, stats.rereports, stats.matches)  # fmt: skip


@pytest.mark.slow
def test_worker_processes_store_what_inline_work_stores(
    tmp_path: Path, feed_server: HTTPServer, clock: Clock
) -> None:
    feeds = _serve(feed_server)
    watch = [{"name": "jfhq", "query": '"joint force headquarters"'}]
    results = {}
    for workers in (0, 1, 2):  # inline, one spawned worker, two from a fork server
        config = write_config(tmp_path / f"w{workers}.yaml", feeds=feeds, watchlists=watch,
                              database=f"sqlite:///{tmp_path}/w{workers}.db",
                              poll={"parse_workers": workers})  # fmt: skip
        first = _cycle(config, clock)
        assert first[0].pooled == (workers > 0)
        second = _cycle(config, clock)
        assert not second[0].pooled  # nothing new: no worker started
        results[workers] = (_counts(first[0]), first[1], _counts(second[0]), second[1])
    assert results[0] == results[1] == results[2]
    first_counts, stored, second_counts, _ = results[2]
    assert first_counts[:2] == (FEEDS + 1, 1) and first_counts[4] == FEEDS * ITEMS
    assert second_counts[4] == 0 and len(stored) == FEEDS * ITEMS + 2  # and the two seeds


def test_seen_items_are_parsed_but_not_prepared_again(
    tmp_path: Path, feed_server: HTTPServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "m.yaml", feeds=_serve(feed_server),
                          watchlists=[], poll={"parse_workers": 0})  # fmt: skip
    _cycle(config, clock)
    prepared: list[int] = []
    real = monitor._prepare.prepare

    def counting(entries: Any, *args: Any) -> Any:
        prepared.append(len(entries))
        return real(entries, *args)

    monkeypatch.setattr(monitor._prepare, "prepare", counting)
    _serve(feed_server, extra=1)  # every feed gained one item (no validators: all 200)
    stats, _ = _cycle(config, clock)
    assert stats.entries == FEEDS * (ITEMS + 1) and stats.new == FEEDS
    assert prepared == [1] * FEEDS


def test_parse_workers_is_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.yaml", feeds=[], watchlists=[],
                          poll={"parse_workers": -1})  # fmt: skip
    with pytest.raises(ConfigError, match=r"poll\.parse_workers"):
        load_config(config)


def test_a_reload_keeps_the_worker_processes(tmp_path: Path, clock: Clock) -> None:
    config = write_config(tmp_path / "m.yaml", feeds=[], watchlists=[])
    with ExitStack() as stack:
        rt = open_runtime(load_config(config), stack, clock=clock)
        workers = rt.pipeline.workers()
        again = rebuild_runtime(rt, load_config(config), stack)
        assert again.pipeline.workers() is workers
        config.write_text(config.read_text() + "poll: {parse_workers: 0}\n")
        other = rebuild_runtime(again, load_config(config), stack)
        assert other.pipeline.workers() is not workers


@pytest.mark.parametrize("chunk", [100, 2])
def test_polls_prepared_together_are_stored_together_and_fail_alone(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, chunk: int,
) -> None:  # fmt: skip
    # Three polls finished preparing while the daemon was storing: they are stored as one
    # stream. When that fails on one source's entries (a storage fault injected here, as a
    # bug would raise), each poll is stored on its own: that source fails, the others not.
    # With chunks of 2, feed 0's first two articles are committed before the chunk that
    # fails: they are not stored again, and still count as that poll's new entries.
    import monitor._batch
    from monitor._poll import BatchPoll, _Poll
    from monitor._prepare import prepare
    from monitor.pipeline import CycleStats
    from monitor.types import Entry, Fetched

    names = [f"feed {i}" for i in range(3)]
    config = write_config(tmp_path / "m.yaml", watchlists=[], poll={"parse_workers": 0},
                          feeds=[{"name": n, "url": f"http://127.0.0.1:9/{i}"}
                                 for i, n in enumerate(names)])  # fmt: skip
    with ExitStack() as stack:
        rt = open_runtime(load_config(config), stack, clock=clock)
        p, repo = rt.pipeline, rt.repo
        sources = {s.name: s for s in repo.claim_sources(clock(), "test", timedelta(minutes=5),
                                                        all_enabled=True)}  # fmt: skip
        store = repo.add_article_story
        groups: list[int] = []
        ingest_groups = p.ingest_groups

        def counted(groups_: Any, **kwargs: Any) -> Any:
            groups.append(len(groups_))
            return ingest_groups(groups_, **kwargs)

        monkeypatch.setattr(p, "ingest_groups", counted)
        monkeypatch.setattr(monitor._batch, "CHUNK", chunk)

        def run(broken: str | None) -> list[tuple[str, bool, int]]:
            def storing(intent: Any, now: Any) -> Any:
                if intent.article.source == broken:
                    raise RuntimeError("injected storage fault")
                return store(intent, now)

            monkeypatch.setattr(repo, "add_article_story", storing)
            stats = CycleStats()
            batch = BatchPoll(p, sources, stats, p.workers)
            for i, name in enumerate(names):
                items = story_items(3, seed=i + (10 if broken else 0),
                                    site=f"https://s{i}.example")  # fmt: skip
                entries = [Entry(source=name, guid=None, link=it.link, title=it.title,
                                 summary=it.body, published=it.published)
                           for it in items]  # fmt: skip
                poll = _Poll(sources[name], p._feed_state(sources[name]),
                             Fetched(url=sources[name].url, status=200), clock())  # fmt: skip
                poll.keys = tuple(f"k{i}-{n}-{broken}" for n in range(len(entries)))
                batch._prepared(poll, prepare(entries, clock(), True))
            batch._ingest_ready()
            return [(i.source, i.ok, i.new_entries) for i in batch.polls]

        with caplog.at_level("INFO", logger="monitor.pipeline"):
            assert run(None) == [(n, True, 3) for n in names]
            assert groups == [3]
            assert run("feed 1") == [("feed 0", True, 3), ("feed 1", False, 0),
                                     ("feed 2", True, 3)]  # fmt: skip
        assert groups == [3, 3, 1, 1, 1]  # together, then each on its own
        stored = {a["source"] for a in repo.iter_articles()}
        assert len(list(repo.iter_articles())) == 2 + 3 * 3 + 2 * 3  # seeds, then all but one
    assert stored == {"seed", "feed 0", "feed 1", "feed 2"}
    assert any("batch.split polls=3 error=RuntimeError" in r.getMessage() for r in caplog.records)
    assert any("poll.crashed source=feed 1" in r.getMessage() for r in caplog.records)
