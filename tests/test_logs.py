"""Log lines: fixed event names with fields; ``--log-format json`` for log collectors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.logs import JSONFormatter, set_secrets, split_event
from tests.conftest import write_config
from tests.daemons import DaemonProcess
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

ITEM = Item("US Forces Japan stands up joint force headquarters",
            "https://news.example.org/jfhq", "US Forces Japan opened its joint force "
            "headquarters in Tokyo on Monday, officials said.")  # fmt: skip
TOKEN = "s3cr3t-feed-token-9f2c"


def test_run_once_json_lines_parse_and_hide_secrets(
    tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    feed_server.routes["/wire"] = Response(200, rss([ITEM]),
                                           {"Content-Type": "application/rss+xml"})  # fmt: skip
    feed_server.routes["/private"] = Response(500, b"no")
    config = write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        feeds=[{"name": "Wire", "url": feed_server.url("/wire")},
               {"name": "Private", "url": feed_server.url("/private") + "?token=${FEED_TOKEN}"}],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    )  # fmt: skip
    proc = DaemonProcess(config, "--once", env={"FEED_TOKEN": TOKEN})
    assert proc.finish() == 0
    records = proc.records()  # every line of standard error is one JSON object
    assert records and all({"time", "level", "logger", "event"} <= set(r) for r in records)
    assert all(TOKEN not in line for line in proc.lines)
    by_event = {r["event"]: r for r in records}
    assert by_event["poll.ok"]["source"] == "Wire" and by_event["poll.ok"]["entries"] == 1
    assert by_event["poll.ok"]["backlog"] is False
    failed = by_event["poll.failed"]
    assert failed["level"] == "warning" and failed["source"] == "Private"
    assert "500" in failed["error"] and "/private?token=" in failed["error"]
    assert by_event["alert.sent"]["target"] == "chat"
    assert by_event["cycle.done"]["sources"] == 2 and by_event["cycle.done"]["failed"] == 1
    assert by_event["progress.done"]["task"] == "poll" and by_event["progress.done"]["done"] == 2
    assert len(webhook.received) == 1


def test_cli_error_in_json_mode_is_a_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds: [{name: x}]\nwatchlists: []\n")
    assert main(["run", "--log-format", "json", "--config", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    [record] = [json.loads(line) for line in lines]
    assert record["event"] == "cli.failed" and record["verb"] == "run"
    assert "feeds[0].url" in record["error"]


def _record(msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("monitor.test", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(("msg", "args", "event", "fields"), [
    ("poll.ok source=%s entries=%d new=%d backlog=%s", ("Wire RSS", 3, 1, False), "poll.ok",
     {"source": "Wire RSS", "entries": 3, "new": 1, "backlog": False}),
    ("alert.retry key=%s attempts=%d in=%.0fs error=%s", ("1/a/b", 2, 30.2, "HTTP 500: x=1"),
     "alert.retry", {"key": "1/a/b", "attempts": 2, "in": "30s", "error": "HTTP 500: x=1"}),
    ("article.stored id=%s score=%.2f", (5, 0.333), "article.stored", {"id": 5, "score": 0.33}),
    ("cycle.done %s", ("sources=2 failed=0 note=a b",), "cycle.done",
     {"sources": 2, "failed": 0, "note": "a b"}),
    ("digest.%s target=%s spec=%r", ("sent", "desk", "hourly"), "digest.sent",
     {"target": "desk", "spec": "'hourly'"}),
    ("daemon.stopping", (), "daemon.stopping", {}),
    ("Running upgrade %s -> %s", ("0001", "0002"), "log",
     {"message": "Running upgrade 0001 -> 0002"}),
])  # fmt: skip
def test_split_event(msg: str, args: tuple[Any, ...], event: str,
                     fields: dict[str, Any]) -> None:  # fmt: skip
    assert split_event(_record(msg, *args)) == (event, fields)


def test_json_formatter_redacts_and_keeps_its_own_keys() -> None:
    set_secrets({"hunter2"})
    try:
        line = JSONFormatter().format(_record("notify.failed level=%s error=%s", 3,
                                              "login hunter2 refused"))  # fmt: skip
    finally:
        set_secrets(())
    record = json.loads(line)
    assert record["level"] == "info" and record["field_level"] == 3
    assert record["error"] == "login *** refused" and "hunter2" not in line
