"""``monitor status`` and ``monitor alerts`` on a store filled through the real pipeline.

Real feed server (healthy, failing, 410-gone and quiet sources), real webhook receivers
(one answers 200, one 503, one 400), the real pipeline and deliverer; time is moved with
the test clock so that one source has been quiet for days.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from monitor.status import SILENT_AFTER, print_status, source_state
from tests.conftest import Clock, write_config
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

OLD = Item("Pentagon budget hearing scheduled", "https://example.org/old-1",
           "Lawmakers will question officials about the budget next week.")  # fmt: skip
USFJ = Item("US Forces Japan to become a joint force headquarters",
            "https://news.example.org/usfj-jfhq",
            "The United States will upgrade US Forces Japan into a joint force headquarters, "
            "the defense secretary said after talks in Tokyo.")  # fmt: skip
DPRK = Item("North Korea fires ballistic missile into the sea",
            "https://news.example.org/dprk-missile",
            "North Korea launched a ballistic missile on Thursday that fell outside the "
            "exclusive economic zone, a coast guard spokesman said.",
            published=datetime.now(UTC) - timedelta(days=30))  # far from USFJ: its own story
QUIET = Item("Agency annual report published", "https://agency.example.org/report",
             "The agency published its annual report on fisheries and forestry.")  # fmt: skip


@pytest.fixture
def hooks() -> Iterator[dict[str, WebhookReceiver]]:
    with (WebhookReceiver() as ok, WebhookReceiver(script=[503] * 50) as flaky,
          WebhookReceiver(script=[400] * 50) as broken):  # fmt: skip
        yield {"chat": ok, "flaky": flaky, "broken": broken}


def _feed(server: HTTPServer, path: str, items: list[Item]) -> None:
    server.routes[path] = Response(200, rss(items), {"Content-Type": "application/rss+xml"})


@pytest.fixture
def store(tmp_path: Path, feed_server: HTTPServer,
          hooks: dict[str, WebhookReceiver]) -> Path:  # fmt: skip
    """A store after three days: Healthy got two stories, Quiet nothing new since day one,
    Broken always fails, Gone answered 410; alerts sent, retrying, dead and pending."""
    _feed(feed_server, "/healthy", [OLD])
    _feed(feed_server, "/quiet", [QUIET])
    feed_server.routes["/broken"] = Response(500, b"oops")
    feed_server.routes["/gone"] = Response(410, b"gone")
    path = write_config(
        tmp_path / "monitor.yaml",
        feeds=[{"name": "Healthy", "url": feed_server.url("/healthy")},
               {"name": "Quiet", "url": feed_server.url("/quiet"), "silent_after": "1d"},
               {"name": "Broken", "url": feed_server.url("/broken")},
               {"name": "Gone", "url": feed_server.url("/gone")}],
        notifiers={name: f"json://127.0.0.1:{hook.port}/hook" for name, hook in hooks.items()},
        watchlists=[{"name": "alliance", "query": '"US Forces Japan" OR "North Korea"',
                     "notify": ["chat", "flaky", "broken"]},
                    {"name": "fisheries", "query": "fisheries"}],
    )  # fmt: skip
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack, clock=clock)
        rt.pipeline.run_cycle(all_enabled=True)  # day one: the backlog, stored, not alerted
        clock.advance(days=3, hours=-2)
        _feed(feed_server, "/healthy", [OLD, USFJ])
        rt.pipeline.run_cycle(all_enabled=True)
        sent = rt.deliverer.deliver_due()
        assert (sent.sent, sent.retrying, sent.dead) == (1, 1, 1)
        clock.advance(hours=1)
        _feed(feed_server, "/healthy", [OLD, USFJ, DPRK])
        rt.pipeline.run_cycle(all_enabled=True)  # queued, not delivered yet: pending
    return path


def _status_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(path)]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_status_json_reports_each_source_state(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _status_json(store, capsys)
    sources = {s["name"]: s for s in status["sources"]}
    assert {n: s["state"] for n, s in sources.items()} == {
        "Healthy": "ok", "Quiet": "silent", "Broken": "failing", "Gone": "disabled"}  # fmt: skip
    for s in sources.values():  # the DESIGN.md shape
        assert {"name", "url", "state", "last_success", "last_error",
                "consecutive_failures"} <= set(s)  # fmt: skip
    assert sources["Healthy"]["entries_24h"] == 2 and sources["Healthy"]["last_error"] is None
    assert sources["Quiet"]["entries_24h"] == 0 and sources["Quiet"]["last_success"]
    assert sources["Broken"]["consecutive_failures"] == 3
    assert "500" in sources["Broken"]["last_error"] and sources["Broken"]["last_success"] is None
    assert "410" in sources["Gone"]["disabled_reason"] and sources["Gone"]["next_poll"] is None


def test_status_json_counts_watchlists_and_outbox(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _status_json(store, capsys)
    lists = {w["name"]: w for w in status["watchlists"]}
    assert lists["alliance"] == {"name": "alliance", "matches_24h": 2, "alerts_24h": 1,
                                 "matches_7d": 2, "alerts_7d": 1}  # fmt: skip
    assert lists["fisheries"]["matches_24h"] == 0  # its match was backlog three days ago
    assert lists["fisheries"]["matches_7d"] == 1
    outbox = status["outbox"]
    assert (outbox["pending"], outbox["retrying"], outbox["dead"]) == (3, 1, 1)
    [dead] = outbox["dead_letters"]
    assert dead["watchlist"] == "alliance" and dead["target"] == "broken"
    assert "400" in dead["reason"]


def _status_text(path: Path, columns: int, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()
    assert main(["status", "--config", str(path)]) == 0
    return capsys.readouterr().out


def test_status_table_is_readable(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _status_text(store, 220, capsys, monkeypatch)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines()
            if line.count("│") > 3}  # fmt: skip
    assert "ok" in rows["Healthy"] and "silent" in rows["Quiet"]
    assert "failing" in rows["Broken"] and "(3×)" in rows["Broken"] and "500" in rows["Broken"]
    assert "disabled" in rows["Gone"] and "410 Gone" in rows["Gone"]
    assert "never" in rows["Broken"]  # no success yet
    assert "Outbox: 3 pending, 1 retrying, 1 dead" in out
    assert "broken" in rows["alliance"] and "400" in rows["alliance"]  # the dead letter
    assert "Articles stored:" in out


def test_status_fits_a_narrow_terminal_and_gives_whole_errors_below(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _status_text(store, 80, capsys, monkeypatch)
    assert max(map(len, out.splitlines())) <= 80
    table, _, errors = out.partition("Source errors")
    # In the table a failing source's error is cut short; below it, whole, by its name.
    lines = [line.strip() for line in errors.splitlines() if line.strip()]
    assert lines[lines.index("Broken") + 1] == (
        f"(3×) HTTP 500 Internal Server Error ({_url(store, 'Broken')})")
    assert lines[lines.index("Gone") + 1].startswith("410 Gone at ")
    assert "Healthy" not in lines and "Quiet" not in lines
    assert "(3×) HTTP 500" in table and "…" in table
    assert "/broken)" not in table


def test_status_prints_brackets_in_errors_as_they_are() -> None:
    # A dead letter's reason quotes the server's answer, and rich would read "[/x]" in it
    # as a closing tag (and fail); a source's error and a name may hold brackets too.
    from rich.console import Console

    now = datetime(2026, 1, 10, tzinfo=UTC)
    source = {"name": "Feed [a]", "state": "failing", "last_success": None,
              "entries_24h": 0, "next_poll": None, "consecutive_failures": 1,
              "last_error": "FetchError: Feed [a]: bad [/b] answer", "disabled_reason": None}
    said = 'HTTP 400 Bad Request: {"error": "[/channel] not found"}'
    status = {"at": now.isoformat(), "sources": [source], "articles": 0,
              "watchlists": [{"name": "w[bold]", "matches_24h": 0, "alerts_24h": 0,
                              "matches_7d": 0, "alerts_7d": 0}],
              "outbox": {"pending": 0, "retrying": 0, "dead": 1, "dead_letters": [{
                  "watchlist": "w[bold]", "target": "chat",
                  "reason": said}]}}  # fmt: skip
    out = io.StringIO()
    print_status(status, Console(file=out, width=200))
    text = out.getvalue()
    assert "bad [/b] answer" in text and "Feed [a]" in text
    assert '"[/channel] not found"' in text and text.count("w[bold]") == 2


def _url(path: Path, name: str) -> str:
    return next(f.url for f in load_config(path).feeds if f.name == name)


def test_source_removed_from_the_config_is_disabled(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.write_text(store.read_text().replace("- name: Quiet", "- name: Renamed"))
    with ExitStack() as stack:
        open_runtime(load_config(store), stack)
    sources = {s["name"]: s for s in _status_json(store, capsys)["sources"]}
    assert sources["Quiet"]["state"] == "disabled"
    assert sources["Quiet"]["disabled_reason"] == "not in the config"
    assert sources["Renamed"]["state"] == "ok"


def test_alerts_lists_what_was_sent(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["alerts", "--since", "7d", "--config", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "alliance -> chat" in out[0] and USFJ.title in out[0]
    assert out[-1].startswith("1 alerts sent since")


def _row(**kw: Any) -> dict[str, Any]:
    row = {"disabled_reason": None, "enabled": True, "consecutive_failures": 0,
           "last_new_entry": None, "first_success": None}  # fmt: skip
    return {**row, **kw}


NOW = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("row", "interval", "silent_after", "state"), [
    (_row(), 900, None, "ok"),  # never polled yet
    (_row(last_new_entry=NOW - timedelta(days=6)), 900, None, "ok"),
    (_row(last_new_entry=NOW - SILENT_AFTER - timedelta(hours=1)), 900, None, "silent"),
    (_row(last_new_entry=NOW - timedelta(days=8)), 86400, None, "ok"),  # 10 daily polls
    (_row(last_new_entry=NOW - timedelta(days=4)), 900, 3 * 86400, "silent"),
    (_row(first_success=NOW - timedelta(days=2)), 900, 3 * 86400, "ok"),
    (_row(consecutive_failures=1, last_new_entry=NOW - timedelta(days=30)), 900, None,
     "failing"),
    (_row(disabled_reason="410 Gone", consecutive_failures=1), 900, None, "disabled"),
    (_row(enabled=False), 900, None, "disabled"),
])  # fmt: skip
def test_source_state(row: dict[str, Any], interval: float, silent_after: float | None,
                      state: str) -> None:  # fmt: skip
    assert source_state(row, NOW, interval, silent_after) == state
