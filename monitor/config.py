"""Load and validate the YAML config into frozen values (``_config_values``; the
``feeds`` and ``watchlists`` lists are checked in ``_config_lists``).

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
from pathlib import Path
from typing import Any

import yaml

from ._config_lists import _feeds, _watchlists, parse_digest
from ._config_values import (
    MIN_INTERVAL,
    Config,
    DigestSpec,
    FeedConfig,
    HttpConfig,
    PollConfig,
    RetentionConfig,
    TargetConfig,
    WatchlistConfig,
    _base_dir,
    _bool,
    _folder,
    _join,
    _Problems,
    parse_duration,
    parse_size,
)
from .errors import ConfigError

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
    "parse_digest",
    "parse_duration",
    "parse_size",
]

# libyaml's loader when PyYAML has it: the pure-Python one takes about half a second
# on a config with 500 feeds, a third of a whole unchanged poll cycle (issue 9).
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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


def _str_list(raw: Any, path: str, problems: _Problems) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems.add(path, "must be a list of strings")
        return ()
    return tuple(raw)
