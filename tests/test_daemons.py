"""Three daemon processes on one PostgreSQL database, one of them killed midway.

Real processes (``python -m monitor run``), the real PostgreSQL (a schema of the test's
own), a local feed server whose feeds grow while the daemons run, and a real SMTP server:
every matching article is alerted exactly once, no source is polled twice within one
interval, and the sources and alerts a killed daemon held pass to the others once its
leases expire.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import write_config
from tests.feeds import Item, rss, story_items
from tests.servers import HTTPServer, Request, Response
from tests.smtp import SMTPServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 10.0  # seconds, the shortest the config accepts
JITTER = 0.1  # the default poll.jitter: a poll comes 0.9 to 1.1 intervals after the last
LEASE = 5.0
SLOW = 3.0  # seconds the slow feed takes to answer: the daemon polling it is killed then
FAST_FEEDS = 5


class Feeds:
    """Feeds that grow while the daemons run; every request is timed."""

    def __init__(self, server: HTTPServer) -> None:
        self.items: dict[str, list[Item]] = {}
        self.times: dict[str, list[float]] = defaultdict(list)
        self.slow_entered = threading.Event()
        self._lock = threading.Lock()
        self.server = server

    def add(self, path: str, *items: Item) -> None:
        with self._lock:
            self.items.setdefault(path, []).extend(items)
        self.server.routes[path] = self._answer

    def _answer(self, req: Request) -> Response:
        path = req.path.split("?", 1)[0]
        with self._lock:
            self.times[path].append(time.time())
            body = rss(list(self.items[path]))
        if path == "/slow":
            self.slow_entered.set()
            time.sleep(SLOW)
        return Response(200, body, {"Content-Type": "application/rss+xml"})


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would stall the daemon
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _query(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _held_by(url: str, pid: int) -> tuple[set[str], set[str]]:
    """The sources and the titles of the alerts a dead daemon held leases on: its work in
    flight, the only sources that may be polled again early and alerts that may repeat."""
    sources = _query(url, "SELECT name FROM sources WHERE lease_owner LIKE :o", o=f"%:{pid}")
    alerts = _query(url, "SELECT payload FROM outbox WHERE status = 'pending' AND "
                    "lease_owner LIKE :o", o=f"%:{pid}:deliver")  # fmt: skip
    return {str(r[0]) for r in sources}, {r[0]["title"] for r in alerts}  # type: ignore[index]


def test_three_daemons_share_the_work_and_survive_one_killed(
    tmp_path: Path, postgres_url: str, feed_server: HTTPServer, smtp: SMTPServer
) -> None:
    matching = iter(story_items(40, seed=11))
    other = iter(story_items(20, seed=12, phrase="harvest festival"))
    feeds = Feeds(feed_server)
    paths = [f"/feed/{n}" for n in range(FAST_FEEDS)] + ["/slow"]
    for path in paths:
        feeds.add(path, next(matching), next(matching), next(other))
    config = write_config(
        tmp_path / "monitor.yaml", database=postgres_url, lease=f"{LEASE:g}s",
        alert_backlog=True, poll={"interval": f"{INTERVAL:g}s"},
        feeds=[{"name": "Slow" if p == "/slow" else p, "url": feed_server.url(p)}
               for p in paths],
        notifiers={"desk": smtp.apprise_url()},
        watchlists=[{"name": "jfhq", "query": '"joint force headquarters"', "notify": ["desk"]}],
    )  # fmt: skip
    daemons = [_start(config, tmp_path / f"daemon-{n}.log") for n in range(3)]
    started = time.monotonic()
    killed: subprocess.Popen[bytes] | None = None
    held: set[str] = set()
    in_flight: set[str] = set()
    try:
        for n in range(4):  # new items while the daemons run, in fast feeds
            time.sleep(3)
            feeds.add(paths[n % FAST_FEEDS], next(matching), next(other))
        feeds.add("/slow", next(matching))  # the killed daemon is fetching it: not lost
        feeds.slow_entered.clear()
        assert feeds.slow_entered.wait(INTERVAL * 2), "the slow feed was not polled again"
        ((owner,),) = _query(postgres_url, "SELECT lease_owner FROM sources WHERE name = 'Slow'")
        killed = next(d for d in daemons if str(owner).endswith(f":{d.pid}"))
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        kill_at = time.time()
        held, in_flight = _held_by(postgres_url, killed.pid)
        assert "Slow" in held
        for n in range(2):  # and more after the kill
            time.sleep(3)
            feeds.add(paths[n], next(matching))
        expected = {i.title for p in paths for i in feeds.items[p] if "joint force" in i.body}
        deadline = started + 60
        while time.monotonic() < deadline and not (
                expected <= _subjects(smtp) and _taken_over(feeds, held, kill_at)):  # fmt: skip
            time.sleep(0.5)
    finally:
        for d in daemons:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        for d in daemons:
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
    logs = "\n".join((tmp_path / f"daemon-{n}.log").read_text() for n in range(3))
    assert killed is not None
    assert all(d.returncode == 0 for d in daemons if d is not killed), logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]

    got = _subject_counts(smtp)
    assert set(got) == expected  # every matching article, and nothing else
    repeated = {t for t, n in got.items() if n > 1}
    assert repeated <= in_flight and all(n <= 2 for n in got.values())

    for path, times in feeds.times.items():  # polled by one daemon per interval
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        short = [g for g in gaps if g < INTERVAL * (1 - JITTER) - 0.25]
        if ("Slow" if path == "/slow" else path) in held:
            # The poll the kill cut short is done again by another daemon, once its lease
            # has expired: at most one early poll, and the source is not dropped.
            assert len(short) <= 1, (path, gaps)
            assert any(t > kill_at + 1 for t in times), (path, "dropped with the killed daemon")
        else:
            assert short == [], (path, gaps)
    assert _held_by(postgres_url, killed.pid) == (set(), set())  # all taken over


def _taken_over(feeds: Feeds, held: set[str], kill_at: float) -> bool:
    """Whether every source the killed daemon held has been polled again since."""
    paths = {"/slow" if name == "Slow" else name for name in held}
    return all(any(t > kill_at + 1 for t in feeds.times[p]) for p in paths)


def _subject_counts(smtp: SMTPServer) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for msg in list(smtp.messages):
        counts[str(msg["Subject"])] += 1
    return dict(counts)


def _subjects(smtp: SMTPServer) -> set[str]:
    return set(_subject_counts(smtp))
