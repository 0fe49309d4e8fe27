"""Leases under several daemons: slow work keeps its leases, a lost race is decided again.

Two pipelines (or deliverers) on one database stand for two daemons; each has an owner
of its own. Runs on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor._leases import keep_leases
from monitor.config import Config, load_config
from monitor.deliver import Deliverer
from monitor.errors import StorageError
from monitor.fetch import HTTPFetcher
from monitor.pipeline import Pipeline
from monitor.types import Article
from storage import make_repository
from tests.conftest import write_config
from tests.feeds import rss, story_items
from tests.servers import HTTPServer, Request, Response

SLOW = 2.5  # seconds a slow answer takes: longer than the 1 s lease


def test_keep_leases_renews_every_third_of_the_lease_until_the_block_ends() -> None:
    calls: list[float] = []

    def renew() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise StorageError("database error: the next renewal may work")

    with keep_leases(renew, lease=0.3):
        time.sleep(0.55)
    done = len(calls)
    time.sleep(0.25)
    assert done >= 4 and len(calls) == done  # went on after a failure; stopped at the end


@pytest.fixture
def config(tmp_path: Path, db_url: str, feed_server: HTTPServer) -> Config:
    return load_config(write_config(
        tmp_path / "monitor.yaml", database=db_url, lease="1s", alert_backlog=True,
        feeds=[{"name": "Slow", "url": feed_server.url("/slow")}],
        notifiers={"chat": f"json://127.0.0.1:{feed_server.port}/hook"},
        watchlists=[{"name": "jfhq", "query": '"joint force headquarters"', "notify": ["chat"]}],
    ))  # fmt: skip


@pytest.fixture
def daemons(config: Config) -> Iterator[list[tuple[Pipeline, Deliverer]]]:
    """Two daemons' pipelines and deliverers on one database."""
    with ExitStack() as stack:
        out = []
        for n in range(2):
            repo = make_repository(config.database)
            stack.callback(repo.close)
            fetcher = HTTPFetcher(allow_private=config.allow_private)
            stack.callback(fetcher.close)
            pipeline, deliverer = Pipeline(config, repo, fetcher), Deliverer(config, repo)
            pipeline.owner, deliverer.owner = f"daemon-{n}", f"daemon-{n}:deliver"
            out.append((pipeline, deliverer))
        out[0][0].sync_sources()
        yield out


def _in_thread(func: Any) -> threading.Thread:
    thread = threading.Thread(target=func)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_slow_poll_keeps_its_source_from_other_daemons(
    daemons: list[tuple[Pipeline, Deliverer]], feed_server: HTTPServer
) -> None:
    def slow(req: Request) -> Response:
        time.sleep(SLOW)
        return Response(200, rss(story_items(1)), {"Content-Type": "application/rss+xml"})

    feed_server.routes["/slow"] = slow
    (first, _), (second, _) = daemons
    running = _in_thread(first.run_cycle)
    time.sleep(SLOW * 0.6)  # the 1 s lease would have expired without renewal
    assert second.run_cycle(all_enabled=True).sources == 0
    running.join(30)
    assert len(feed_server.requests_to("/slow")) == 1


@pytest.mark.slow
def test_a_slow_send_keeps_its_alert_from_other_daemons(
    daemons: list[tuple[Pipeline, Deliverer]], feed_server: HTTPServer
) -> None:
    posts: list[Any] = []

    def hook(req: Request) -> Response:
        posts.append(json.loads(req.body))
        time.sleep(SLOW)
        return Response(200, b"{}", {"Content-Type": "application/json"})

    feed_server.routes["/slow"] = Response(200, rss(story_items(1)))
    feed_server.routes["/hook"] = hook
    (first, sender), (_, other) = daemons
    assert first.run_cycle().alerts == 1
    running = _in_thread(sender.deliver_due)
    time.sleep(SLOW * 0.6)
    assert other.deliver_due().sent == 0
    running.join(30)
    assert len(posts) == 1


class _LateStore:
    """A repository that lets another daemon store its article right after this one has
    read its dedupe candidates (the race two daemons polling two feeds can run)."""

    def __init__(self, repo: Any, meanwhile: Any) -> None:
        self.repo, self.meanwhile = repo, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self.repo, name)

    def get_candidates(self, *args: Any, **kwargs: Any) -> Any:
        found = self.repo.get_candidates(*args, **kwargs)
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return found


def test_the_same_item_from_two_feeds_stored_meanwhile_alerts_once(
    daemons: list[tuple[Pipeline, Deliverer]],
) -> None:
    (first, _), (second, _) = daemons
    item = story_items(1, seed=5)[0]
    now = datetime.now(UTC)

    def article(source: str) -> Article:
        return Article(source=source, title=item.title, body=item.body, url=item.link,
                       link=item.link, guid=None, published=now, fetched=now)  # fmt: skip

    stored: list[int | None] = []
    second.repo = _LateStore(second.repo, lambda: stored.append(
        first.ingest(article("Wire"), backlog=False, now=now)))  # fmt: skip
    late = second.ingest(article("Agency"), backlog=False, now=now)
    assert stored[0] is not None and late is not None
    row = first.repo.get_article(late)
    assert row is not None and row["decision"] == "duplicate"
    assert row["matched_article_id"] == stored[0]
    assert first.repo.get_outbox_summary()["pending"] == 1  # one alert, not two
