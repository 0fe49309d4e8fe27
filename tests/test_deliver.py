"""Delivery from the outbox: retries, dead letters, digests, rate limits, quiet hours.

Articles enter through the real pipeline (``Pipeline.ingest``: dedupe, match, store with
outbox rows); alerts leave through real notifiers to real servers on 127.0.0.1.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from monitor.app import Runtime, open_runtime
from monitor.config import load_config
from monitor.types import Article
from tests.conftest import Clock, write_config
from tests.servers import WebhookReceiver
from tests.smtp import SMTPServer

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 10:30 in Tokyo


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(9)).capitalize()


def article(n: int, at: datetime = T0, *, title: str | None = None) -> Article:
    """A distinct event mentioning the watched term; its other words are its own, so story
    dedupe keeps every such article a story of its own (delivery is what is tested here)."""
    rng = random.Random(n)
    words = [_word(rng) for _ in range(40)]
    body = f"Drone report {n}: " + " ".join(words) + f". Figure {rng.randint(1000, 9999)}."
    return Article(source=f"outlet-{n % 3}", title=title or f"{words[0]} drone sighting #{n}",
                   body=body, url=f"https://news.example.org/{n}", link=None, guid=None,
                   published=at, fetched=at)  # fmt: skip


@pytest.fixture
def hooks() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    with WebhookReceiver() as a, WebhookReceiver() as b:
        yield a, b


def runtime(stack: ExitStack, tmp_path: Path, clock: Clock, notifiers: dict[str, Any],
            watch: dict[str, Any] | None = None, **extra: Any) -> Runtime:  # fmt: skip
    wl = {"name": "drones", "query": "drone", "notify": list(notifiers), **(watch or {})}
    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[wl],
                        notifiers=notifiers, **extra)  # fmt: skip
    return open_runtime(load_config(path), stack, clock=clock)


def hook_url(hook: WebhookReceiver) -> str:
    return f"json://127.0.0.1:{hook.port}/hook"


def test_webhook_500_twice_then_200_is_delivered_once_after_backoff(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    hook.script = [500, 500]
    clock = Clock(T0)
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"chat": hook_url(hook)})
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        assert rt.deliverer.deliver_due().retrying == 1
        assert rt.deliverer.deliver_due().sent == 0  # waits for its backoff
        clock.advance(seconds=30)
        assert rt.deliverer.deliver_due().retrying == 1
        clock.advance(seconds=60)
        assert rt.deliverer.deliver_due().sent == 1
        clock.advance(hours=3)
        assert rt.deliverer.deliver_due().sent == 0
    assert len(hook.received) == 1


def test_webhook_400_is_a_dead_letter_at_once_and_others_unaffected(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    bad, good = hooks
    bad.script = [400] * 5
    clock = Clock(T0)
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"bad": hook_url(bad), "good": hook_url(good)},
                     on_failure="good")  # fmt: skip
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        stats = rt.deliverer.deliver_due()
        assert (stats.sent, stats.dead) == (1, 1)
        summary = rt.repo.get_outbox_summary()
        assert summary["dead"] == 1 and summary["dead_letters"][0]["target"] == "bad"
        assert "400" in summary["dead_letters"][0]["reason"]
        bad.script = []
        assert rt.repo.requeue_dead(clock()) == 1  # `monitor outbox retry`
        assert rt.deliverer.deliver_due().sent == 1
    assert len(bad.received) == 1
    texts = [str(p) for p in good.received]
    assert len(texts) == 2 and any("failed" in t and "bad" in t for t in texts)


def test_smtp_down_for_a_while_then_up_delivers_once(tmp_path: Path, smtp: SMTPServer) -> None:
    clock = Clock(T0)
    smtp.down()
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"desk": smtp.apprise_url(to="desk@example.org")})
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        for _ in range(3):
            assert rt.deliverer.deliver_due().retrying == 1
            clock.advance(minutes=10)
        smtp.up()
        assert rt.deliverer.deliver_due().sent == 1
        clock.advance(hours=2)
        assert rt.deliverer.deliver_due().sent == 0
    assert len(smtp.messages) == 1


def test_hourly_digest_assembles_several_stories(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    clock = Clock(T0)
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"chat": hook_url(hook)}, {"digest": "hourly"})
        for n in range(1, 4):
            rt.pipeline.ingest(article(n), backlog=False, now=clock())
        assert rt.deliverer.deliver_due().sent == 0  # held for the digest
        clock.advance(minutes=30)  # 02:00 UTC: the next full hour
        stats = rt.deliverer.deliver_due()
        assert stats.digests == 1 and stats.sent == 3
    assert len(hook.received) == 1
    payload = str(hook.received[0])
    assert payload.count("drone sighting") == 3 and "3 stories" in payload


def test_digest_missed_while_down_goes_out_at_next_start(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    clock = Clock(T0)
    watch = {"digest": "daily 08:00 Asia/Tokyo"}
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"chat": hook_url(hook)}, watch)
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
    clock.advance(days=2)  # the daemon was down at 08:00 Tokyo time, twice
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock, {"chat": hook_url(hook)}, watch)
        assert rt.deliverer.deliver_due().digests == 1
        assert rt.deliverer.deliver_due().digests == 0
    assert len(hook.received) == 1


def test_storm_rolls_past_max_per_hour_into_a_digest(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    clock = Clock(T0)
    with ExitStack() as stack:
        rt = runtime(stack, tmp_path, clock,
                     {"chat": {"url": hook_url(hook), "max_per_hour": 10}})  # fmt: skip
        for n in range(200):
            rt.pipeline.ingest(article(n), backlog=False, now=clock())
        first = rt.deliverer.deliver_due()
        assert first.sent == 10 and first.held == 190
        clock.advance(minutes=31)
        second = rt.deliverer.deliver_due()
        assert second.digests == 1 and second.sent == 190
    assert len(hook.received) == 11
    assert "190 stories" in str(hook.received[-1])


def test_quiet_hours_hold_alerts_and_urgent_passes(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    night = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo
    clock = Clock(night)
    target = {"chat": {"url": hook_url(hook), "quiet_hours": "22:00-07:00 Asia/Tokyo"}}
    path = write_config(tmp_path / "monitor.yaml", feeds=[], notifiers=target, watchlists=[
        {"name": "drones", "query": "drone AND NOT urgent", "notify": ["chat"]},
        {"name": "flash", "query": "drone AND urgent", "notify": ["chat"], "urgent": True}])
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack, clock=clock)
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        rt.pipeline.ingest(article(2, title="URGENT drone over base"), backlog=False, now=clock())
        stats = rt.deliverer.deliver_due()
        assert (stats.sent, stats.held) == (1, 1)
        clock.advance(hours=7, minutes=59)  # 06:59 Tokyo
        assert rt.deliverer.deliver_due().sent == 0
        clock.advance(minutes=1)
        assert rt.deliverer.deliver_due().sent == 1
    assert len(hook.received) == 2


def test_no_secret_in_logs_or_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, token = "Pa55-w0rd-XYZZY", "tok-QWERTY-123"
    monkeypatch.setenv("SMTP_PASSWORD", secret)
    monkeypatch.setenv("HOOK_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    clock = Clock(T0)
    with SMTPServer(credentials=("monitor", secret)) as smtp, ExitStack() as stack:
        mail = (f"mailto://monitor:${{SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
                "?from=monitor@example.org&to=desk@example.org&mode=insecure")  # fmt: skip
        down = "json://127.0.0.1:9/hook?token=${HOOK_TOKEN}"  # nothing listens on port 9
        rt = runtime(stack, tmp_path, clock, {"desk": mail, "hook": down})
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        stats = rt.deliverer.deliver_due()
        with rt.repo.engine.connect() as conn:
            dump = "\n".join(str(row) for table in ("outbox", "sources", "articles", "meta")
                             for row in conn.execute(text(f"SELECT * FROM {table}")))  # fmt: skip
        assert (stats.sent, stats.retrying) == (1, 1)
        assert len(smtp.messages) == 1
    for needle in (secret, token):
        assert needle not in caplog.text
        assert needle not in dump


def test_watchlist_templates_override_the_shipped_ones(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    hook, _ = hooks
    custom = tmp_path / "desk-templates"
    custom.mkdir()
    (custom / "alert_chat.md").write_text("DESK FORMAT {{ alert.title }}\n")
    clock = Clock(T0)
    path = write_config(tmp_path / "monitor.yaml", feeds=[],
                        notifiers={"chat": hook_url(hook)}, watchlists=[
        {"name": "drones", "query": "drone", "notify": ["chat"], "templates": str(custom)},
        {"name": "reports", "query": "report", "notify": ["chat"]}])  # fmt: skip
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack, clock=clock)
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        assert rt.deliverer.deliver_due().sent == 2
    texts = sorted(str(p) for p in hook.received)
    assert sum("DESK FORMAT" in t for t in texts) == 1


def test_cli_notify_test_and_outbox_retry(
    tmp_path: Path, hooks: tuple[WebhookReceiver, WebhookReceiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor.cli import main

    hook, _ = hooks
    hook.script = [400, 400]
    clock = Clock(T0)
    path = write_config(tmp_path / "monitor.yaml", feeds=[], notifiers={"chat": hook_url(hook)},
                        watchlists=[{"name": "drones", "query": "drone", "notify": ["chat"]}])
    assert main(["notify", "test", "chat", "--config", str(path)]) == 1  # answered 400
    assert "failed (permanent)" in capsys.readouterr().err
    with ExitStack() as stack:
        rt = open_runtime(load_config(path), stack, clock=clock)
        rt.pipeline.ingest(article(1), backlog=False, now=clock())
        assert rt.deliverer.deliver_due().dead == 1
    assert main(["notify", "test", "chat", "--config", str(path)]) == 0
    assert "sent a test message to chat" in capsys.readouterr().out
    assert main(["outbox", "retry", "--config", str(path)]) == 0
    assert "1 dead letters queued again" in capsys.readouterr().out
    assert main(["run", "--once", "--config", str(path)]) == 0
    assert len(hook.received) == 2 and "drone sighting #1" in str(hook.received[1])
    assert main(["notify", "test", "nobody", "--config", str(path)]) == 2
