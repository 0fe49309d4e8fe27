"""One claimed batch of sources in flight (the inside of ``Pipeline._poll_batch``).

::

    fetch answers          threads (``fetch_all``), handled as they complete
      304 / failure        a poll outcome at once, no parsing
      200                  parse + item keys            inline (or worker process)
    drop seen keys         one query per source                         storage
      nothing new          a poll outcome
      new entries          normalize + fingerprint      inline (or worker process)
    dedupe, match, store   the polls prepared meanwhile together:        storage
                           candidates looked up and articles written
                           per chunk of articles (``_batch``)
    poll outcomes          one transaction for the whole batch          storage

At most ``PARSES_IN_FLIGHT`` parses are queued in the pool, so the preparation of new
entries (which this process is waiting for) never queues behind every document of a
large batch, and at most ``WAITING_MAX`` fetched documents wait for a parse, so a batch
of thousands of sources holds a few dozen documents in memory, not all of them. Each
source's failure is a value: it becomes that source's poll outcome, never the batch's.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import FetchError, MonitorError, ParseError
from .types import Entry, FeedState, Fetched, PollIntent, SourceState

if TYPE_CHECKING:
    from ._batch import Group
    from ._prepare import Workers
    from .pipeline import CycleStats, Pipeline

__all__ = ["PARSES_IN_FLIGHT", "POOL_MIN_ENTRIES", "WAITING_MAX", "BatchPoll"]

log = logging.getLogger("monitor.pipeline")

PARSES_IN_FLIGHT = 4  # parse jobs queued in the pool at once
# A batch works inline until it has met this many new entries, then in the worker
# processes: starting them (about a second) costs more than preparing a few entries,
# the usual cycle, where a few feeds gained an entry or two.
POOL_MIN_ENTRIES = 64
# Fetched documents held for parsing at most; past it no answer is taken from the
# fetcher, which then starts no new request: memory stays flat however many sources.
WAITING_MAX = 16


@dataclass(slots=True)
class _Poll:
    """One source between its fetch answer and its poll outcome."""

    source: SourceState
    state: FeedState
    fetched: Fetched
    now: datetime
    entries: int = 0
    keys: tuple[str, ...] = ()


class BatchPoll:
    """Drives one batch: fetch answers in, poll outcomes out (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, sources: dict[str, SourceState], stats: CycleStats,
                 workers: Callable[[], Workers]) -> None:  # fmt: skip
        self.p = pipeline
        self.sources = sources
        self.stats = stats
        self.new_entries = 0  # met so far, in this batch
        self._workers = workers
        self.polls: list[PollIntent] = []
        self.waiting: deque[_Poll] = deque()
        self.running: dict[Future[Any], tuple[Callable[[_Poll, Any], None], _Poll]] = {}
        self.parsing = 0  # parse jobs in self.running
        self.ready: list[tuple[_Poll, Group]] = []  # prepared, to store (_ingest_ready)

    def run(self, answers: Iterator[tuple[FeedState, Fetched | FetchError]]) -> None:
        fetching = True
        while fetching or self.waiting or self.running:
            self._finish_done()
            self._start_parses()
            if fetching and len(self.waiting) < WAITING_MAX:
                with self.stats.timed("fetch"):
                    answer = next(answers, None)
                if answer is None:
                    fetching = False
                else:
                    self._answer(*answer)
            elif self.running:
                with self.stats.timed("wait"):
                    wait(self.running, return_when=FIRST_COMPLETED)
        self._record()

    # -- steps -------------------------------------------------------------------------

    def _answer(self, state: FeedState, result: Fetched | FetchError) -> None:
        self.stats.sources += 1
        source, now = self.sources[state.name], self.p.clock()
        if isinstance(result, Exception):
            self._fail(source, result, now)
        elif result.not_modified:
            self.stats.not_modified += 1
            log.info("poll.not_modified source=%s", source.name)
            self.polls.append(PollIntent(**self._base(source, result, now), not_modified=True))
        else:
            self.waiting.append(_Poll(source, state, result, now))

    def _start_parses(self) -> None:
        from ._prepare import parse_keyed

        while self.waiting and (self.parsing < PARSES_IN_FLIGHT or not self._pooled()):
            poll = self.waiting.popleft()
            self.parsing += 1
            future = self._workers().submit(not self._pooled(), parse_keyed, poll.state,
                                            poll.fetched, poll.now)  # fmt: skip
            self.running[future] = (self._parsed, poll)

    def _pooled(self) -> bool:
        """Whether jobs go to the worker processes now (see ``POOL_MIN_ENTRIES``)."""
        return self.new_entries >= POOL_MIN_ENTRIES or self._workers().started

    def _finish_done(self) -> None:
        for future in [f for f in self.running if f.done()]:
            then, poll = self.running.pop(future)
            self.parsing -= then == self._parsed
            try:
                then(poll, future.result())
            except Exception as exc:
                self._fail(poll.source, exc, poll.now)
        self._ingest_ready()

    def _parsed(self, poll: _Poll, result: tuple[list[tuple[str, Entry]], int, float]) -> None:
        from ._prepare import prepare

        keyed, poll.entries, seconds = result
        self.stats.parse_s += seconds
        self.stats.entries += poll.entries
        with self.stats.timed("store"):
            seen = self.p.repo.get_seen_items(poll.source.name, [k for k, _ in keyed])
        new = [(k, e) for k, e in keyed if k not in seen]
        if not new:
            self._succeed(poll, 0)
            return
        poll.keys = tuple(k for k, _ in new)
        self.new_entries += len(new)
        future = self._workers().submit(not self._pooled(), prepare, [e for _, e in new],
                                        poll.now, not self._full_text(poll))  # fmt: skip
        self.running[future] = (self._prepared, poll)

    def _prepared(self, poll: _Poll, result: tuple[list[Any], float, float]) -> None:
        from ._batch import Group
        from .pipeline import with_full_text

        prepared, normalize_s, fingerprint_s = result
        self.stats.normalize_s += normalize_s
        self.stats.dedupe_s += fingerprint_s
        articles = [a for a, _ in prepared]
        if self._full_text(poll):
            articles = with_full_text(self.p.fetcher, articles, self.p.config)
        items = [(art, key, fp) for key, art, (_, fp) in
                 zip(poll.keys, articles, prepared, strict=True)]  # fmt: skip
        self.ready.append((poll, Group(items, self._backlog(poll), poll.now)))

    def _full_text(self, poll: _Poll) -> bool:
        """Whether the source's articles are fetched whole (and fingerprinted after)."""
        feed = self.p._feeds.get(poll.source.name)
        return feed is not None and feed.full_text and self.p.fetcher is not None

    def _backlog(self, poll: _Poll) -> bool:
        """Whether the poll is the source's first success, whose entries do not alert."""
        return poll.source.first_success is None and not self.p.config.alert_backlog

    def _ingest_ready(self) -> None:
        """Store the new entries of the polls prepared since the last call, together: when
        the daemon is the bottleneck, several finish while it stores the previous ones."""
        if not self.ready:
            return
        ready, self.ready = self.ready, []
        split = len(ready) > 1
        if split:
            try:
                found = self.p.ingest_groups([g for _, g in ready], stats=self.stats)
            except Exception as exc:  # one source's entries must fail that source alone
                log.info("batch.split polls=%d error=%s", len(ready), type(exc).__name__)
            else:
                for (poll, _), ids in zip(ready, found, strict=True):
                    self._succeed(poll, sum(i is not None for i in ids))
                return
        for poll, group in ready:  # entries stored before a failure are not stored again
            try:
                # ... but they were new to this poll (its seen items were left out), so
                # they count among its new entries.
                earlier = self._stored(group) if split else 0
                ids = self.p.ingest_groups([group], stats=self.stats)[0]
            except Exception as exc:
                self._fail(poll.source, exc, poll.now)
            else:
                self._succeed(poll, earlier + sum(i is not None for i in ids))

    def _stored(self, group: Group) -> int:
        """How many of ``group``'s entries are stored already."""
        from ._prepare import item_key

        with self.stats.timed("store"):
            return len(self.p.repo.get_stored_items(
                [(art.source, key or item_key(art)) for art, key, _ in group.items]))  # fmt: skip

    def _succeed(self, poll: _Poll, new: int) -> None:
        log.info("poll.ok source=%s entries=%d new=%d backlog=%s", poll.source.name,
                 poll.entries, new, self._backlog(poll))  # fmt: skip
        self.polls.append(PollIntent(**self._base(poll.source, poll.fetched, poll.now),
                                     etag=poll.fetched.etag,
                                     last_modified=poll.fetched.last_modified,
                                     new_entries=new))  # fmt: skip

    def _fail(self, source: SourceState, exc: Exception, now: datetime) -> None:
        self.stats.failed += 1
        if isinstance(exc, FetchError | ParseError):
            pass
        elif isinstance(exc, MonitorError):
            log.error("poll.error source=%s", source.name, exc_info=exc)
        else:  # a bug met on one source must not stop the others
            log.critical("poll.crashed source=%s", source.name, exc_info=exc)
        self.polls.append(self.p._failure(source, exc, now))

    def _base(self, source: SourceState, fetched: Fetched, now: datetime) -> dict[str, Any]:
        return {"source": source.name, "polled_at": now, "ok": True,
                "new_url": fetched.permanent_url,
                "next_poll_at": self.p._next_poll(source.name, now)}  # fmt: skip

    def _record(self) -> None:
        """Write every poll outcome of the batch at once, then tell of health changes."""
        with self.stats.timed("store"):
            self.p.repo.record_polls(self.polls)
        if self.p.config.on_source_failure:
            for intent in self.polls:
                self.p._announce(intent.source, intent.polled_at)
