"""Progress of long operations: a bar on a terminal, plain log lines otherwise.

Used by the backtest over the store (``monitor check``), ``monitor eval stories`` and
polls of many sources (``monitor run --once``, the daemon's first cycle). Standard error
decides: a terminal gets a rich progress bar (log lines scroll above it); anything else
(a file, a pipe, a service manager's journal) gets a ``progress.update`` line at every
tenth of the work and a ``progress.done`` line at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

__all__ = ["Tracker", "due_sources", "on_terminal", "track", "track_polls"]

log = logging.getLogger("monitor.progress")

T = TypeVar("T")
POLL_EVENTS = ("poll.ok ", "poll.not_modified ", "poll.failed ")  # one of them per source


def on_terminal() -> bool:
    """Whether standard error is a terminal (then a bar is drawn)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Tracker:
    """Counts done steps of one task and shows them (bar or log lines).

    Args:
        task: what is being done, e.g. ``backtest``.
        total: how many steps there will be, if known.
    """

    def __init__(self, task: str, total: int | None) -> None:
        self.task, self.total, self.done = task, total, 0
        self._started = time.monotonic()
        self._next_log = 0.1
        self._bar: Any = None
        self._bar_task: Any = None
        if on_terminal():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True))  # fmt: skip
            self._bar.start()
            self._bar_task = self._bar.add_task(task, total=total)

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=self.done)
        elif self.total and self.done / self.total >= self._next_log and self.done < self.total:
            log.info("progress.update task=%s done=%d total=%d", self.task, self.done,
                     self.total)  # fmt: skip
            while self._next_log <= self.done / self.total:
                self._next_log += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        log.info("progress.done task=%s done=%d seconds=%.1f", self.task, self.done,
                 time.monotonic() - self._started)  # fmt: skip


def track(items: Iterable[T], *, task: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while showing how many have been handled.

    Args:
        items: the work.
        task: its name in the bar or log lines.
        total: the number of items (``len(items)`` when it has one).
    """
    if total is None and isinstance(items, Sized):
        total = len(items)
    tracker = Tracker(task, total)
    try:
        for item in items:
            yield item
            tracker.advance()
    finally:
        tracker.close()


def due_sources(repo: Any, now: datetime, *, all_enabled: bool = False) -> int:
    """How many sources a poll cycle at ``now`` would claim (for progress totals)."""
    n = 0
    for row in repo.get_sources():
        if not row["enabled"] or row["disabled_reason"]:
            continue
        retry_after = row["retry_after_until"]
        if all_enabled and (retry_after is None or retry_after <= now):
            n += 1
        elif not all_enabled and row["next_poll_at"] <= now:
            n += 1
    return n


@contextmanager
def track_polls(total: int, *, task: str = "poll") -> Iterator[Tracker]:
    """Show the progress of one poll cycle of ``total`` sources.

    The pipeline logs exactly one of ``poll.ok``, ``poll.not_modified`` or
    ``poll.failed`` per polled source; those records advance the tracker, so the poll
    code itself needs no progress hook.
    """
    tracker = Tracker(task, total)
    handler = _PollCounter(tracker)
    source = logging.getLogger("monitor.pipeline")
    source.addHandler(handler)
    try:
        yield tracker
    finally:
        source.removeHandler(handler)
        tracker.close()


class _PollCounter(logging.Handler):
    def __init__(self, tracker: Tracker) -> None:
        super().__init__(logging.DEBUG)
        self.tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith(POLL_EVENTS):
            self.tracker.advance()
