"""The daemon end to end: real feed server, real SMTP server, real webhook receiver."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from storage import seed_files
from tests.conftest import Clock, write_config
from tests.feeds import Item, atom, rss
from tests.servers import HTTPServer, Request, Response, WebhookReceiver
from tests.smtp import SMTPServer

QUERY = '"US Forces Japan" AND ("joint force headquarters" OR command)'

OLD = [
    Item("Pentagon budget hearing scheduled", "https://example.org/old-1",
         "Lawmakers will question officials about the budget next week."),
]
USFJ = Item(
    "US to upgrade US Forces Japan into joint force headquarters",
    "https://news.example.org/2024/usfj-upgrade?utm_source=rss",
    "The United States will upgrade US Forces Japan into a joint force headquarters, "
    "Defense Secretary Lloyd Austin said after talks in Tokyo with his Japanese counterpart.",
)
OTHER = Item("Farm output rises in Iowa", "https://example.org/farm",
             "Corn and soybean harvests rose this year across the state.")
ATOM_NEW = Item(
    "Navy commissions new destroyer in Virginia",
    "https://atom.example.org/destroyer",
    "The ship joins the Atlantic fleet after sea trials off Norfolk.",
)


def _serve(server: HTTPServer, path: str, body: bytes, ctype: str) -> None:
    etag = f'"{hash(body)}"'

    def handler(req: Request) -> Response:
        if req.headers.get("If-None-Match") == etag:
            return Response(304, b"", {"ETag": etag})
        return Response(200, body, {"Content-Type": ctype, "ETag": etag})

    server.routes[path] = handler


def _config(tmp_path: Path, feed_server: HTTPServer, smtp: SMTPServer,
            webhook: WebhookReceiver, **extra: Any) -> Path:  # fmt: skip
    return write_config(
        tmp_path / "monitor.yaml",
        feeds=[{"name": "Wire RSS", "url": feed_server.url("/rss")},
               {"name": "Agency Atom", "url": feed_server.url("/atom")}],
        notifiers={"desk": smtp.apprise_url(to="desk@example.org"),
                   "chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": QUERY, "notify": ["desk", "chat"]}],
        **extra,
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, feed_server: HTTPServer, smtp: SMTPServer,
          webhook: WebhookReceiver) -> Path:  # fmt: skip
    _serve(feed_server, "/rss", rss(OLD), "application/rss+xml")
    _serve(feed_server, "/atom", atom([]), "application/atom+xml")
    path = _config(tmp_path, feed_server, smtp, webhook)
    assert main(["run", "--once", "--config", str(path)]) == 0  # backlog: stored, not alerted
    assert smtp.messages == [] and webhook.received == []
    return path


def test_new_matching_item_alerts_by_email_and_chat(
    setup: Path, feed_server: HTTPServer, smtp: SMTPServer, webhook: WebhookReceiver
) -> None:
    _serve(feed_server, "/rss", rss([*OLD, USFJ, OTHER]), "application/rss+xml")
    _serve(feed_server, "/atom", atom([ATOM_NEW]), "application/atom+xml")

    assert main(["run", "--once", "--config", str(setup)]) == 0

    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["Subject"] == USFJ.title
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    link = "https://news.example.org/2024/usfj-upgrade"
    assert link in plain.get_content() and link in html.get_content()
    assert "usfj" in html.get_content() and "Wire RSS" in html.get_content()
    assert len(webhook.received) == 1
    payload = str(webhook.received[0])
    assert "joint force headquarters" in payload and link in payload


def test_second_cycle_sends_nothing_again(
    setup: Path, feed_server: HTTPServer, smtp: SMTPServer, webhook: WebhookReceiver
) -> None:
    _serve(feed_server, "/rss", rss([*OLD, USFJ]), "application/rss+xml")
    assert main(["run", "--once", "--config", str(setup)]) == 0
    assert main(["run", "--once", "--config", str(setup)]) == 0
    assert len(smtp.messages) == 1 and len(webhook.received) == 1


def test_not_modified_feed_is_not_parsed(setup: Path, feed_server: HTTPServer) -> None:
    config = load_config(setup)
    with ExitStack() as stack:
        stats = open_runtime(config, stack).pipeline.run_cycle(all_enabled=True)
    assert stats.sources == 2 and stats.not_modified == 2 and stats.entries == 0
    conditional = [r for r in feed_server.requests_to("/rss") if "If-None-Match" in r.headers]
    assert conditional, "the second poll must send the stored ETag"


def test_item_repeating_a_seed_is_not_alerted(
    setup: Path, feed_server: HTTPServer, smtp: SMTPServer, webhook: WebhookReceiver
) -> None:
    _name, text = seed_files()[1]
    copy = Item("U.S. to restructure US Forces Japan command",
                "https://syndicator.example.net/usfj-copy", text)
    _serve(feed_server, "/rss", rss([*OLD, copy]), "application/rss+xml")
    assert main(["run", "--once", "--config", str(setup)]) == 0
    assert smtp.messages == [] and webhook.received == []
    with ExitStack() as stack:
        rt = open_runtime(load_config(setup), stack)
        stored = [a for a in rt.repo.iter_articles() if a["source"] == "Wire RSS"
                  and "restructure" in a["title"]]  # fmt: skip
        assert len(stored) == 1
        article = rt.repo.get_article(stored[0]["id"])
        assert article["decision"] in ("duplicate", "rereport")
        seeds = [a for a in rt.repo.iter_articles() if a["source"] == "seed"]
        assert article["story_id"] == seeds[0]["story_id"]


def test_malformed_feed_beside_good_one(
    setup: Path, feed_server: HTTPServer, smtp: SMTPServer
) -> None:
    _serve(feed_server, "/rss", rss([*OLD, USFJ]), "application/rss+xml")
    cut = b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>Agen"
    feed_server.routes["/atom"] = Response(200, cut, {"Content-Type": "application/atom+xml"})
    assert main(["run", "--once", "--config", str(setup)]) == 0
    assert len(smtp.messages) == 1
    with ExitStack() as stack:
        sources = {s["name"]: s for s in open_runtime(load_config(setup), stack).repo.get_sources()}
    assert sources["Agency Atom"]["consecutive_failures"] == 1
    assert "Agency Atom" in sources["Agency Atom"]["last_error"]
    assert sources["Wire RSS"]["consecutive_failures"] == 0


def test_target_down_for_one_cycle_gets_the_alert_once(
    setup: Path, feed_server: HTTPServer, smtp: SMTPServer, webhook: WebhookReceiver
) -> None:
    clock = Clock()
    _serve(feed_server, "/rss", rss([*OLD, USFJ]), "application/rss+xml")
    smtp.down()
    with ExitStack() as stack:
        rt = open_runtime(load_config(setup), stack, clock=clock)
        rt.pipeline.run_cycle(all_enabled=True)
        first = rt.deliverer.deliver_due()
        assert first.sent == 1 and first.retrying == 1  # chat went, email is retried
        smtp.up()
        assert rt.deliverer.deliver_due().sent == 0  # not due before its backoff
        clock.advance(seconds=31)
        assert rt.deliverer.deliver_due().sent == 1
        clock.advance(hours=2)
        assert rt.deliverer.deliver_due().sent == 0
    assert len(smtp.messages) == 1 and len(webhook.received) == 1


def test_backlog_alerts_when_configured(
    tmp_path: Path, feed_server: HTTPServer, smtp: SMTPServer, webhook: WebhookReceiver
) -> None:
    _serve(feed_server, "/rss", rss([USFJ]), "application/rss+xml")
    _serve(feed_server, "/atom", atom([]), "application/atom+xml")
    path = _config(tmp_path, feed_server, smtp, webhook, alert_backlog=True)
    assert main(["run", "--once", "--config", str(path)]) == 0
    assert len(smtp.messages) == 1


def test_seeds_form_one_story_on_first_start(tmp_path: Path) -> None:
    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[])
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack)
        seeds = [a for a in rt.repo.iter_articles() if a["source"] == "seed"]
        assert len(seeds) == 2
        assert seeds[0]["story_id"] == seeds[1]["story_id"]
        assert all(a["at"].date().isoformat() == "2024-07-28" for a in seeds)
    with ExitStack() as stack:  # a restart does not seed twice
        rt = open_runtime(load_config(path), stack)
        assert rt.repo.count_articles() == 2


def test_console_alerts_without_notifiers(
    tmp_path: Path, feed_server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve(feed_server, "/rss", rss([USFJ]), "application/rss+xml")
    path = write_config(tmp_path / "monitor.yaml", alert_backlog=True,
                        feeds=[{"name": "Wire RSS", "url": feed_server.url("/rss")}],
                        watchlists=[{"name": "usfj", "query": QUERY}])  # fmt: skip
    assert main(["run", "--once", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "printed to the console" in err
    assert USFJ.title in out


def test_retry_delay_bounds() -> None:
    from monitor.deliver import retry_delay

    assert 24 <= retry_delay(1) <= 30
    assert all(retry_delay(n) <= 3600 for n in range(1, 40))
    assert retry_delay(3) > retry_delay(1)
    assert timedelta(seconds=retry_delay(20)) >= timedelta(minutes=48)
