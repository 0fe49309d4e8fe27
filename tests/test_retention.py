"""Retention: old bodies are pruned in batches; a pruned article is still known.

Articles are stored through the real pipeline with the clock 200 days back, alerted to a
real webhook receiver, pruned by ``monitor prune``, and then served again by the feed.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from monitor.retention import prune
from tests.conftest import Clock, write_config
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

OLD = Item("Pentagon budget hearing scheduled", "https://example.org/old-1",
           "Lawmakers will question officials about the budget next week.")  # fmt: skip
USFJ = Item("US Forces Japan to become a joint force headquarters",
            "https://news.example.org/usfj-jfhq",
            "The United States will upgrade US Forces Japan into a joint force headquarters, "
            "the defense secretary said after talks in Tokyo with his counterpart.",
            published=datetime.now(UTC) - timedelta(days=199))  # fmt: skip
MIRROR = Item(USFJ.title, "https://mirror.example.net/copy-of-usfj", USFJ.body,
              published=USFJ.published)  # fmt: skip


def _feed(server: HTTPServer, path: str, items: list[Item]) -> None:
    server.routes[path] = Response(200, rss(items), {"Content-Type": "application/rss+xml"})


@pytest.fixture
def aged(tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver) -> Path:
    """A store whose articles were fetched 200 and 199 days ago; USFJ alerted once."""
    _feed(feed_server, "/wire", [OLD])
    _feed(feed_server, "/mirror", [])
    path = write_config(
        tmp_path / "monitor.yaml", retention={"articles": "180d", "batch": 2},
        feeds=[{"name": "Wire", "url": feed_server.url("/wire")},
               {"name": "Mirror", "url": feed_server.url("/mirror")}],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    )  # fmt: skip
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=200))
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack, clock=clock)
        rt.pipeline.run_cycle(all_enabled=True)  # first poll: backlog
        clock.advance(days=1)
        _feed(feed_server, "/wire", [OLD, USFJ])
        rt.pipeline.run_cycle(all_enabled=True)
        assert rt.deliverer.deliver_due().sent == 1
    assert len(webhook.received) == 1
    return path


def _articles(path: Path) -> dict[str, dict[str, object]]:
    with ExitStack() as stack:
        repo = open_runtime(load_config(path), stack).repo
        rows = [repo.get_article(i) for i in range(1, repo.count_articles() + 1)]
    return {f"{r['source']}:{r['title']}": r for r in rows if r is not None}


def test_prune_cli_empties_old_bodies_and_keeps_the_rest(
    aged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _articles(aged)
    capsys.readouterr()
    assert main(["prune", "--config", str(aged)]) == 0
    # the two seeds (2024) and the two Wire articles, in batches of two
    assert capsys.readouterr().out.startswith("4 article bodies pruned")
    after = _articles(aged)
    usfj = after[f"Wire:{USFJ.title}"]
    assert usfj["pruned"] is True and usfj["body"] == ""
    old = before[f"Wire:{USFJ.title}"]
    for key in ("item_key", "fingerprint", "story_id", "decision", "url", "title"):
        assert usfj[key] == old[key], key
    assert main(["prune", "--config", str(aged)]) == 0
    assert capsys.readouterr().out.startswith("0 article bodies pruned")


def test_pruned_article_reappearing_is_not_new_and_not_alerted(
    aged: Path, feed_server: HTTPServer, webhook: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert main(["prune", "--config", str(aged)]) == 0
    count = len(_articles(aged))
    _feed(feed_server, "/wire", [USFJ])  # the same entry comes back
    _feed(feed_server, "/mirror", [MIRROR])  # and a copy under another URL
    capsys.readouterr()
    assert main(["run", "--once", "--config", str(aged)]) == 0
    assert "0 new stories" in capsys.readouterr().out
    after = _articles(aged)
    assert len(after) == count + 1  # the mirror's copy, stored as what it is
    assert after[f"Mirror:{USFJ.title}"]["decision"] in ("duplicate", "rereport")
    assert after[f"Mirror:{USFJ.title}"]["story_id"] == after[f"Wire:{USFJ.title}"]["story_id"]
    assert len(webhook.received) == 1  # nobody alerted again


def test_prune_keeps_recent_articles_and_backtests_skip_pruned(
    aged: Path, feed_server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = Item("US Forces Japan opens new headquarters building",
                 "https://news.example.org/usfj-building",
                 "US Forces Japan opened a new headquarters building at Yokota on Monday.")
    _feed(feed_server, "/wire", [OLD, USFJ, fresh])
    assert main(["run", "--once", "--config", str(aged)]) == 0
    with ExitStack() as stack:
        repo = open_runtime(load_config(aged), stack).repo
        assert prune(repo, 180 * 86400, datetime.now(UTC), batch=10) == 4
        assert repo.count_articles(include_pruned=False) == 1
    capsys.readouterr()
    assert main(["check", "--query", '"US Forces Japan"', "--since", "3650d",
                 "--config", str(aged)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert fresh.title in out and "1 articles matched" in out


def test_prune_needs_a_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[])
    assert main(["prune", "--config", str(path)]) == 2
    assert "no retention set" in capsys.readouterr().err
    assert main(["prune", "--older-than", "2h", "--config", str(path)]) == 2
    assert "1d or more" in capsys.readouterr().err
    assert main(["prune", "--older-than", "30d", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "0 article bodies pruned (fetched more than 30d ago)\n"
