"""The config's values (frozen dataclasses) and the checks of single values its
sections share (``monitor.config`` reads a file into them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

MIN_INTERVAL = 10.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.I)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1,
}  # fmt: skip

def parse_duration(value: object) -> float:
    """``"15m"`` → 900.0 seconds; plain numbers are seconds.

    Raises:
        ValueError: the value is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(value: object) -> int:
    """``"10MB"`` → 10_000_000 bytes; plain numbers are bytes.

    Raises:
        ValueError: the value is not a size.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 500KB, 10MB)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


@dataclass(frozen=True, slots=True)
class DigestSpec:
    """When a watchlist's alerts go out: at once, hourly, or daily at a local time."""

    kind: str = "immediate"  # immediate | hourly | daily
    at: time | None = None
    tz: str = "UTC"

    def __str__(self) -> str:
        if self.kind == "daily" and self.at is not None:
            return f"daily {self.at:%H:%M} {self.tz}"
        return self.kind


@dataclass(frozen=True, slots=True)
class PollConfig:
    interval: float = 900.0
    timeout: float = 30.0
    max_bytes: int = 10_000_000
    jitter: float = 0.1  # fraction of the interval
    concurrency: int = 16
    per_host: int = 2
    # Processes that parse, normalise and fingerprint fetched documents (issue 9); None
    # means one per CPU, 0 does it all in the daemon's own process.
    parse_workers: int | None = None


@dataclass(frozen=True, slots=True)
class FeedConfig:
    name: str
    url: str
    type: str = "feed"
    interval: float | None = None
    select: str | None = None
    enabled: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    silent_after: float | None = None  # seconds without a new entry before status says silent
    full_text: bool = False  # fetch each new entry's page and extract its main text


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The operations endpoint (``/healthz``, ``/readyz``, ``/metrics``); off when absent."""

    host: str = "127.0.0.1"
    port: int = 8080

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long article bodies are kept; ``articles=None`` keeps them for ever."""

    articles: float | None = None  # seconds after an article was fetched
    batch: int = 500  # articles pruned per transaction


@dataclass(frozen=True, slots=True)
class WatchlistConfig:
    name: str
    query: str
    notify: tuple[str, ...] = ()
    digest: DigestSpec = field(default_factory=DigestSpec)
    urgent: bool = False
    templates: Path | None = None  # overrides of the shipped templates for this watchlist


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """Delivery options of one notifier (the URL itself is in ``Config.notifiers``)."""

    max_per_hour: int | None = None  # beyond it, alerts roll into the next hourly digest
    quiet_hours: Any = None  # monitor.schedule.QuietHours: non-urgent alerts wait


@dataclass(frozen=True, slots=True)
class Config:
    database: str
    poll: PollConfig
    notifiers: Mapping[str, str]  # name -> apprise URL (secrets substituted)
    aliases: Mapping[str, tuple[str, ...]]
    feeds: tuple[FeedConfig, ...]
    watchlists: tuple[WatchlistConfig, ...]
    alert_backlog: bool = False
    allow_private: tuple[str, ...] = ()
    user_agent: str = "news-monitor/0.1"
    proxy: str | None = None
    secrets: frozenset[str] = frozenset()
    path: Path | None = None
    targets: Mapping[str, TargetConfig] = field(default_factory=dict)
    on_failure: str | None = None  # notifier told of dead letters
    lease: float = 120.0  # seconds a claimed source or alert stays with its daemon
    on_source_failure: str | None = None  # notifier told when a source fails, recovers, …
    on_source_failure_after: int = 3  # failures in a row before a source is announced
    templates: Path | None = None  # a folder whose templates override the shipped ones
    http: HttpConfig | None = None  # the operations endpoint, off by default
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    def templates_for(self, watchlist: str) -> Path | None:
        """The template folder of a watchlist: its own, else the global one."""
        for w in self.watchlists:
            if w.name == watchlist and w.templates is not None:
                return w.templates
        return self.templates

    def interval(self, feed: FeedConfig) -> float:
        """The poll interval of one feed (its own, else the global one)."""
        return feed.interval if feed.interval is not None else self.poll.interval


class _Problems:
    """Collects ``path: reason`` lines while a config is validated."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.lines.append(f"{path}: {reason}")


def _base_dir(path: Path | None) -> Path:
    """Where relative SQLite paths start: the project of a ``config/`` folder, else the
    file's folder."""
    if path is None:
        return Path()
    folder = path.resolve().parent
    return folder.parent if folder.name == "config" else folder


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _folder(value: Any, where: str, base: Path, problems: _Problems) -> Path | None:
    if value is None:
        return None
    folder = base / str(value)
    if not folder.is_dir():
        problems.add(where, f"no such folder: {folder}")
        return None
    return folder


def _bool(raw: dict[str, Any], key: str, default: bool, path: str, problems: _Problems) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.add(_join(path, key), "must be true or false")
        return default
    return value
