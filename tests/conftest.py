"""Shared fixtures: real servers on 127.0.0.1, databases, a movable clock, a clean env."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import HTTPServer, WebhookReceiver
from tests.smtp import SMTPServer

POSTGRES_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")  # fmt: skip
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MONITOR_* setting of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("MONITOR_") and key not in ("MONITOR_TEST_POSTGRES_URL",
                                                      "MONITOR_REQUIRE_POSTGRES"):  # fmt: skip
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A test that runs the CLI in-process installs the monitor's log handler on the root
    logger; it is taken off again, so later records (an SMTP server thread noting a closed
    connection) do not reach the terminal past pytest's capture."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed_server() -> Iterator[HTTPServer]:
    with HTTPServer() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:
        return False


def _postgres_or_skip() -> str:
    if postgres_available():
        return POSTGRES_URL
    if os.environ.get("MONITOR_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required here but not reachable at {POSTGRES_URL}")
    pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (CI makes it mandatory)")


def _postgres_schema(url: str) -> Iterator[str]:
    """``url`` with a fresh schema of its own first on the search path, dropped afterwards:
    test runs sharing the one test database (two developers, or CI and a developer)
    never see each other's tables."""
    from sqlalchemy import create_engine, text

    name = f"test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean database: a SQLite file, and the real PostgreSQL (a schema per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    yield from _postgres_schema(_postgres_or_skip())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The real PostgreSQL, in a schema of this test's own."""
    yield from _postgres_schema(_postgres_or_skip())


def write_config(path: Path, **raw: Any) -> Path:
    """Write a YAML config (keys as in config/monitor.yaml) and return its path."""
    raw.setdefault("database", f"sqlite:///{path.parent}/monitor.db")
    raw.setdefault("allow_private", ["127.0.0.1"])
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@contextmanager
def statements_sent(engine: Any) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends to the driver within the block, in order."""
    from sqlalchemy import event

    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
