"""The counts and stage seconds of one poll cycle (``CycleStats``), logged as its
``cycle.done`` line and added to the metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

from .types import DecisionKind

__all__ = ["CycleStats", "count_decision"]


@dataclass
class CycleStats:
    sources: int = 0
    failed: int = 0
    not_modified: int = 0
    entries: int = 0
    new: int = 0
    duplicates: int = 0
    rereports: int = 0
    matches: int = 0
    alerts: int = 0
    # Seconds of work per stage (issue 9): where a cycle's time goes. Parse, normalize and
    # the fingerprint part of dedupe may run in worker processes beside the rest, so the
    # stages can add up to more than the cycle's wall time. ``fetch`` is the time spent
    # waiting for answers (not the sum of all requests); ``wait`` the time spent waiting
    # for the workers with nothing else to do.
    fetch_s: float = 0.0
    parse_s: float = 0.0
    normalize_s: float = 0.0
    dedupe_s: float = 0.0
    match_s: float = 0.0
    store_s: float = 0.0
    wait_s: float = 0.0

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time the block takes to ``{stage}_s``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            name = f"{stage}_s"
            setattr(self, name, getattr(self, name) + time.perf_counter() - start)

    def summary(self) -> str:
        """``key=value`` for every field, seconds rounded to milliseconds."""
        return " ".join(f"{f.name}={_shown(getattr(self, f.name))}" for f in fields(self))


def _shown(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def count_decision(stats: CycleStats, kind: DecisionKind, matches: int, alerts: int) -> None:
    """Count one stored article's decision, matches and alerts in ``stats``."""
    if kind is DecisionKind.NEW:
        stats.new += 1
    elif kind is DecisionKind.DUPLICATE:
        stats.duplicates += 1
    else:
        stats.rereports += 1
    stats.matches += matches
    stats.alerts += alerts
