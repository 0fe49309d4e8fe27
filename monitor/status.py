"""``monitor status``: sources, watchlists and the outbox at a glance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .config import Config

__all__ = ["SILENT_AFTER", "collect_status", "print_status", "source_state"]

SILENT_AFTER = timedelta(days=7)  # no new entry for this long (and 10 intervals) is silent
FAILING_AFTER = 1  # consecutive failures


def source_state(row: dict[str, Any], now: datetime, interval: float) -> str:
    """``ok``, ``failing``, ``disabled`` or ``silent`` for a stored source row."""
    if row["disabled_reason"] or not row["enabled"]:
        return "disabled"
    if row["consecutive_failures"] >= FAILING_AFTER:
        return "failing"
    quiet_since = row["last_new_entry"] or row["first_success"]
    limit = max(SILENT_AFTER, timedelta(seconds=10 * interval))
    if quiet_since is not None and now - quiet_since > limit:
        return "silent"
    return "ok"


def collect_status(config: Config, repo: Any, now: datetime) -> dict[str, Any]:
    """The status object of ``monitor status --json`` (see DESIGN.md)."""
    feeds = {f.name: f for f in config.feeds}
    sources = []
    for row in repo.get_sources():
        feed = feeds.get(row["name"])
        interval = config.interval(feed) if feed else config.poll.interval
        sources.append({
            "name": row["name"], "url": _public_url(row["url"]),
            "state": source_state(row, now, interval),
            "last_success": _iso(row["last_success"]), "last_error": row["last_error"],
            "consecutive_failures": row["consecutive_failures"],
            "next_poll": _iso(row["next_poll_at"]), "entries_total": row["entries_total"],
            "disabled_reason": row["disabled_reason"],
        })  # fmt: skip
    day = repo.get_watchlist_counts(now - timedelta(days=1))
    week = repo.get_watchlist_counts(now - timedelta(days=7))
    watchlists = [{"name": w.name, "matches_24h": day.get(w.name, (0, 0))[0],
                   "alerts_24h": day.get(w.name, (0, 0))[1],
                   "matches_7d": week.get(w.name, (0, 0))[0],
                   "alerts_7d": week.get(w.name, (0, 0))[1]}
                  for w in config.watchlists]  # fmt: skip
    return {"sources": sources, "watchlists": watchlists, "outbox": repo.get_outbox_summary(),
            "articles": repo.count_articles(), "at": now.isoformat()}  # fmt: skip


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


def print_status(status: dict[str, Any]) -> None:
    """Print the status as tables (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="Sources")
    for col in ("name", "state", "last success", "failures", "next poll", "last error"):
        t.add_column(col)
    for s in status["sources"]:
        t.add_row(s["name"], s["state"], (s["last_success"] or "never")[:16],
                  str(s["consecutive_failures"]), (s["next_poll"] or "")[:16],
                  (s["last_error"] or "")[:80])  # fmt: skip
    console.print(t)
    w = Table(title="Watchlists")
    for col in ("name", "matches 24h", "alerts 24h", "matches 7d", "alerts 7d"):
        w.add_column(col)
    for x in status["watchlists"]:
        w.add_row(x["name"], str(x["matches_24h"]), str(x["alerts_24h"]),
                  str(x["matches_7d"]), str(x["alerts_7d"]))  # fmt: skip
    console.print(w)
    o = status["outbox"]
    console.print(f"Outbox: {o['pending']} pending, {o['retrying']} retrying, {o['dead']} dead")
    for d in o["dead_letters"]:
        console.print(f"  dead: {d['watchlist']} -> {d['target']}: {d['reason']}")
    console.print(f"Articles stored: {status['articles']}")
