"""The daemon as a real process: signals, one daemon per SQLite file, kill -9 mid-send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.feeds import Item, rss
from tests.servers import HTTPServer, Request, Response

ROOT = Path(__file__).resolve().parents[1]
ITEM = Item("US Forces Japan stands up joint force headquarters",
            "https://news.example.org/jfhq", "US Forces Japan opened its joint force "
            "headquarters in Tokyo on Monday, officials said.")  # fmt: skip

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "monitor", *args, "--config", str(config)],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait(pred: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _config(tmp_path: Path, feeds: HTTPServer, hook_port: int, **extra: object) -> Path:
    feeds.routes["/rss"] = Response(200, rss([ITEM]), {"Content-Type": "application/rss+xml"})
    return write_config(
        tmp_path / "monitor.yaml", alert_backlog=True,
        feeds=[{"name": "Wire", "url": feeds.url("/rss"), "interval": "10s"}],
        notifiers={"chat": f"json://127.0.0.1:{hook_port}/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
        **extra,
    )  # fmt: skip


class SlowHook:
    """A webhook that records each post, then holds the first answer for ``hold`` seconds."""

    def __init__(self, server: HTTPServer, hold: float) -> None:
        self.posts: list[dict[str, object]] = []
        self.hold = hold
        self._lock = threading.Lock()
        server.routes["/hook"] = self

    def __call__(self, req: Request) -> Response:
        with self._lock:
            self.posts.append(json.loads(req.body))
            first = len(self.posts) == 1
        if first:
            time.sleep(self.hold)
        return Response(200, b"{}", {"Content-Type": "application/json"})


def test_sigterm_stops_the_daemon_cleanly(tmp_path: Path, feed_server: HTTPServer) -> None:
    hook = SlowHook(feed_server, hold=0)
    proc = _start(_config(tmp_path, feed_server, feed_server.port), "run")
    try:
        assert _wait(lambda: len(hook.posts) == 1, 30), "the daemon never alerted"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "daemon.stopped" in err and "Traceback" not in err


def test_second_daemon_on_one_sqlite_file_is_refused(
    tmp_path: Path, feed_server: HTTPServer
) -> None:
    SlowHook(feed_server, hold=0)
    config = _config(tmp_path, feed_server, feed_server.port)
    first = _start(config, "run")
    try:
        assert _wait(lambda: (tmp_path / "monitor.db.lock").exists(), 20)
        time.sleep(1)
        second = _start(config, "run")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert f"pid {first.pid}" in err and "one daemon per file" in err
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_kill_9_while_sending_loses_nothing_and_repeats_at_most_once(
    tmp_path: Path, feed_server: HTTPServer
) -> None:
    hook = SlowHook(feed_server, hold=30)
    config = _config(tmp_path, feed_server, feed_server.port)
    proc = _start(config, "run", "--once")
    try:
        assert _wait(lambda: len(hook.posts) == 1, 30), "the alert was never sent"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    again = _start(config, "run", "--once")
    _out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert len(hook.posts) == 2  # delivered; the one in flight at the kill was repeated once
    assert hook.posts[0]["alert_id"] == hook.posts[1]["alert_id"]
    third = _start(config, "run", "--once")
    third.communicate(timeout=60)
    assert len(hook.posts) == 2


_LOADED = """
import json, sys
from monitor.cli import main
code = main(["run", "--once", "--config", sys.argv[1]])
heavy = ("monitor.dedupe", "wordfreq", "apprise", "alembic", "jinja2")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_an_unchanged_cycle_loads_neither_dedupe_nor_the_senders(
    tmp_path: Path, feed_server: HTTPServer
) -> None:
    def feed(req: Request) -> Response:
        headers = {"Content-Type": "application/rss+xml", "ETag": '"v1"'}
        sent = {k.lower(): v for k, v in req.headers.items()}.get("if-none-match")
        return Response(304, b"", headers) if sent == '"v1"' else Response(200, rss([ITEM]),
                                                                           headers)  # fmt: skip

    feed_server.routes["/rss"] = feed
    config = write_config(
        tmp_path / "monitor.yaml", feeds=[{"name": "Wire", "url": feed_server.url("/rss")}],
        notifiers={"chat": "json://127.0.0.1:9/hook"},
        watchlists=[{"name": "usfj", "query": '"US Forces Japan"', "notify": ["chat"]}],
    )  # fmt: skip
    first = subprocess.run([sys.executable, "-c", _LOADED, str(config)], cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(first.stdout.splitlines()[-1])["code"] == 0
    assert "monitor.dedupe" in json.loads(first.stdout.splitlines()[-1])["loaded"]
    second = subprocess.run([sys.executable, "-c", _LOADED, str(config)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "1 unchanged" in second.stdout, second.stderr
    assert json.loads(second.stdout.splitlines()[-1]) == {"code": 0, "loaded": []}
