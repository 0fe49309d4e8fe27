"""Story dedupe through the daemon: one alert per event across outlets, follow-ups named;
``monitor explain``, ``story merge/split`` and ``check`` on a store the pipeline filled."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from tests.conftest import write_config
from tests.feeds import Item, atom, rss
from tests.servers import HTTPServer, Response, WebhookReceiver

DAY = datetime(2025, 7, 11, 9, 0, tzinfo=UTC)
LATER = datetime(2025, 7, 15, 9, 0, tzinfo=UTC)

EVENT = [
    Item("Japan and Philippines sign reciprocal access agreement in Manila",
         "https://wire.example.org/raa", "Japanese Foreign Minister Yoko Kamikawa and Defense "
         "Minister Minoru Kihara signed a Reciprocal Access Agreement with Philippine Defense "
         "Secretary Gilberto Teodoro in Manila on Monday, allowing troops of each country to "
         "train in the other. President Ferdinand Marcos Jr. witnessed the signing at the "
         "Malacanang palace. The pact is Japan's first such deal in Asia and follows similar "
         "agreements with Australia and Britain, amid China's growing assertiveness in the "
         "South China Sea.", published=DAY),
    Item("Tokyo, Manila seal troop access pact as China tensions rise",
         "https://daily.example.com/news/tokyo-manila-pact", "The Philippines and Japan on "
         "Monday signed a defense pact in Manila that lets their forces deploy for joint "
         "exercises on each other's soil. Kamikawa and Kihara signed for Tokyo, Teodoro for "
         "Manila, with Marcos looking on at Malacanang. Officials said the Reciprocal Access "
         "Agreement must still be ratified by Japan's parliament. Beijing has clashed with "
         "Philippine vessels near Second Thomas Shoal in the South China Sea.", published=DAY),
    Item("Philippines, Japan ink Reciprocal Access Agreement",
         "https://asia.example.net/2025/07/raa-signed", "Manila and Tokyo signed the "
         "Reciprocal Access Agreement on Monday at Malacanang, in the presence of President "
         "Marcos. Defense Secretary Teodoro and Japanese ministers Kamikawa and Kihara put "
         "their names to the accord, which opens the way for larger joint drills between "
         "the Philippine military and the Japan Self-Defense Forces in the South China Sea "
         "region.", published=DAY),
]
FOLLOW_UP = Item(
    "Japan cabinet approves bill to ratify Philippines troop pact",
    "https://wire.example.org/raa-bill", "Prime Minister Shigeru Ishiba's cabinet on Tuesday "
    "approved a bill to ratify the Reciprocal Access Agreement with the Philippines and sent "
    "it to the Diet. Chief Cabinet Secretary Yoshimasa Hayashi said the upper house would "
    "vote in October. In Manila, Teodoro welcomed the step and said the Philippine Senate "
    "would take up the pact next month.", published=LATER)
QUERY = '"Reciprocal Access Agreement" OR (Philippines AND Japan AND pact)'


@pytest.fixture
def outlets(tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver) -> Path:
    for n, item in enumerate(EVENT):
        feed_server.routes[f"/o{n}"] = Response(200, rss([item]), {"Content-Type": "text/xml"})
    return write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        feeds=[{"name": f"Outlet {n}", "url": feed_server.url(f"/o{n}")} for n in range(3)],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "raa", "query": QUERY, "notify": ["chat"]}],
    )  # fmt: skip


def _articles(config: Path) -> list[dict]:  # type: ignore[type-arg]
    with ExitStack() as stack:
        repo = open_runtime(load_config(config), stack).repo
        return [repo.get_article(a["id"]) for a in repo.iter_articles() if a["source"] != "seed"]


def _follow_up_alert(config: Path, webhook: WebhookReceiver) -> str:
    """Run the next cycle, which carries the follow-up: its alert, naming what it follows."""
    assert main(["run", "--once", "--config", str(config)]) == 0
    assert len(webhook.received) == 2
    follow = str(webhook.received[1])
    assert "cabinet approves" in follow and "Follows" in follow
    return follow


def test_three_outlets_one_alert_then_a_follow_up_names_it(
    outlets: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    assert main(["run", "--once", "--config", str(outlets)]) == 0
    assert len(webhook.received) == 1
    stored = _articles(outlets)
    assert len(stored) == 3 and len({a["story_id"] for a in stored}) == 1
    assert sorted(a["decision"] for a in stored) == ["new", "rereport", "rereport"]

    feed_server.routes["/o0"] = Response(200, atom([EVENT[0], FOLLOW_UP]),
                                         {"Content-Type": "application/atom+xml"})  # fmt: skip
    assert "reciprocal access" in _follow_up_alert(outlets, webhook).lower()


def test_a_follow_up_months_later_still_names_the_story_it_follows(
    outlets: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    assert main(["run", "--once", "--config", str(outlets)]) == 0
    assert len(webhook.received) == 1
    # Ratified ten weeks on: far outside the seven days in which re-reports are looked for.
    months_later = replace(FOLLOW_UP, published=DAY + timedelta(days=70))
    feed_server.routes["/o1"] = Response(200, rss([EVENT[1], months_later]),
                                         {"Content-Type": "text/xml"})  # fmt: skip
    _follow_up_alert(outlets, webhook)
    stored = {a["title"]: a for a in _articles(outlets)}
    follow_up = stored[FOLLOW_UP.title]
    assert follow_up["decision"] == "new" and "reported 70 days earlier" in follow_up["reason"]
    assert follow_up["story_id"] != stored[EVENT[0].title]["story_id"]


def test_explain_merge_split_and_check(
    outlets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--once", "--config", str(outlets)]) == 0
    stored = sorted(_articles(outlets), key=lambda a: a["id"])
    capsys.readouterr()
    assert main(["explain", str(stored[1]["id"]), "--config", str(outlets)]) == 0
    out = capsys.readouterr().out
    assert "decision: rereport (level 3" in out and "reason:" in out and "Outlet" in out

    new_story = stored[2]["story_id"]
    assert main(["story", "split", str(stored[2]["id"]), "--config", str(outlets)]) == 0
    after = {a["id"]: a["story_id"] for a in _articles(outlets)}
    assert after[stored[2]["id"]] != new_story
    assert main(["story", "merge", str(new_story), str(after[stored[2]["id"]]),
                 "--config", str(outlets)]) == 0  # fmt: skip
    assert len({a["story_id"] for a in _articles(outlets)}) == 1

    capsys.readouterr()
    assert main(["check", "raa", "--since", "3650d", "--config", str(outlets)]) == 0
    out = capsys.readouterr().out
    assert "3 articles matched" in out and "Malacanang" not in out.split("\n")[0]
    assert main(["check", "--query", "Teodoro AND -Marcos", "--since", "3650d",
                 "--config", str(outlets)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("query: ") and "0 articles matched" in out
    assert main(["check", "--query", "title:(Tokyo OR Manila)", "--since", "3650d",
                 "--config", str(outlets)]) == 0  # fmt: skip
    assert "2 articles matched" in capsys.readouterr().out  # both titles name Manila
    assert main(["check", "--query", "(Teodoro", "--config", str(outlets)]) == 2
    assert "column" in capsys.readouterr().err


def test_one_minister_in_two_events_of_a_day_alerts_twice(
    tmp_path: Path, feed_server: HTTPServer, webhook: WebhookReceiver
) -> None:
    # Two outlets report a visit to a shipyard; a third, a Senate hearing of the same day.
    # All three name the minister and little else in common but his name.
    from tests.test_dedupe import HEARING, VISIT

    items = [Item(a.title, f"https://o{n}.example.org/news/{n}", a.body, published=a.when)
             for n, a in enumerate([*VISIT, HEARING])]  # fmt: skip
    for n, item in enumerate(items):
        feed_server.routes[f"/m{n}"] = Response(200, rss([item]), {"Content-Type": "text/xml"})
    config = write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        feeds=[{"name": f"Outlet {n}", "url": feed_server.url(f"/m{n}")} for n in range(3)],
        notifiers={"chat": f"json://127.0.0.1:{webhook.port}/hook"},
        watchlists=[{"name": "secdef", "query": "Hegseth", "notify": ["chat"]}],
    )  # fmt: skip
    assert main(["run", "--once", "--config", str(config)]) == 0
    assert len(webhook.received) == 2
    alerts = " ".join(map(str, webhook.received))
    assert "Yokosuka" in alerts and "Signal" in alerts
    stored = {a["title"]: a for a in _articles(config)}
    visit, again, hearing = (stored[i.title] for i in items)
    assert visit["story_id"] == again["story_id"] != hearing["story_id"]
    assert hearing["decision"] == "new" and "words besides names" in hearing["reason"]
