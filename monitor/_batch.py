"""A poll's new articles decided as a batch (issue 3: a cycle of 20,000 new entries must
not be 20,000 candidate lookups).

::

    look up candidates   up to CHUNK articles in four statements    storage
    for each, in order:
      add earlier ones   the chunk's articles stored before it      in memory
      decide, store      as ``Pipeline.store`` (one transaction)    pure + storage

The decisions are those of ``Pipeline.ingest`` one by one. The lookup
(``Repository.get_candidates_batch``) treats the earlier articles of the chunk as stored
already; each is then replaced by the candidate its stored row would read back as (its
id and story known once stored), and story merges made by earlier articles are applied
to the stories the lookup read. An article whose lookup counted on an earlier article
that was not stored after all (another daemon had stored the item) is looked up alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from .types import Article, BatchCandidates, Candidate, Fingerprint

if TYPE_CHECKING:
    from .pipeline import CycleStats, Pipeline

__all__ = ["CHUNK", "ingest_batch"]

# Articles looked up together: the lookup binds about 70 values per article (padded up
# to twice that), under the 32,766 parameters of one SQLite statement.
CHUNK = 200


Items = Sequence[tuple[Article, str | None, Fingerprint | None]]


def ingest_batch(pipeline: Pipeline, items: Items, *, backlog: bool, now: datetime,
                 stats: CycleStats | None = None,
                 watch: bool = True) -> list[int | None]:  # fmt: skip
    """Decide and store ``items`` (article, item key, fingerprint or None) in order.

    Returns:
        Each article's id, or None where the item was stored already.
    """
    out: list[int | None] = []
    for lo in range(0, len(items), CHUNK):
        out += _chunk(pipeline, items[lo : lo + CHUNK], backlog, now, stats, watch)
    return out


def _chunk(p: Pipeline, items: Items, backlog: bool, now: datetime, stats: CycleStats | None,
           watch: bool) -> list[int | None]:  # fmt: skip
    from . import dedupe
    from .pipeline import CycleStats

    timer = stats if stats is not None else CycleStats()
    with timer.timed("dedupe"):
        fps = [fp or dedupe.fingerprint(art) for art, _, fp in items]
        found = p.repo.get_candidates_batch([(fp, art.when) for (art, _, _), fp in
                                             zip(items, fps, strict=True)], dedupe.WINDOW,
                                            dedupe.CANDIDATE_LIMIT,
                                            per_term=dedupe.TERM_POSTINGS)  # fmt: skip
    overlay = _Overlay(fps)
    out: list[int | None] = []
    for n, (art, key, _) in enumerate(items):
        done = p.store(art, backlog=backlog, now=now, key=key, stats=stats, watch=watch,
                       fingerprint=fps[n], candidates=overlay.candidates(n, found[n]))  # fmt: skip
        cand = None
        if done.article_id is not None and done.story_id is not None:
            cand = p.repo.as_candidate(done.intent, done.article_id, done.story_id)
        overlay.stored(n, cand, done.merged)
        out.append(done.article_id)
    return out


class _Overlay:
    """The chunk's articles stored so far, and the story merges they made."""

    def __init__(self, fps: Sequence[Fingerprint]) -> None:
        self.fps = fps
        self.earlier: dict[int, Candidate] = {}
        self.missing: set[int] = set()  # positions not stored (already were)
        self.merged: dict[int, int] = {}  # story -> the story it was merged into

    def stored(self, n: int, candidate: Candidate | None,
               merged: Sequence[tuple[int, int]]) -> None:  # fmt: skip
        if candidate is None:
            self.missing.add(n)
        else:
            self.earlier[n] = candidate
        for keep, other in merged:
            keep, other = self._story(keep), self._story(other)
            if keep != other:
                self.merged[other] = keep

    def candidates(self, n: int, found: BatchCandidates) -> list[Candidate] | None:
        """Article ``n``'s candidates, or None when it must be looked up alone."""
        if any(_shared(self.fps[n], self.fps[i]) for i in self.missing):
            # The lookup counted an article that is not stored: another daemon stored the
            # item, which this article should see instead.
            return None
        cands = [*found.stored, *(self.earlier[i] for i in found.earlier if i in self.earlier)]
        if not self.merged:
            return cands
        return [replace(c, story_id=self._story(c.story_id)) for c in cands]

    def _story(self, story_id: int) -> int:
        for _ in range(100):
            if story_id not in self.merged:
                break
            story_id = self.merged[story_id]
        return story_id


def _shared(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether ``b`` could be among ``a``'s candidates, or change which are."""
    return any(set(x).intersection(y) for x, y in
               ((a.keys, b.keys), (a.bands, b.bands), (a.terms, b.terms)))  # fmt: skip
