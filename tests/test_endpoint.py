"""/healthz, /readyz and /metrics over a real socket while the daemon runs in-process.

The daemon (``run_daemon`` with a stop event) polls a real feed server and alerts a real
webhook receiver; the metrics must show what its jobs did.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import open_runtime
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.scheduler import run_daemon
from tests.conftest import write_config
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

ITEM = Item("US Forces Japan stands up joint force headquarters",
            "https://news.example.org/jfhq", "US Forces Japan opened its joint force "
            "headquarters in Tokyo on Monday, officials said.")  # fmt: skip


def _wait(pred: Callable[[], object], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@dataclass
class Running:
    daemon: Daemon
    base: str
    stop: threading.Event


@pytest.fixture
def running(tmp_path: Path, feed_server: HTTPServer,
            webhook: WebhookReceiver) -> Iterator[Running]:  # fmt: skip
    feed_server.routes["/rss"] = Response(200, rss([ITEM]),
                                          {"Content-Type": "application/rss+xml"})  # fmt: skip
    feed_server.routes["/down"] = Response(503, b"busy")
    path = write_config(
        tmp_path / "monitor.yaml", alert_backlog=True, database=f"sqlite:///{tmp_path}/db/m.db",
        http={"listen": "127.0.0.1:0"}, retention={"articles": "30d"},
        feeds=[{"name": "Wire", "url": feed_server.url("/rss")},
               {"name": "Down", "url": feed_server.url("/down")}],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    )  # fmt: skip
    stop = threading.Event()
    with ExitStack() as stack:
        daemon = Daemon(open_runtime(load_config(path), stack), stack)
        assert daemon.ready() == "first poll cycle not finished"
        assert daemon.health() == "scheduler not running"
        thread = threading.Thread(target=run_daemon, args=(daemon,), kwargs={"stop": stop})
        thread.start()
        try:
            assert _wait(lambda: daemon.endpoint is not None), "the endpoint never started"
            yield Running(daemon, f"http://{daemon.endpoint.address}", stop)
        finally:
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive()


def test_health_and_readiness(running: Running, webhook: WebhookReceiver) -> None:
    assert _wait(lambda: _get(running.base + "/readyz")[0] == 200), "never ready"
    status, ctype, body = _get(running.base + "/healthz")
    assert (status, body) == (200, "ok\n") and ctype.startswith("text/plain")
    assert _get(running.base + "/readyz")[2] == "ok\n"
    assert _get(running.base + "/nope")[0] == 404


def test_metrics_count_what_the_jobs_did(running: Running, webhook: WebhookReceiver) -> None:
    assert _wait(lambda: len(webhook.received) == 1), "the daemon never alerted"

    def sent() -> bool:
        return _samples(_get(running.base + "/metrics")[2]).get(
            ("monitor_alerts_sent_total", ())) == 1.0

    assert _wait(sent), "the deliver job's result never reached the metrics"
    status, ctype, text = _get(running.base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    m = _samples(text)
    assert m[("monitor_polls_total", ())] >= 2
    assert m[("monitor_poll_errors_total", ())] >= 1  # Down answers 503
    assert m[("monitor_entries_total", ())] >= 1
    assert m[("monitor_dedupe_decisions_total", (("decision", "new"),))] >= 1
    assert ("monitor_dedupe_decisions_total", (("decision", "rereport"),)) in m
    assert m[("monitor_matches_total", ())] >= 1
    assert m[("monitor_alerts_queued_total", ())] == 1
    assert m[("monitor_alerts_failed_total", (("outcome", "dead"),))] == 0
    assert m[("monitor_outbox_queue_depth", (("status", "pending"),))] == 0
    assert m[("monitor_outbox_queue_depth", (("status", "dead"),))] == 0
    assert m[("monitor_cycle_duration_seconds_count", ())] >= 1
    assert m[("monitor_sources", (("state", "failing"),))] == 1
    assert m[("monitor_sources", (("state", "ok"),))] == 1
    # retention ran at start: the seed articles (2024) are older than 30 days
    assert m[("monitor_articles_pruned_total", ())] == 2
    assert running.daemon.runtime.repo.count_articles(include_pruned=False) == 1


def test_health_reports_a_database_that_does_not_answer(running: Running,
                                                        tmp_path: Path) -> None:  # fmt: skip
    assert _wait(lambda: _get(running.base + "/healthz")[0] == 200)
    (tmp_path / "db").rename(tmp_path / "db-away")  # the database file is gone
    running.daemon.runtime.repo.engine.dispose()  # and no pooled connection hides it
    try:
        status, _ctype, body = _get(running.base + "/healthz")
        assert status == 503 and body.startswith("database does not answer")
        assert _get(running.base + "/readyz")[0] == 503
    finally:
        (tmp_path / "db-away").rename(tmp_path / "db")
    assert _wait(lambda: _get(running.base + "/healthz")[0] == 200)


def test_listen_address_in_use_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    with HTTPServer() as taken:
        path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[],
                            http={"listen": f"127.0.0.1:{taken.port}"})  # fmt: skip
        assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"http.listen: cannot listen on 127.0.0.1:{taken.port}" in err
    assert "Traceback" not in err
