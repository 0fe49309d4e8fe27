"""SIGHUP reloads the config of a running daemon process (validated first).

Real process, real feed server and webhook receiver; the daemon logs JSON lines, which the
test reads while it runs.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.conftest import write_config
from tests.daemons import DaemonProcess, wait
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

pytestmark = pytest.mark.slow

FIRST = Item("US Forces Japan stands up joint force headquarters",
             "https://news.example.org/jfhq", "US Forces Japan opened its joint force "
             "headquarters in Tokyo on Monday, officials said.")  # fmt: skip
SECOND = Item("Kadena air base hosts US Forces Japan drill",
              "https://second.example.org/kadena", "Airmen at Kadena joined a US Forces Japan "
              "readiness drill with F-15 fighters and tankers from Guam.",
              published=datetime.now(UTC) - timedelta(days=30))  # another event: own story


def _feed(server: HTTPServer, path: str, items: list[Item]) -> None:
    server.routes[path] = Response(200, rss(items), {"Content-Type": "application/rss+xml"})


def _raw(feed_server: HTTPServer, webhook: WebhookReceiver, tmp_path: Path) -> dict[str, Any]:
    return {
        "database": f"sqlite:///{tmp_path}/monitor.db", "allow_private": ["127.0.0.1"],
        "alert_backlog": True,
        "feeds": [{"name": "Wire", "url": feed_server.url("/wire"), "interval": "10s"}],
        "notifiers": {"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        "watchlists": [{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    }  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path, feed_server: HTTPServer,
           webhook: WebhookReceiver) -> Iterator[DaemonProcess]:  # fmt: skip
    _feed(feed_server, "/wire", [FIRST])
    config = write_config(tmp_path / "monitor.yaml", **_raw(feed_server, webhook, tmp_path))
    proc = DaemonProcess(config)
    try:
        proc.wait_for("daemon.started")
        assert wait(lambda: len(webhook.received) == 1), "the first alert never came"
        yield proc
    finally:
        proc.stop()


def test_broken_config_is_refused_and_the_old_one_kept(
    daemon: DaemonProcess, tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    raw = _raw(feed_server, webhook, tmp_path)
    raw["watchlists"][0]["query"] = '"US Forces Japan" AND (drill'
    raw["feeds"].append({"name": "Second", "url": "ftp://second.example.org/"})
    write_config(tmp_path / "monitor.yaml", **raw)
    daemon.send(signal.SIGHUP)

    [failed] = daemon.wait_for("config.reload_failed")
    assert failed["level"] == "error" and failed["problems"] == 2 and failed["kept"] == "previous"
    problems = " | ".join(r["problem"] for r in daemon.events("config.reload_problem"))
    assert "watchlists[0].query" in problems and "feeds[1].url" in problems
    assert daemon.events("config.reloaded") == []
    # the running config still works: a new matching entry alerts with the old watchlist
    _feed(feed_server, "/wire", [FIRST, SECOND])
    assert wait(lambda: len(webhook.received) == 2), "the old config stopped working"
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_added_source_is_polled_after_reload(
    daemon: DaemonProcess, tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _feed(feed_server, "/second", [SECOND])
    raw = _raw(feed_server, webhook, tmp_path)
    raw["feeds"] = [{"name": "Second", "url": feed_server.url("/second"), "interval": "10s"}]
    raw["watchlists"].append({"name": "kadena", "query": "Kadena", "notify": ["chat"]})
    write_config(tmp_path / "monitor.yaml", **raw)
    daemon.send(signal.SIGHUP)

    [reloaded] = daemon.wait_for("config.reloaded")
    assert reloaded["added_feeds"] == "Second" and reloaded["removed_feeds"] == "Wire"
    assert reloaded["added_watchlists"] == "kadena"
    assert wait(lambda: feed_server.requests_to("/second")), "the added source was never polled"
    assert wait(lambda: len(webhook.received) == 3), "no alert from the added source"
    watchlists = sorted(str(p["alert_id"]).split("/")[1] for p in webhook.received[1:])
    assert watchlists == ["kadena", "usfj"]  # one per watchlist, the added one included
    assert daemon.stop() == 0
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(tmp_path / "monitor.yaml")]) == 0
    sources = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sources"]}
    assert sources["Wire"]["state"] == "disabled" and sources["Second"]["state"] == "ok"
