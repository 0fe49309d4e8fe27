"""Poll batches (issue 9): worker processes store what inline work stores, seen items are
not prepared again, poll outcomes are written together."""

from __future__ import annotations

from contextlib import ExitStack
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
