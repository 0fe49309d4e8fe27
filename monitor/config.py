"""Load and validate the YAML config into frozen values.

The file is read once; every problem is collected with its key path
(``watchlists[2].query: unbalanced parenthesis at column 14``) and raised together as one
``ConfigError``, so an operator fixes a config in one round. ``${NAME}`` in string values
is replaced from the environment; the substituted values are kept in ``Config.secrets``
so logs and stored errors can redact them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import ConfigError, QueryError

__all__ = [
    "Config",
    "DigestSpec",
    "FeedConfig",
    "HttpConfig",
    "PollConfig",
    "RetentionConfig",
    "TargetConfig",
    "WatchlistConfig",
    "default_config_path",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
]

MIN_INTERVAL = 10.0
# libyaml's loader when PyYAML has it: the pure-Python one takes about half a second
# on a config with 500 feeds, a third of a whole unchanged poll cycle (issue 9).
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.I)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1,
}  # fmt: skip
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


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

    def templates_for(self, watchlist: str) -> Path | None:
        """The template folder of a watchlist: its own, else the global one."""
        for w in self.watchlists:
            if w.name == watchlist and w.templates is not None:
                return w.templates
        return self.templates
    http: HttpConfig | None = None  # the operations endpoint, off by default
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    def interval(self, feed: FeedConfig) -> float:
        """The poll interval of one feed (its own, else the global one)."""
        return feed.interval if feed.interval is not None else self.poll.interval


def default_config_path(explicit: str | None = None) -> Path:
    """``--config``, else ``$MONITOR_CONFIG``, else ``config/monitor.yaml``."""
    return Path(explicit or os.environ.get("MONITOR_CONFIG") or "config/monitor.yaml")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid; lists every problem.
    """
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(raw, env=os.environ if env is None else env, path=path)


class _Problems:
    """Collects ``path: reason`` lines while a config is validated."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.lines.append(f"{path}: {reason}")


def parse_config(raw: Any, *, env: Mapping[str, str], path: Path | None = None) -> Config:
    """Validate an already-loaded YAML document (see ``load_config``)."""
    problems = _Problems()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("(top level): must be a mapping of keys to values")
    secrets: set[str] = set()
    raw = _substitute(raw, env, "", problems, secrets)
    base = _base_dir(path)
    notifiers, targets = _notifiers(raw.get("notifiers") or {}, problems)
    config = Config(
        database=_database(raw.get("database"), base, problems),
        poll=_poll(raw.get("poll") or {}, problems),
        notifiers=notifiers,
        targets=targets,
        on_failure=_on_failure(raw.get("on_failure"), notifiers, problems),
        lease=_lease(raw.get("lease", "2m"), problems),
        on_source_failure=_on_failure(raw.get("on_source_failure"), notifiers, problems,
                                      "on_source_failure"),
        on_source_failure_after=_positive(raw, "on_source_failure_after", 3, problems),
        templates=_folder(raw.get("templates"), "templates", _base_dir(path), problems),
        http=_http(raw.get("http"), problems),
        retention=_retention(raw.get("retention"), problems),
        aliases=_aliases(raw.get("aliases") or {}, problems),
        feeds=_feeds(raw.get("feeds") or [], problems),
        watchlists=(),
        alert_backlog=_bool(raw, "alert_backlog", False, "", problems),
        allow_private=_str_list(raw.get("allow_private") or [], "allow_private", problems),
        user_agent=str(raw.get("user_agent") or "news-monitor/0.1"),
        proxy=raw.get("proxy") or None,
        secrets=frozenset(s for s in secrets if s),
        path=path,
    )
    watchlists = _watchlists(raw.get("watchlists") or [], config, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return _replace_watchlists(config, watchlists)


def _base_dir(path: Path | None) -> Path:
    """Where relative SQLite paths start: the project of a ``config/`` folder, else the
    file's folder."""
    if path is None:
        return Path()
    folder = path.resolve().parent
    return folder.parent if folder.name == "config" else folder


def _replace_watchlists(config: Config, watchlists: tuple[WatchlistConfig, ...]) -> Config:
    from dataclasses import replace

    return replace(config, watchlists=watchlists)


