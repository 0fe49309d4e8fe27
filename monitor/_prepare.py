"""The pure, CPU-bound part of a poll, run beside the pipeline in worker processes.

Issue 9: parsing, normalising and fingerprinting are pure functions of the fetched bytes,
so a cycle with many changed sources runs them in a process pool across the CPUs while
the pipeline's own process does the storage work. Two steps per source, so that items
already stored cost nothing beyond parsing:

1. ``parse_keyed``: the document's entries with their item keys (no text cleaning: a key
   is the GUID or the canonical link);
2. (the pipeline drops the keys already stored, one query per source)
3. ``prepare``: the new entries normalised and, unless told not to, fingerprinted.

``Workers`` runs both in a pool, or in the calling thread (``monitor._poll`` decides;
always with ``poll.parse_workers: 0``); the results are the same either way.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from monitor.types import Article, Entry, FeedState, Fetched, Fingerprint

__all__ = ["Prepared", "Workers", "entry_key", "item_key", "parse_keyed", "prepare", "tune_gc"]

T = TypeVar("T")
Prepared = list[tuple[Article, Fingerprint | None]]


def item_key(article: Article) -> str:
    """A source's identity for an item: its GUID, else its canonical link, else its text."""
    if article.guid:
        return f"g:{article.guid}"[:500]
    if article.url:
        return f"u:{article.url}"[:500]
    digest = hashlib.sha256(f"{article.title}\n{article.body}".encode()).hexdigest()
    return f"h:{digest}"


def entry_key(entry: Entry, now: datetime) -> str:
    """``item_key(normalize(entry))``, without cleaning the entry's text when it has a GUID
    or a link (the usual case)."""
    from monitor._canonical_url import canonical_url
    from monitor.normalize import normalize

    guid = _clean_ref(entry.guid)
    if guid:
        return f"g:{guid}"[:500]
    link = _clean_ref(entry.link)
    url = canonical_url(link) if link else None
    if url:
        return f"u:{url}"[:500]
    return item_key(normalize(entry, fetched=now, now=now))


def _clean_ref(value: str | None) -> str | None:
    # As normalize does for links and GUIDs.
    from monitor.normalize import strip_invalid

    return (strip_invalid(value).strip() or None) if value is not None else None


def parse_keyed(state: FeedState, fetched: Fetched,
                now: datetime) -> tuple[list[tuple[str, Entry]], int, float]:  # fmt: skip
    """The document's entries by item key (the last of a repeated key wins, at the place
    of the first), how many entries the document has, and the seconds it took.

    Raises:
        ParseError: as ``parse_feed`` / ``parse_page``.
    """
    from monitor.parse import parse_feed, parse_page

    start = time.perf_counter()
    if state.type == "page":
        entries = parse_page(fetched, state.name, state.select or "a")
    else:
        entries = parse_feed(fetched, state.name)
    keyed = {entry_key(e, now): e for e in entries}
    return list(keyed.items()), len(entries), time.perf_counter() - start


def prepare(entries: Sequence[Entry], now: datetime,
            fingerprints: bool) -> tuple[Prepared, float, float]:  # fmt: skip
    """The entries normalised (and fingerprinted), with the seconds each step took."""
    from monitor.normalize import normalize

    start = time.perf_counter()
    articles = [normalize(e, fetched=now, now=now) for e in entries]
    normalized = time.perf_counter()
    if not fingerprints:
        return [(a, None) for a in articles], normalized - start, 0.0
    from monitor import dedupe

    out: Prepared = [(a, dedupe.fingerprint(a)) for a in articles]
    return out, normalized - start, time.perf_counter() - normalized


# Allocations between young-generation collections (CPython's default is 700). A poll
# cycle makes and keeps many small containers (articles, fingerprints, candidates); with
# the default, the cyclic collector took a fifth of an all-new cycle.
GC_YOUNG = 50_000


def tune_gc() -> None:
    """Collect cycles less often in a long-running process: what is loaded so far
    (modules, word tables) is frozen out of every later collection, and the young
    generation is collected after ``GC_YOUNG`` allocations. Memory is still freed by
    reference counting as before; only garbage in cycles waits longer."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 20)


class Workers:
    """Runs ``parse_keyed`` and ``prepare`` in worker processes, or inline.

    Workers are never forked from the daemon with its threads and database connections:
    several are forked from a clean server process (``forkserver``) that loads the
    parsers and dedupe's word tables once, so that they share them; a single one is
    started afresh (``spawn``) and loads them itself, with no server kept beside it. The
    pool starts on the first job sent to it, and a broken pool (a worker killed) is
    replaced on the next one.

    Args:
        processes: worker processes; None for one per CPU but one (the daemon's own
            process is busy deciding and storing meanwhile), 0 to run every job inline.
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = max(1, (os.cpu_count() or 1) - 1) if processes is None else processes
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether the worker processes are running."""
        return self._pool is not None

    def submit(self, inline: bool, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the pool, or now when ``inline`` (or without workers)."""
        if inline or self.processes <= 0:
            return _run_now(fn, *args)
        try:
            return self._get_pool().submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):
            self.close()
            return self._get_pool().submit(fn, *args)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            if self.processes == 1:  # nothing to share: no fork server to keep beside it
                spawn = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, mp_context=spawn, initializer=_preload)
            else:
                forkserver = multiprocessing.get_context("forkserver")
                forkserver.set_forkserver_preload(["monitor._worker_preload"])
                self._pool = ProcessPoolExecutor(self.processes, mp_context=forkserver)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (waiting for running jobs)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _preload() -> None:
    import monitor._worker_preload  # noqa: F401


def _run_now(fn: Callable[..., T], *args: Any) -> Future[T]:
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future
