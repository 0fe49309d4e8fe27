"""``monitor status``: sources, watchlists and the outbox at a glance.

``collect_status`` builds the object ``monitor status --json`` prints (its shape is fixed
by DESIGN.md; fields beyond it are extras); ``print_status`` draws it as tables.

A source is ``disabled`` (a 410, or no longer in the config), else ``failing`` (its last
poll failed), else ``silent`` (no new entry for ``silent_after``: the feed's own, else
7 days or 10 poll intervals, whichever is longer), else ``ok``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from .config import Config

__all__ = ["SILENT_AFTER", "collect_status", "print_status", "source_state", "state_counts"]

SILENT_AFTER = timedelta(days=7)  # default: no new entry for this long (and 10 intervals)
FAILING_AFTER = 1  # consecutive failures


def source_state(row: dict[str, Any], now: datetime, interval: float,
                 silent_after: float | None = None) -> str:  # fmt: skip
    """``ok``, ``failing``, ``disabled`` or ``silent`` for a stored source row.

    Args:
        row: a row of ``Repository.get_sources``.
        now: the current UTC time.
        interval: the source's poll interval in seconds.
        silent_after: the feed's own silence limit in seconds, if it sets one.
    """
    if row["disabled_reason"] or not row["enabled"]:
        return "disabled"
    if row["consecutive_failures"] >= FAILING_AFTER:
        return "failing"
    quiet_since = row["last_new_entry"] or row["first_success"]
    if silent_after is not None:
        limit = timedelta(seconds=silent_after)
    else:
        limit = max(SILENT_AFTER, timedelta(seconds=10 * interval))
    if quiet_since is not None and now - quiet_since > limit:
        return "silent"
    return "ok"


def _states(config: Config, rows: list[dict[str, Any]], now: datetime) -> list[str]:
    feeds = {f.name: f for f in config.feeds}
    out = []
    for row in rows:
        feed = feeds.get(row["name"])
        interval = config.interval(feed) if feed else config.poll.interval
        out.append(source_state(row, now, interval, feed.silent_after if feed else None))
    return out


def state_counts(config: Config, repo: Any, now: datetime) -> dict[str, int]:
    """``state -> number of sources`` (for the metrics)."""
    return dict(Counter(_states(config, repo.get_sources(), now)))


def collect_status(config: Config, repo: Any, now: datetime) -> dict[str, Any]:
    """The status object of ``monitor status --json`` (see DESIGN.md)."""
    from .pipeline import redact_secrets

    rows = repo.get_sources()
    entries = repo.get_entry_counts(now - timedelta(days=1))
    sources = []
    for row, state in zip(rows, _states(config, rows, now), strict=True):
        reason = row["disabled_reason"] or (None if row["enabled"] else "not in the config")
        sources.append({
            "name": row["name"], "url": redact_secrets(_public_url(row["url"]), config.secrets),
            "state": state, "last_success": _iso(row["last_success"]),
            "last_error": row["last_error"],
            "consecutive_failures": row["consecutive_failures"],
            "entries_24h": entries.get(row["name"], 0), "entries_total": row["entries_total"],
            "last_new_entry": _iso(row["last_new_entry"]),
            "next_poll": None if state == "disabled" else _iso(row["next_poll_at"]),
            "disabled_reason": reason,
        })  # fmt: skip
    day = repo.get_watchlist_counts(now - timedelta(days=1))
    week = repo.get_watchlist_counts(now - timedelta(days=7))
    watchlists = [{"name": w.name, "matches_24h": day.get(w.name, (0, 0))[0],
                   "alerts_24h": day.get(w.name, (0, 0))[1],
                   "matches_7d": week.get(w.name, (0, 0))[0],
                   "alerts_7d": week.get(w.name, (0, 0))[1]}
                  for w in config.watchlists]  # fmt: skip
    stored = repo.count_articles()
    return {"sources": sources, "watchlists": watchlists, "outbox": repo.get_outbox_summary(),
            "articles": stored,
            "articles_pruned": stored - repo.count_articles(include_pruned=False),
            "at": now.isoformat()}  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _public_url(url: str) -> str:
    """A source URL without any userinfo (credentials belong in headers, not here)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


_STATE_STYLE = {"ok": "green", "failing": "red", "disabled": "dim", "silent": "yellow"}


def print_status(status: dict[str, Any], console: Any = None) -> None:
    """Print the status as tables (rich): sources, watchlists, outbox.

    Args:
        status: what ``collect_status`` returned.
        console: a ``rich.console.Console`` (default: standard output).
    """
    from rich.console import Console

    console = console or Console()
    now = datetime.fromisoformat(status["at"])
    console.print(_sources_table(status["sources"], now))
    console.print(_watchlists_table(status["watchlists"]))
    console.print(_outbox_table(status["outbox"]))
    pruned = status.get("articles_pruned") or 0
    console.print(f"Articles stored: {status['articles']}"
                  + (f" ({pruned} pruned to their keys)" if pruned else ""))  # fmt: skip


def _sources_table(sources: list[dict[str, Any]], now: datetime) -> Any:
    from rich.table import Table

    t = Table(title="Sources", title_justify="left")
    for col in ("name", "state", "last success"):
        t.add_column(col)
    t.add_column("entries 24h", justify="right")
    t.add_column("next poll")
    t.add_column("last error", overflow="fold")
    for s in sources:
        state = s["state"]
        failures = s["consecutive_failures"]
        detail = (s["last_error"] or "")[:160] if failures else ""
        if failures > 1:
            detail = f"({failures}×) {detail}"
        if state == "disabled":
            detail = s["disabled_reason"] or detail
        t.add_row(s["name"], f"[{_STATE_STYLE[state]}]{state}[/]", _when(s["last_success"], now),
                  str(s["entries_24h"]), _when(s["next_poll"], now, empty="-"),
                  detail)  # fmt: skip
    return t


def _watchlists_table(watchlists: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title="Watchlists", title_justify="left")
    t.add_column("name")
    for col in ("matches 24h", "alerts 24h", "matches 7d", "alerts 7d"):
        t.add_column(col, justify="right")
    for x in watchlists:
        t.add_row(x["name"], str(x["matches_24h"]), str(x["alerts_24h"]),
                  str(x["matches_7d"]), str(x["alerts_7d"]))  # fmt: skip
    return t


def _outbox_table(outbox: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"Outbox: {outbox['pending']} pending, {outbox['retrying']} retrying, "
                    f"{outbox['dead']} dead", title_justify="left")  # fmt: skip
    for col in ("dead letter", "target", "reason"):
        t.add_column(col, overflow="fold")
    for d in outbox["dead_letters"]:
        t.add_row(d["watchlist"], d["target"], d["reason"])
    return t


def _when(iso: str | None, now: datetime, *, empty: str = "never") -> str:
    """``2024-07-28 09:00 (3h ago)`` or ``… (in 10m)``."""
    if not iso:
        return empty
    at = datetime.fromisoformat(iso)
    delta = (now - at).total_seconds()
    return f"{at:%Y-%m-%d %H:%M} ({_span(delta)} ago)" if delta >= 0 else \
        f"{at:%Y-%m-%d %H:%M} (in {_span(-delta)})"  # fmt: skip


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
