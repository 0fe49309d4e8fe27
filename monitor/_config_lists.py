"""The config's lists: ``feeds`` and ``watchlists``, each item checked on its own."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._config_values import (
    MIN_INTERVAL,
    Config,
    DigestSpec,
    FeedConfig,
    WatchlistConfig,
    _base_dir,
    _bool,
    _folder,
    _Problems,
    parse_duration,
)
from .errors import QueryError

_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_T = TypeVar("_T", bound=_Named)


def _feeds(raw: Any, problems: _Problems) -> tuple[FeedConfig, ...]:
    return _named("feeds", "feed", raw, problems,
                  lambda item, path: _feed(item, path, problems))  # fmt: skip


def _named(key: str, what: str, raw: Any, problems: _Problems,
           parse: Callable[[Any, str], _T | None]) -> tuple[_T, ...]:  # fmt: skip
    """The items of the list ``key`` that ``parse`` accepts; a repeated name is a problem."""
    if not isinstance(raw, list):
        problems.add(key, "must be a list")
        return ()
    out: list[_T] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        parsed = parse(item, f"{key}[{i}]")
        if parsed is None:
            continue
        name = parsed.name
        if name in seen:
            problems.add(f"{key}[{i}].name", f"duplicate {what} name {name!r}")
        seen.add(name)
        out.append(parsed)
    return tuple(out)


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
    return _named("watchlists", "watchlist", raw, problems,
                  lambda item, path: _watchlist(item, path, config, problems))  # fmt: skip


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
