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


# The table shows this much of a source's error; the whole of it follows the table.
ERROR_SHOWN = 60

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
    for line in _source_errors(status["sources"]):
        console.print(line)
    console.print(_watchlists_table(status["watchlists"]))
    console.print(_outbox_table(status["outbox"]))
    pruned = status.get("articles_pruned") or 0
    console.print(f"Articles stored: {status['articles']}"
                  + (f" ({pruned} pruned to their keys)" if pruned else ""))  # fmt: skip


def _sources_table(sources: list[dict[str, Any]], now: datetime) -> Any:
    """A source a row; a failing or disabled one's error, cut short, in the last column
    (in full below the table, ``_source_errors``)."""
    from rich.table import Table
    from rich.text import Text

    from ._render import cut

    t = Table(title="Sources", title_justify="left")
    t.add_column("name", min_width=12)
    t.add_column("state", no_wrap=True)
    t.add_column("last\nsuccess")
    t.add_column("entries\n24h", justify="right")
    t.add_column("next\npoll")
    t.add_column("last error", overflow="fold")
    for s in sources:
        state = s["state"]
        t.add_row(Text(s["name"]), f"[{_STATE_STYLE[state]}]{state}[/]",
                  _ago(s["last_success"], now), str(s["entries_24h"]),
                  _next(s["next_poll"], now),
                  Text(cut(_error(s), ERROR_SHOWN)))  # fmt: skip
    return t


def _source_errors(sources: list[dict[str, Any]]) -> list[Any]:
    """The whole error of each failing or disabled source, under its name: a table
    column is too narrow for a URL and its cause."""
    from rich.padding import Padding
    from rich.text import Text

    failing = [(s["name"], text) for s in sources if (text := _error(s))]
    if not failing:
        return []
    out: list[Any] = [Text("Source errors", style="bold")]
    for name, text in failing:
        out += [Padding(Text(name), (0, 0, 0, 2)), Padding(Text(text), (0, 0, 0, 4))]
    return out


def _error(source: dict[str, Any]) -> str:
    """``(3×) could not connect (…): …``; a disabled source's reason; else empty. The
    stored error's leading kind and source name are left out: they go beside it."""
    failures = source["consecutive_failures"]
    if source["state"] == "disabled" and source["disabled_reason"]:
        return str(source["disabled_reason"])
    if not failures:
        return ""
    text = source["last_error"] or "unknown error"
    kind, sep, rest = text.partition(": ")
    if sep and kind.isidentifier():
        text = rest
    text = text.removeprefix(f"{source['name']}: ")
    return f"({failures}×) {text}" if failures > 1 else text


def _watchlists_table(watchlists: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    t = Table(title="Watchlists", title_justify="left")
    t.add_column("name")
    for col in ("matches 24h", "alerts 24h", "matches 7d", "alerts 7d"):
        t.add_column(col, justify="right")
    for x in watchlists:
        t.add_row(Text(x["name"]), str(x["matches_24h"]), str(x["alerts_24h"]),
                  str(x["matches_7d"]), str(x["alerts_7d"]))  # fmt: skip
    return t


def _outbox_table(outbox: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"Outbox: {outbox['pending']} pending, {outbox['retrying']} retrying, "
                    f"{outbox['dead']} dead", title_justify="left")  # fmt: skip
    for col in ("dead letter", "target", "reason"):
        t.add_column(col, overflow="fold")
    for d in outbox["dead_letters"]:  # a reason quotes what the server said: not markup
        t.add_row(Text(d["watchlist"]), Text(d["target"]), Text(d["reason"]))
    return t


def _ago(iso: str | None, now: datetime, *, empty: str = "never") -> str:
    """``3h ago`` or ``in 10m`` (``--json`` has the times)."""
    if not iso:
        return empty
    delta = (now - datetime.fromisoformat(iso)).total_seconds()
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(-delta)}"


def _next(iso: str | None, now: datetime) -> str:
    """``in 10m``, or ``due`` once the time has come."""
    if iso and datetime.fromisoformat(iso) <= now:
        return "due"
    return _ago(iso, now, empty="-")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
