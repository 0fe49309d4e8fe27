"""Source health announcements: tell ``on_source_failure`` once per change (pure).

A source is announced when it has failed ``on_source_failure_after`` times in a row, when a
410 disables it, and when it goes silent; and once more when it recovers. The state last
announced is stored with the source, so a restart announces nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .status import source_state
from .types import AlertIntent

__all__ = ["announcement", "health"]


def health(row: dict[str, Any], now: datetime, *, interval: float,
           silent_after: float | None, threshold: int) -> str:  # fmt: skip
    """``ok``, ``failing`` (``threshold`` failures in a row), ``disabled`` or ``silent``."""
    state = source_state(row, now, interval, silent_after)
    if state == "failing" and row["consecutive_failures"] < threshold:
        return "ok"
    return state


def announcement(row: dict[str, Any], state: str, *, target: str,
                 now: datetime) -> tuple[str | None, AlertIntent] | None:  # fmt: skip
    """What to announce for a source now in ``state``: the state to store and the message.

    Returns:
        None when nothing changed since the last announcement.
    """
    before = row.get("announced")
    if state == "ok":
        if before is None:
            return None
        title = f"Source {row['name']} recovered"
        detail = f"It works again (it was {before})."
        stored = None
    elif state == before:
        return None
    else:
        title = f"Source {row['name']} is {state}"
        detail = _detail(row, state)
        stored = state
    payload = {"watchlist": "sources", "target": target, "title": title,
               "source": row["name"], "link": row["url"], "published": now.isoformat(),
               "snippet": detail, "terms": [], "fields": [], "highlights": [],
               "follows": None, "sources": [row["name"]], "urgent": True}  # fmt: skip
    return stored, AlertIntent(watchlist="sources", target=target, digest="immediate",
                               payload=payload, due=now)  # fmt: skip


def _detail(row: dict[str, Any], state: str) -> str:
    if state == "disabled":
        return f"Polling stopped: {row.get('disabled_reason') or 'removed from the config'}."
    if state == "silent":
        last = row.get("last_new_entry") or row.get("first_success")
        return f"No new entry since {last:%Y-%m-%d %H:%M} UTC." if last else "No new entry."
    return (f"{row['consecutive_failures']} failures in a row; last error: "
            f"{row.get('last_error') or 'unknown'}")  # fmt: skip
