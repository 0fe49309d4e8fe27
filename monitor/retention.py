"""Retention: drop old article bodies, keep what dedupe needs.

``retention: {articles: 180d}`` empties the body of every article fetched more than 180
days ago, a batch per transaction, so the daemon's other writers are never held up for
long. The article row stays with its item key, fingerprint, story link, decision and
index rows: a pruned article that shows up again in a feed is still the same item (not
stored again, not alerted), and a copy under another URL is still a duplicate. Pruned
articles are left out of backtests (``monitor check``), which need the text.

Run daily by the daemon, and by hand with ``monitor prune``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

__all__ = ["prune"]

log = logging.getLogger("monitor.retention")


def prune(repo: Any, older_than: float, now: datetime, *, batch: int = 500) -> int:
    """Prune the bodies of articles fetched more than ``older_than`` seconds before ``now``.

    Args:
        repo: the storage.
        older_than: the retention period in seconds.
        now: the current UTC time.
        batch: articles per transaction.

    Returns:
        How many articles were pruned.
    """
    before = now - timedelta(seconds=older_than)
    total = 0
    while True:
        n = int(repo.prune_articles(before, limit=batch))
        total += n
        if n < batch:
            break
    log.info("retention.pruned articles=%d fetched_before=%s", total,
             before.isoformat(timespec="seconds"))  # fmt: skip
    return total
