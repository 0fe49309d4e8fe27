"""New articles decided as a batch (issue 3: a cycle of 20,000 new entries must not be
20,000 candidate lookups): one poll's, or those of the polls a cycle finished preparing
together, in order.

::

    look up candidates   up to CHUNK articles in four statements    storage
    one transaction, for each article in order:
      add earlier ones   the chunk's articles stored before it      in memory
      decide, write      as ``Pipeline.store``                      pure + storage

The decisions are those of ``Pipeline.ingest`` one by one. The lookup
(``Repository.get_candidates_batch``) treats the earlier articles of the chunk as stored
already; each is then replaced by the candidate its stored row would read back as (its
id and story known once stored), and story merges made by earlier articles are applied
to the stories the lookup read.

The chunk is written in one transaction (a commit per article cost as much as the
writes). When another daemon stored one of its items meanwhile, or the database fails,
the transaction writes nothing and the chunk's articles are ingested one by one instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from ._prepare import item_key
from .errors import StorageError
from .types import Article, BatchCandidates, Candidate, Fingerprint

if TYPE_CHECKING:
    from .pipeline import CycleStats, Pipeline, Stored

__all__ = ["CHUNK", "Group", "ingest_batch", "ingest_groups"]

log = logging.getLogger("monitor.pipeline")

# Articles looked up together: the lookup returns about a thousand postings per article
# in a busy week. 200 held 40 MB more at the peak of an all-new cycle than 100, for the
# same time.
CHUNK = 100


Items = Sequence[tuple[Article, str | None, Fingerprint | None]]


class Group(NamedTuple):
    """One poll's new entries (article, item key, fingerprint or None), whether they are
    its source's backlog, and the time of the poll."""

    items: Items
    backlog: bool
    now: datetime


class _Item(NamedTuple):
    article: Article
    key: str | None
    fingerprint: Fingerprint | None
    backlog: bool
    now: datetime


def ingest_batch(pipeline: Pipeline, items: Items, *, backlog: bool, now: datetime,
                 stats: CycleStats | None = None,
                 watch: bool = True) -> list[int | None]:  # fmt: skip
    """Decide and store ``items`` (article, item key, fingerprint or None) in order.

    Returns:
        Each article's id, or None where the item was stored already.
    """
    return ingest_groups(pipeline, [Group(items, backlog, now)], stats=stats, watch=watch)[0]


def ingest_groups(pipeline: Pipeline, groups: Sequence[Group], *,
                  stats: CycleStats | None = None,
                  watch: bool = True) -> list[list[int | None]]:  # fmt: skip
    """``ingest_batch`` for several polls' entries, in order, as one stream of chunks: the
    polls that a cycle finished preparing together are looked up and written together,
    so many small feeds cost a few transactions, not one each.

    Returns:
        For each group, each article's id, or None where the item was stored already.
    """
    flat = [_Item(art, key, fp, g.backlog, g.now) for g in groups for art, key, fp in g.items]
    ids: list[int | None] = []
    for lo in range(0, len(flat), CHUNK):
        ids += _chunk(pipeline, flat[lo : lo + CHUNK], stats, watch)
    out, lo = [], 0
    for g in groups:
        out.append(ids[lo : lo + len(g.items)])
        lo += len(g.items)
    return out


def _chunk(p: Pipeline, items: Sequence[_Item], stats: CycleStats | None,
           watch: bool) -> list[int | None]:  # fmt: skip
    from . import dedupe
    from .pipeline import CycleStats

    timer = stats if stats is not None else CycleStats()
    keys = [it.key or item_key(it.article) for it in items]
    with timer.timed("store"):
        stored = p.repo.get_stored_items([(it.article.source, key) for it, key in
                                          zip(items, keys, strict=True)])  # fmt: skip
    if stored:  # by another daemon (a poll reads its own sources' stored items first)
        new = [n for n, (it, key) in enumerate(zip(items, keys, strict=True))
               if (it.article.source, key) not in stored]  # fmt: skip
        ids = dict(zip(new, _chunk(p, [items[n] for n in new], stats, watch),
                       strict=True))  # fmt: skip
        return [ids.get(n) for n in range(len(items))]
    with timer.timed("dedupe"):
        fps = [it.fingerprint or dedupe.fingerprint(it.article) for it in items]
        found = p.repo.get_candidates_batch([(fp, it.article.when) for it, fp in
                                             zip(items, fps, strict=True)], dedupe.WINDOW,
                                            dedupe.CANDIDATE_LIMIT,
                                            per_term=dedupe.TERM_POSTINGS)  # fmt: skip
    try:
        done = _in_one_transaction(p, items, fps, found, timer, watch)
    except StorageError as exc:
        # Another daemon stored one of the items meanwhile, or the database failed: the
        # chunk wrote nothing; each article is looked up, decided and stored on its own
        # (retried there on a transient error).
        log.info("batch.redo articles=%d reason=%s", len(items), exc)
        return [p.ingest(it.article, backlog=it.backlog, now=it.now, key=it.key, stats=stats,
                         watch=watch, fingerprint=fp)
                for it, fp in zip(items, fps, strict=True)]  # fmt: skip
    for one in done:
        p.report(one, stats)
    return [one.article_id for one in done]


def _in_one_transaction(p: Pipeline, items: Sequence[_Item], fps: Sequence[Fingerprint],
                        found: Sequence[BatchCandidates], timer: CycleStats,
                        watch: bool) -> list[Stored]:  # fmt: skip
    """Decide and write the chunk's articles in order, in one transaction."""
    overlay = _Overlay()
    out: list[Stored] = []
    with p.repo.transaction():
        for n, it in enumerate(items):
            done = p.write(it.article, backlog=it.backlog, now=it.now, key=it.key, stats=timer,
                           watch=watch, fingerprint=fps[n],
                           candidates=overlay.candidates(n, found[n]))  # fmt: skip
            if done.article_id is None or done.story_id is None:  # write() raises first
                raise StorageError(f"{it.article.source}: article not stored")
            overlay.stored(n, p.repo.as_candidate(done.intent, done.article_id, done.story_id),
                           done.merged)  # fmt: skip
            out.append(done)
        committing = time.perf_counter()
    timer.store_s += time.perf_counter() - committing
    return out


class _Overlay:
    """The chunk's articles stored so far, and the story merges they made."""

    def __init__(self) -> None:
        self.earlier: dict[int, Candidate] = {}
        self.merged: dict[int, int] = {}  # story -> the story it was merged into

    def stored(self, n: int, candidate: Candidate,
               merged: Sequence[tuple[int, int]]) -> None:  # fmt: skip
        self.earlier[n] = candidate
        for keep, other in merged:
            keep, other = self._story(keep), self._story(other)
            if keep != other:
                self.merged[other] = keep

    def candidates(self, n: int, found: BatchCandidates) -> list[Candidate]:
        """Article ``n``'s candidates: the stored ones the lookup found and the earlier
        articles of the chunk, each in the story it is in now."""
        cands = [*found.stored, *(self.earlier[i] for i in found.earlier)]
        if not self.merged:
            return cands
        return [replace(c, story_id=self._story(c.story_id)) for c in cands]

    def _story(self, story_id: int) -> int:
        for _ in range(100):
            if story_id not in self.merged:
                break
            story_id = self.merged[story_id]
        return story_id
