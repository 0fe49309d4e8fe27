"""Sources through the whole pipeline: hostile servers, pages with full text, health notices."""

from __future__ import annotations

import gzip
import time
from contextlib import ExitStack
from pathlib import Path

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from tests.conftest import Clock, write_config
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Request, Response, WebhookReceiver

RSS = {"Content-Type": "application/rss+xml"}
GOOD = Item("US Forces Japan names joint force headquarters commander",
            "https://news.example.org/commander", "US Forces Japan named the first commander "
            "of its joint force headquarters in Tokyo.")  # fmt: skip


def _hang(req: Request) -> None:
    time.sleep(6)
    return None


def _drip(req: Request) -> None:
    h = req.handler  # type: ignore[attr-defined]
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    try:
        for _ in range(8):
            h.wfile.write(b"<")
            h.wfile.flush()
            time.sleep(1)
    except OSError:
        pass
    return None


def test_hostile_sources_fail_alone_and_the_good_feed_alerts(
    tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    bomb = gzip.compress(b"<rss>" + b" " * 50_000_000)
    feed_server.routes.update({
        "/good": Response(200, rss([GOOD]), RSS),
        "/hang": _hang, "/drip": _drip,
        "/bomb": Response(200, bomb, {**RSS, "Content-Encoding": "gzip"}),
        "/gone": Response(410, b"gone"),
        "/login": Response(200, b"<html><body><form>Sign in</form></body></html>",
                           {"Content-Type": "text/html"}),
        "/loop": Response(302, b"", {"Location": "/loop"}),
        "/busy": Response(429, b"", {"Retry-After": "120"}),
    })  # fmt: skip
    names = ["good", "hang", "drip", "bomb", "gone", "login", "loop", "busy"]
    path = write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        poll={"timeout": "3s", "max_bytes": "1MB"},
        feeds=[{"name": n, "url": feed_server.url(f"/{n}")} for n in names],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    )  # fmt: skip
    assert main(["run", "--once", "--config", str(path)]) == 0
    assert len(webhook.received) == 1
    with ExitStack() as stack:
        rows = {r["name"]: r for r in open_runtime(load_config(path), stack).repo.get_sources()}
    assert rows["good"]["consecutive_failures"] == 0
    for name in names[1:]:
        assert rows[name]["consecutive_failures"] == 1, name
        assert rows[name]["last_error"], name
    assert rows["gone"]["disabled_reason"]
    assert rows["busy"]["retry_after_until"] is not None
    assert "not a feed" in rows["login"]["last_error"].lower() or "html" in rows["login"][
        "last_error"].lower()


ARTICLE_PAGE = b"""<html><head><title>Press</title></head><body>
<nav>Home | About | Contact</nav>
<article><h1>Minister meets commander</h1>
<p>The Minister of Defense met the commander of US Forces Japan on Tuesday to discuss the
joint force headquarters and closer coordination with the Joint Operations Command.</p>
<p>Both sides agreed to hold regular consultations in Tokyo.</p></article>
<footer>Copyright</footer></body></html>"""


def test_page_source_with_full_text_matches_the_article_body(
    tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    listing = (b"<html><body><ul class='news'>"
               b"<li><a href='/press/1.html'>Minister meets commander</a></li>"
               b"<li><a href='/press/2.html'>Award ceremony held</a></li></ul></body></html>")
    feed_server.routes.update({
        "/press/": Response(200, listing, {"Content-Type": "text/html"}),
        "/press/1.html": Response(200, ARTICLE_PAGE, {"Content-Type": "text/html"}),
        "/press/2.html": Response(200, b"<html><body><p>An award.</p></body></html>",
                                  {"Content-Type": "text/html"}),
    })  # fmt: skip
    path = write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        feeds=[{"name": "MOD", "url": feed_server.url("/press/"), "type": "page",
                "select": "ul.news li a", "full_text": True}],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan" AND "joint force headquarters"',
                     "notify": ["chat"]}],
    )  # fmt: skip
    assert main(["run", "--once", "--config", str(path)]) == 0
    assert len(webhook.received) == 1
    assert "Minister meets commander" in str(webhook.received[0])
    with ExitStack() as stack:
        repo = open_runtime(load_config(path), stack).repo
        bodies = {a["title"]: a["body"] for a in repo.iter_articles() if a["source"] == "MOD"}
    assert "regular consultations" in bodies["Minister meets commander"]
    assert "Copyright" not in bodies["Minister meets commander"]


def test_failing_source_is_announced_once_and_its_recovery_too(
    tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    state = {"status": 500}

    def flaky(req: Request) -> Response:
        if state["status"] != 200:
            return Response(state["status"], b"down")
        return Response(200, rss([GOOD]), RSS)

    feed_server.routes["/flaky"] = flaky
    feed_server.routes["/gone"] = Response(410, b"")
    path = write_config(
        tmp_path / "monitor.yaml", on_source_failure="ops", on_source_failure_after=3,
        feeds=[{"name": "flaky", "url": feed_server.url("/flaky")},
               {"name": "gone", "url": feed_server.url("/gone")}],
        notifiers={"ops": f"json://127.0.0.1:{webhook.port}/hook"}, watchlists=[],
    )  # fmt: skip
    clock = Clock()
    config = load_config(path)

    def cycle() -> list[str]:
        with ExitStack() as stack:
            rt = open_runtime(config, stack, clock=clock)
            rt.pipeline.run_cycle(all_enabled=True)
            rt.deliverer.deliver_due()
        clock.advance(hours=1)
        return [str(p.get("title")) for p in webhook.received]

    assert cycle() == ["Source gone is disabled"]
    assert cycle() == ["Source gone is disabled"]  # two failures: not yet
    assert cycle()[1:] == ["Source flaky is failing"]
    assert len(cycle()) == 2  # still failing: announced once only
    state["status"] = 200
    assert cycle()[2:] == ["Source flaky recovered"]
    assert len(cycle()) == 3