def _substitute(value: Any, env: Mapping[str, str], path: str, problems: _Problems,
                secrets: set[str]) -> Any:  # fmt: skip
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.add(path or "(top level)", f"environment variable {name} is not set")
                return ""
            secrets.add(env[name])
            return env[name]

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, _join(path, str(k)), problems, secrets)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_substitute(v, env, f"{path}[{i}]", problems, secrets)
                for i, v in enumerate(value)]  # fmt: skip
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _database(value: Any, base: Path, problems: _Problems) -> str:
    if value is None:
        return f"sqlite:///{(base / 'data' / 'monitor.db').as_posix()}"
    if not isinstance(value, str) or "://" not in value:
        problems.add("database", "must be a database URL such as sqlite:///data/monitor.db")
        return ""
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rel = value[len("sqlite:///"):]
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            return f"sqlite:///{(base / rel).as_posix()}"
    return value


def _poll(raw: Any, problems: _Problems) -> PollConfig:
    if not isinstance(raw, dict):
        problems.add("poll", "must be a mapping")
        return PollConfig()
    out = PollConfig()
    kwargs: dict[str, Any] = {}
    for key, parse in (("interval", parse_duration), ("timeout", parse_duration),
                       ("max_bytes", parse_size)):  # fmt: skip
        if key in raw:
            try:
                kwargs[key] = parse(raw[key])
            except ValueError as exc:
                problems.add(f"poll.{key}", str(exc))
    for key in ("concurrency", "per_host"):
        if key in raw:
            if not isinstance(raw[key], int) or raw[key] < 1:
                problems.add(f"poll.{key}", "must be a whole number >= 1")
            else:
                kwargs[key] = raw[key]
    if "parse_workers" in raw:
        value = raw["parse_workers"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.add("poll.parse_workers", "must be a whole number >= 0")
        else:
            kwargs["parse_workers"] = value
    if kwargs.get("interval", out.interval) < MIN_INTERVAL:
        problems.add("poll.interval", f"must be at least {MIN_INTERVAL:g}s")
    if kwargs.get("timeout", out.timeout) <= 0:
        problems.add("poll.timeout", "must be positive")
    unknown = set(raw) - set(PollConfig.__slots__)
    for key in sorted(unknown):
        problems.add(f"poll.{key}", "unknown key")
    return PollConfig(**{**{f: getattr(out, f) for f in out.__slots__}, **kwargs})


def _notifiers(raw: Any, problems: _Problems
               ) -> tuple[dict[str, str], dict[str, TargetConfig]]:  # fmt: skip
    """``name: URL`` or ``name: {url: URL, max_per_hour: N, quiet_hours: "22:00-07:00 TZ"}``."""
    if not isinstance(raw, dict):
        problems.add("notifiers", "must be a mapping of name to apprise URL")
        return {}, {}
    urls: dict[str, str] = {}
    targets: dict[str, TargetConfig] = {}
    for name, value in raw.items():
        path = f"notifiers.{name}"
        options = value if isinstance(value, dict) else {"url": value}
        url = options.get("url")
        if not isinstance(url, str) or "://" not in url:
            problems.add(path, "must be an apprise URL such as mailtos://…")
            continue
        for key in sorted(set(options) - {"url", "max_per_hour", "quiet_hours"}):
            problems.add(f"{path}.{key}", "unknown key")
        urls[str(name)] = url
        targets[str(name)] = _target(options, path, problems)
    return urls, targets


def _target(options: dict[str, Any], path: str, problems: _Problems) -> TargetConfig:
    from .schedule import parse_quiet_hours

    limit = options.get("max_per_hour")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        problems.add(f"{path}.max_per_hour", "must be a whole number >= 1")
        limit = None
    quiet = None
    if options.get("quiet_hours") is not None:
        try:
            quiet = parse_quiet_hours(options["quiet_hours"])
        except ValueError as exc:
            problems.add(f"{path}.quiet_hours", str(exc))
    return TargetConfig(max_per_hour=limit, quiet_hours=quiet)


def _folder(value: Any, where: str, base: Path, problems: _Problems) -> Path | None:
    if value is None:
        return None
    folder = base / str(value)
    if not folder.is_dir():
        problems.add(where, f"no such folder: {folder}")
        return None
    return folder


def _lease(value: Any, problems: _Problems) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems.add("lease", str(exc))
        return 120.0
    if seconds < 1:
        problems.add("lease", "must be at least 1s")
    return seconds


def _http(raw: Any, problems: _Problems) -> HttpConfig | None:
    """``http: {listen: 127.0.0.1:8080}``; absent (or ``listen`` empty) = no endpoint."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("http", "must be a mapping such as {listen: 127.0.0.1:8080}")
        return None
    for key in sorted(set(raw) - {"listen"}):
        problems.add(f"http.{key}", "unknown key")
    listen = raw.get("listen")
    if listen is None or listen == "":
        return None
    m = re.match(r"^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]*)):(\d{1,5})$", str(listen))
    port = int(m.group(3)) if m else -1
    if not m or port > 65535:
        problems.add("http.listen", f"must be HOST:PORT such as 127.0.0.1:8080, not {listen!r}")
        return None
    return HttpConfig(host=m.group(1) or m.group(2) or "0.0.0.0", port=port)


def _retention(raw: Any, problems: _Problems) -> RetentionConfig:
    """``retention: {articles: 180d, batch: 500}``; absent = bodies are kept for ever."""
    if raw is None:
        return RetentionConfig()
    if not isinstance(raw, dict):
        problems.add("retention", "must be a mapping such as {articles: 180d}")
        return RetentionConfig()
    for key in sorted(set(raw) - {"articles", "batch"}):
        problems.add(f"retention.{key}", "unknown key")
    articles = None
    if raw.get("articles") is not None:
        try:
            articles = parse_duration(raw["articles"])
        except ValueError as exc:
            problems.add("retention.articles", str(exc))
        else:
            if articles < 86400:  # a bare number is seconds: refuse a typo that empties the store
                problems.add("retention.articles", "must be at least 1d")
    batch = raw.get("batch", 500)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        problems.add("retention.batch", "must be a whole number >= 1")
        batch = 500
    return RetentionConfig(articles=articles, batch=batch)


def _on_failure(value: Any, notifiers: Mapping[str, str], problems: _Problems,
                where: str = "on_failure") -> str | None:  # fmt: skip
    if value is None:
        return None
    if not isinstance(value, str) or value not in notifiers:
        problems.add(where, f"unknown notifier {value!r}")
        return None
    return value


def _positive(raw: dict[str, Any], key: str, default: int, problems: _Problems) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.add(key, "must be a whole number >= 1")
        return default
    return value


def _aliases(raw: Any, problems: _Problems) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        problems.add("aliases", "must be a mapping of name to a list of terms")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for name, terms in raw.items():
        if isinstance(terms, str):
            terms = [terms]
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) for t in terms):
            problems.add(f"aliases.{name}", "must be a non-empty list of terms")
            continue
        out[str(name)] = tuple(terms)
    return out


def _bool(raw: dict[str, Any], key: str, default: bool, path: str, problems: _Problems) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.add(_join(path, key), "must be true or false")
        return default
    return value


def _str_list(raw: Any, path: str, problems: _Problems) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems.add(path, "must be a list of strings")
        return ()
    return tuple(raw)


def _feeds(raw: Any, problems: _Problems) -> tuple[FeedConfig, ...]:
    if not isinstance(raw, list):
        problems.add("feeds", "must be a list")
        return ()
    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        feed = _feed(item, f"feeds[{i}]", problems)
        if feed is None:
            continue
        if feed.name in seen:
            problems.add(f"feeds[{i}].name", f"duplicate feed name {feed.name!r}")
        seen.add(feed.name)
        feeds.append(feed)
    return tuple(feeds)


_FEED_KEYS = {"name", "url", "type", "interval", "select", "enabled", "headers", "verify_tls",
              "silent_after", "full_text"}  # fmt: skip


def _feed(item: Any, path: str, problems: _Problems) -> FeedConfig | None:
    if not isinstance(item, dict):
        problems.add(path, "must be a mapping with name and url")
        return None
    before = len(problems.lines)
    name, url = item.get("name"), item.get("url")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{path}.name", "is required")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url or ""):
        problems.add(f"{path}.url", "must be an http:// or https:// URL")
    kind = item.get("type", "feed")
    if kind not in ("feed", "page"):
        problems.add(f"{path}.type", "must be feed or page")
    select = item.get("select")
    if kind == "page" and not isinstance(select, str):
        problems.add(f"{path}.select", "is required for type: page (a CSS selector for links)")
    interval = None
    if "interval" in item:
        try:
            interval = parse_duration(item["interval"])
            if interval < MIN_INTERVAL:
                problems.add(f"{path}.interval", f"must be at least {MIN_INTERVAL:g}s")
        except ValueError as exc:
            problems.add(f"{path}.interval", str(exc))
    silent_after = None
    if item.get("silent_after") is not None:
        try:
            silent_after = parse_duration(item["silent_after"])
        except ValueError as exc:
            problems.add(f"{path}.silent_after", str(exc))
        else:
            if silent_after <= 0:
                problems.add(f"{path}.silent_after", "must be positive")
    headers = item.get("headers") or {}
    if not isinstance(headers, dict):
        problems.add(f"{path}.headers", "must be a mapping of header to value")
        headers = {}
    for key in sorted(set(item) - _FEED_KEYS):
        problems.add(f"{path}.{key}", "unknown key")
    enabled = _bool(item, "enabled", True, path, problems)
    verify = _bool(item, "verify_tls", True, path, problems)
    full_text = _bool(item, "full_text", False, path, problems)
    if len(problems.lines) > before:
        return None
    return FeedConfig(
        name=str(name).strip(), url=str(url), type=kind, interval=interval, select=select,
        enabled=enabled, headers=tuple((str(k), str(v)) for k, v in headers.items()),
        verify_tls=verify, silent_after=silent_after, full_text=full_text,
    )  # fmt: skip


def parse_digest(value: Any) -> DigestSpec:
    """``immediate``, ``hourly`` or ``daily HH:MM [Area/City]``.

    Raises:
        ValueError: anything else, or an unknown time zone.
    """
    text = str(value).strip() if value is not None else "immediate"
    if text in ("immediate", "hourly"):
        return DigestSpec(kind=text)
    m = _DAILY.match(text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(
            f"not a digest schedule: {text!r} (immediate, hourly, daily 08:00 Asia/Tokyo)")
    tz = m.group(3) or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    return DigestSpec(kind="daily", at=time(int(m.group(1)), int(m.group(2))), tz=tz)


def _watchlists(raw: Any, config: Config, problems: _Problems) -> tuple[WatchlistConfig, ...]:
    if not isinstance(raw, list):
        problems.add("watchlists", "must be a list")
        return ()
    out: list[WatchlistConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        wl = _watchlist(item, f"watchlists[{i}]", config, problems)
        if wl is None:
            continue
        if wl.name in seen:
            problems.add(f"watchlists[{i}].name", f"duplicate watchlist name {wl.name!r}")
        seen.add(wl.name)
        out.append(wl)
    return tuple(out)


_WATCHLIST_KEYS = {"name", "query", "notify", "digest", "urgent", "templates"}


def _watchlist(item: Any, path: str, config: Config, problems: _Problems) -> WatchlistConfig | None:
    if not isinstance(item, dict):
        problems.add(path, "must be a mapping with name and query")
        return None
    before = len(problems.lines)
    name, query = item.get("name"), item.get("query")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{path}.name", "is required")
    if not isinstance(query, str) or not query.strip():
        problems.add(f"{path}.query", "is required")
    else:
        _check_query(query, config, f"{path}.query", problems)
    notify = item.get("notify") or []
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list):
        problems.add(f"{path}.notify", "must be a list of notifier names")
        notify = []
    for j, target in enumerate(notify):
        if target not in config.notifiers:
            problems.add(f"{path}.notify[{j}]", f"unknown notifier {target!r}")
    try:
        digest = parse_digest(item.get("digest"))
    except ValueError as exc:
        problems.add(f"{path}.digest", str(exc))
        digest = DigestSpec()
    for key in sorted(set(item) - _WATCHLIST_KEYS):
        problems.add(f"{path}.{key}", "unknown key")
    urgent = _bool(item, "urgent", False, path, problems)
    templates = _folder(item.get("templates"), f"{path}.templates",
                        _base_dir(config.path), problems)  # fmt: skip
    if len(problems.lines) > before:
        return None
    return WatchlistConfig(
        name=str(name).strip(), query=str(query), notify=tuple(notify), digest=digest,
        urgent=urgent, templates=templates,
    )  # fmt: skip


def _check_query(query: str, config: Config, path: str, problems: _Problems) -> None:
    from .match import parse_query

    try:
        parse_query(query, config.aliases)
    except QueryError as exc:
        problems.add(path, str(exc))
