"""Measure, fit and tune story dedupe on labelled news, in memory.

Streams a JSONL file of labelled articles (the ``monitor eval stories`` format: ``id``,
``story``, ``title``, ``text``, optional ``published``, ``url``, ``source``, ``topic``) in file
order through ``monitor.dedupe`` as the daemon does: fingerprint, retrieve candidates by the
retrieval contract (``monitor.dedupe`` docstring) from an in-memory store, decide, store;
at the end the stories still of one article settle (``dedupe.settle``), as the daemon's
settle job does once their window has passed.

It prints pairs precision/recall/F1 and the hard-negative merge rate (pairs of one ``topic``
but different stories that were merged) for the shipped thresholds, then cross-validates
the whole procedure by leaving topics out: for each fold, the pair model is fitted and the
thresholds tuned on the other folds' topics, and the held-out topics are scored with them.
``--fit`` also fits and tunes on the whole file and prints the ``Thresholds`` to ship.
``--guard FILE`` scores another labelled file under the shipped thresholds and the fitted
ones, without tuning to it: the benchmark corpus (``bench/cycle.py --export``), whose
different events share names by chance, shows whether a change merges more of them.
``--words N`` cuts every text to its first N words: many feeds carry only a summary of a
sentence or two, and a story must be told from those too.

Usage::

    .venv/bin/python bench/dedupe_tune.py ../shared/eval/stories_dev.jsonl [--folds 5]
        [--no-cv] [--fit] [--guard FILE ...] [--words N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import _scoring, dedupe
from monitor.evaluate import pair_counts
from monitor.types import Article, Candidate, Decision, Fingerprint

# Rows without a date are all "fetched" at this instant, so the window never parts them.
FETCHED = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled article."""

    id: str
    story: str
    topic: str | None
    article: Article


def load(path: Path, *, words: int | None = None) -> list[Row]:
    """Read a labelled JSONL file; with ``words``, each text is cut to its first ``words``
    words (the title stays whole), as a feed that carries only a summary gives it."""
    with path.open(encoding="utf-8") as fh:
        return [_row(json.loads(line), words) for line in fh if line.strip()]


def _row(obj: dict[str, Any], words: int | None = None) -> Row:
    published = None
    if obj.get("published"):
        published = datetime.fromisoformat(obj["published"])
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
    text = obj.get("text") or ""
    if words:
        text = " ".join(text.split()[:words])
    article = Article(
        source=obj.get("source") or "eval",
        title=obj.get("title") or "",
        body=text,
        url=obj.get("url"),
        link=obj.get("url"),
        guid=None,
        published=published,
        fetched=FETCHED,
    )
    return Row(str(obj["id"]), str(obj["story"]), obj.get("topic"), article)


def stored_copy(fp: Fingerprint) -> Fingerprint:
    """The fingerprint as storage hands it back: ``data`` through JSON and back."""
    return dataclasses.replace(fp, data=json.loads(json.dumps(fp.data)))


@dataclass(frozen=True, slots=True)
class Corpus:
    """Rows with their fingerprints, computed once, and as storage returns them."""

    rows: list[Row]
    fingerprints: list[Fingerprint]
    stored: list[Fingerprint]
    fingerprint_seconds: list[float]

    @classmethod
    def of(cls, rows: Sequence[Row]) -> Corpus:
        fps, times = [], []
        for row in rows:
            t0 = time.perf_counter()
            fps.append(dedupe.fingerprint(row.article))
            times.append(time.perf_counter() - t0)
        return cls(list(rows), fps, [stored_copy(fp) for fp in fps], times)

    def subset(self, indexes: Iterable[int]) -> Corpus:
        ix = sorted(indexes)
        return Corpus(
            [self.rows[i] for i in ix],
            [self.fingerprints[i] for i in ix],
            [self.stored[i] for i in ix],
            [self.fingerprint_seconds[i] for i in ix],
        )


@dataclass(slots=True)
class _Stored:
    article_id: int
    story_id: int
    when: datetime
    title: str
    fingerprint: Fingerprint


@dataclass(slots=True)
class MemoryStore:
    """The retrieval contract of ``monitor.dedupe``, with dicts for indexes."""

    articles: list[_Stored] = field(default_factory=list)
    by_key: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_band: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_term: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    next_story: int = 1

    def candidates(self, article: Article, fp: Fingerprint) -> list[Candidate]:
        """(a) a shared key, any age; (b) a shared band, any age; (c) top terms in window."""
        ids = {i for k in fp.keys for i in self.by_key.get(k, ())}
        ids.update(i for b in fp.bands for i in self.by_band.get(b, ()))
        ids.update(self._by_terms(article, fp))
        return [self._candidate(i) for i in sorted(ids)]

    def _by_terms(self, article: Article, fp: Fingerprint) -> list[int]:
        low, high = article.when - dedupe.WINDOW, article.when + dedupe.WINDOW
        shared: Counter[int] = Counter()
        for term in set(fp.terms):
            postings = [i for i in self.by_term.get(term, ()) if low <= self._when(i) <= high]
            postings.sort(key=self._latest)
            shared.update(postings[: dedupe.TERM_POSTINGS])
        ranked = sorted(shared, key=lambda i: (-shared[i], *self._latest(i)))
        return ranked[: dedupe.CANDIDATE_LIMIT]

    def _when(self, i: int) -> datetime:
        return self.articles[i].when

    def _latest(self, i: int) -> tuple[float, int]:
        return -self.articles[i].when.timestamp(), -i

    def _candidate(self, i: int) -> Candidate:
        s = self.articles[i]
        return Candidate(s.article_id, s.story_id, s.when, s.title, s.fingerprint)

    def add(self, article: Article, fp: Fingerprint, decision: Decision) -> int:
        """Store the article in the story the decision names (a new one when NEW), then
        merge the fragments it names into that story, as ``Pipeline.ingest`` does."""
        story_id = decision.story_id
        if story_id is None:
            story_id, self.next_story = self.next_story, self.next_story + 1
        self.put(article, fp, story_id)
        for other in decision.merge_story_ids:
            self.merge(story_id, other)
        return story_id

    def merge(self, keep: int, other: int) -> None:
        """Move every article of story ``other`` into ``keep`` (``merge_stories``)."""
        for stored in self.articles:
            if stored.story_id == other:
                stored.story_id = keep

    def stories(self) -> list[int]:
        """The story of each stored article now, in the order they were stored."""
        return [stored.story_id for stored in self.articles]

    def put(self, article: Article, fp: Fingerprint, story_id: int) -> int:
        """Store the article in ``story_id``; returns the story id."""
        i = len(self.articles)
        self.articles.append(_Stored(i, story_id, article.when, article.title, fp))
        for k in fp.keys:
            self.by_key[k].append(i)
        for b in fp.bands:
            self.by_band[b].append(i)
        for t in set(fp.terms):
            self.by_term[t].append(i)
        return story_id


@dataclass(frozen=True, slots=True)
class Run:
    """One stream: the story of each row at the end, each decision, and how long it took."""

    stories: list[int]
    decisions: list[Decision]
    seconds: float
    decide_seconds: list[float]


def stream(corpus: Corpus, thresholds: dedupe.Thresholds = dedupe.THRESHOLDS) -> Run:
    """Feed the corpus in order through retrieval and ``decide``, as the daemon would."""
    store = MemoryStore()
    decisions, timings = [], []
    start = time.perf_counter()
    for row, fp, kept in zip(corpus.rows, corpus.fingerprints, corpus.stored, strict=True):
        t0 = time.perf_counter()
        cands = store.candidates(row.article, fp)
        decision = dedupe.decide(row.article, fp, cands, thresholds=thresholds)
        timings.append(time.perf_counter() - t0)
        decisions.append(decision)
        store.add(row.article, kept, decision)
    settle(store, corpus, thresholds)
    seconds = time.perf_counter() - start + sum(corpus.fingerprint_seconds)
    return Run(store.stories(), decisions, seconds, timings)


def settle(store: MemoryStore, corpus: Corpus,
           thresholds: dedupe.Thresholds = dedupe.THRESHOLDS) -> int:  # fmt: skip
    """Once every window has passed, each story still of one article, oldest first, joins
    the story ``dedupe.settle`` names, as ``Pipeline.settle`` does; returns how many."""
    sizes = Counter(store.stories())
    moved = 0
    for i, (row, fp) in enumerate(zip(corpus.rows, corpus.fingerprints, strict=True)):
        own = store.articles[i].story_id
        if sizes[own] != 1:
            continue
        found = dedupe.settle(row.article, fp, own, store.candidates(row.article, fp),
                              thresholds=thresholds)  # fmt: skip
        if found is not None and found.story_id is not None:
            store.merge(found.story_id, own)
            sizes[found.story_id] += 1
            sizes[own] = 0
            moved += 1
    return moved


@dataclass(frozen=True, slots=True)
class Scores:
    """Pair metrics of one story assignment."""

    precision: float
    recall: float
    f1: float
    hard_negative_merge_rate: float | None
    tp: int
    fp: int
    fn: int
    hard_negatives: int
    hard_merged: int

    def line(self) -> str:
        hn = self.hard_negative_merge_rate
        hn_text = "n/a" if hn is None else f"{hn:.3f} ({self.hard_merged}/{self.hard_negatives})"
        return (
            f"P {self.precision:.3f}  R {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"hard-negative merges {hn_text}"
        )


def score(rows: Sequence[Row], stories: Sequence[int], scope: set[int] | None = None) -> Scores:
    """Pairs precision/recall/F1 and hard-negative merge rate of a story assignment.

    With ``scope``, only pairs with at least one row in it count (cross-validation).
    """
    counts = _pair_counts(rows, stories, range(len(rows)))
    if scope is not None:  # less the pairs of two rows outside it
        outside = _pair_counts(rows, stories, [i for i in range(len(rows)) if i not in scope])
        counts = [a - b for a, b in zip(counts, outside, strict=True)]
    return _scores(*counts, any(r.topic for r in rows))


def _pair_counts(rows: Sequence[Row], stories: Sequence[int],
                 indexes: Iterable[int]) -> list[int]:  # fmt: skip
    """``pair_counts`` (true positive, false positive and false negative pairs,
    hard-negative pairs and those merged) among the rows ``indexes``."""
    ix = list(indexes)
    return list(pair_counts([rows[i].story for i in ix], [stories[i] for i in ix],
                            [rows[i].topic for i in ix]))  # fmt: skip


def _scores(tp: int, fp: int, fn: int, hard: int, merged: int, topics: bool) -> Scores:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    rate = merged / hard if topics and hard else None
    return Scores(p, r, f1, rate, tp, fp, fn, hard, merged)


@contextmanager
def memoised_pairs() -> Iterator[None]:
    """Cache pair features while tuning re-streams a corpus (they depend on it alone).

    Keys are object ids of fingerprint data, which a ``Corpus`` keeps alive.
    """
    original = _scoring._pair_features
    cache: dict[tuple[int, int], Any] = {}

    def features(a: Any, b: Any) -> Any:
        key = (id(a), id(b))
        if key not in cache:
            cache[key] = original(a, b)
        return cache[key]

    _scoring._pair_features = features
    try:
        yield
    finally:
        _scoring._pair_features = original


def training_pairs(corpus: Corpus) -> tuple[list[tuple[float, ...]], list[int]]:
    """Pair features and labels of every level-3 comparison in a gold-clustered stream.

    The stream stores each article in its gold story, so the comparisons are those a
    perfect dedupe would make.
    """
    store = MemoryStore()
    gold: dict[str, int] = {}
    xs: list[tuple[float, ...]] = []
    ys: list[int] = []
    for row, fp, kept in zip(corpus.rows, corpus.fingerprints, corpus.stored, strict=True):
        story_id = gold.setdefault(row.story, len(gold) + 1)
        for cand, p in dedupe.compare(row.article, fp, store.candidates(row.article, fp)):
            xs.append(p.features)
            ys.append(int(cand.story_id == story_id))
        store.put(row.article, kept, story_id)
    return xs, ys


@dataclass(frozen=True, slots=True)
class Recall:
    """How well retrieval finds an article's own story (gold-clustered stream)."""

    articles: int  # articles with an earlier member of their story within the window
    found: int  # ... whose candidates hold at least one of those members
    closest: float  # mean share of the story's (up to) STORY_MEMBERS closest members found
    terms: float  # mean lookup terms per article
    candidates: float  # mean candidates per article

    def line(self) -> str:
        return (
            f"story found {self.found / max(1, self.articles):.4f} "
            f"({self.articles - self.found} missed of {self.articles}), closest members "
            f"found {self.closest:.4f}; {self.terms:.1f} lookup terms, "
            f"{self.candidates:.1f} candidates per article"
        )


def candidate_recall(corpus: Corpus) -> Recall:
    """Whether the retrieval contract hands ``decide`` the story an article belongs to.

    Stores each article in its gold story and asks, for each article with earlier members
    of its story within the window, whether its candidates include one of them, and which
    share of the members that score closest to it (of all members, retrieved or not).
    """
    store = MemoryStore()
    gold: dict[str, int] = {}
    articles = found = 0
    shares: list[float] = []
    terms = cands = 0
    for row, fp, kept in zip(corpus.rows, corpus.fingerprints, corpus.stored, strict=True):
        story_id = gold.setdefault(row.story, len(gold) + 1)
        ids = {c.article_id for c in store.candidates(row.article, fp)}
        terms, cands = terms + len(fp.terms), cands + len(ids)
        members = [store._candidate(s.article_id) for s in store.articles if s.story_id == story_id]
        compared = dedupe.compare(row.article, fp, members)
        if compared:
            articles += 1
            found += any(c.article_id in ids for c, _ in compared)
            closest = sorted(compared, key=lambda cp: (-cp[1].logit, cp[0].article_id))
            closest = closest[: _scoring.STORY_MEMBERS]
            shares.append(sum(c.article_id in ids for c, _ in closest) / len(closest))
        store.put(row.article, kept, story_id)
    n = max(1, len(corpus.rows))
    return Recall(articles, found, math.fsum(shares) / max(1, len(shares)), terms / n, cands / n)


def fit_logistic(
    xs: Sequence[Sequence[float]], ys: Sequence[int], l2: float = 1.0, iterations: int = 30
) -> tuple[float, tuple[float, ...]]:
    """L2-regularised logistic regression by Newton's method (the bias is not penalised)."""
    k = len(xs[0]) + 1
    beta = [0.0] * k
    rows = [(1.0, *x) for x in xs]
    for _ in range(iterations):
        grad = [0.0] * k
        hess = [[0.0] * k for _ in range(k)]
        for x, y in zip(rows, ys, strict=True):
            z = math.fsum(b * v for b, v in zip(beta, x, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            r, w = p - y, p * (1.0 - p)
            for i in range(k):
                if x[i]:
                    grad[i] += r * x[i]
                    wi, row = w * x[i], hess[i]
                    for j in range(i, k):
                        row[j] += wi * x[j]
        for i in range(1, k):
            grad[i] += l2 * beta[i]
            hess[i][i] += l2
        for i in range(k):
            for j in range(i):
                hess[i][j] = hess[j][i]
        step = _solve(hess, grad)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-7:
            break
    return round(beta[0], 3), tuple(round(b, 3) for b in beta[1:])


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    # Gaussian elimination with partial pivoting; the system is features + 1 wide.
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def fit(corpus: Corpus) -> _scoring.Model:
    """Fit the pair model on ``corpus``."""
    with memoised_pairs():
        xs, ys = training_pairs(corpus)
    bias, weights = fit_logistic(xs, ys)
    return _scoring.Model(bias, weights)


# Tuning tries every combination: the story score's mix, and the joining threshold.
GRID: dict[str, tuple[float, ...]] = {
    "best_share": (0.0, 0.3, 0.5, 0.75, 1.0),
    "same_story": tuple(round(0.5 + 0.025 * i, 3) for i in range(19)),
}
# Tuning keeps the hard-negative merge rate under this on the training topics, leaving
# room under the 3% target for topics it has not seen.
HARD_NEGATIVE_BUDGET = 0.02


def tune(
    corpus: Corpus, model: _scoring.Model, log: Callable[[str], None] = lambda _: None
) -> tuple[dedupe.Thresholds, Scores]:
    """The grid point with the best F1 whose hard-negative rate stays within budget."""
    results = []
    with memoised_pairs():
        for share in GRID["best_share"]:
            for same in GRID["same_story"]:
                t = dataclasses.replace(
                    dedupe.THRESHOLDS, model=model, best_share=share, same_story=same
                )
                results.append((t, score(corpus.rows, stream(corpus, t).stories)))
    within = [r for r in results if (r[1].hard_negative_merge_rate or 0.0) <= HARD_NEGATIVE_BUDGET]
    if within:
        best = max(within, key=lambda r: (r[1].f1, -r[0].same_story))
    else:
        best = min(results, key=lambda r: (r[1].hard_negative_merge_rate or 0.0, -r[1].f1))
    log(
        f"  tuned best_share={best[0].best_share} same_story={best[0].same_story}: {best[1].line()}"
    )
    return best


def folds(rows: Sequence[Row], k: int, seed: int = 0) -> list[set[int]]:
    """Split row indexes into ``k`` folds by topic (a topic never spans two folds)."""
    topics = sorted({r.topic or r.story for r in rows})
    random.Random(seed).shuffle(topics)
    fold_of = {t: n % k for n, t in enumerate(topics)}
    out: list[set[int]] = [set() for _ in range(k)]
    for i, r in enumerate(rows):
        out[fold_of[r.topic or r.story]].add(i)
    return out


def cross_validate(corpus: Corpus, k: int, log: Callable[[str], None]) -> Scores:
    """Leave-topics-out CV of fitting and tuning; scores pooled over the held-out folds.

    Each held-out fold is scored on a stream of the whole file (the other topics'
    articles act as distractors) under the model and thresholds chosen without it.
    """
    totals = Counter[str]()
    rows = corpus.rows
    for n, test in enumerate(folds(rows, k)):
        train = corpus.subset(i for i in range(len(rows)) if i not in test)
        log(f"fold {n}: {len(test)} held-out articles, {len({rows[i].topic for i in test})} topics")
        chosen, _ = tune(train, fit(train), log)
        s = score(rows, stream(corpus, chosen).stories, scope=test)
        log(f"  held out: {s.line()}")
        totals.update(tp=s.tp, fp=s.fp, fn=s.fn, hard=s.hard_negatives, merged=s.hard_merged)
    return _scores(totals["tp"], totals["fp"], totals["fn"], totals["hard"], totals["merged"], True)


def summary(rows: Sequence[Row], run: Run) -> dict[str, Any]:
    """The ``monitor eval stories`` last-line object for one run, plus decision timing."""
    s = score(rows, run.stories)
    kinds = Counter(f"{d.kind.value}{d.level or ''}" for d in run.decisions)
    return {
        "pairs_precision": round(s.precision, 4),
        "pairs_recall": round(s.recall, 4),
        "pairs_f1": round(s.f1, 4),
        "hard_negative_merge_rate": (
            None if s.hard_negative_merge_rate is None else round(s.hard_negative_merge_rate, 4)
        ),
        "articles": len(rows),
        "stories": len(set(run.stories)),
        "seconds": round(run.seconds, 3),
        "decisions": dict(sorted(kinds.items())),
    }


def _ms(values: Sequence[float], q: float) -> str:
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure, fit and tune story dedupe.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    parser.add_argument("--fit", action="store_true", help="fit and tune on the whole file")
    parser.add_argument("--guard", type=Path, action="append", default=[], metavar="FILE",
                        help="also score this labelled file with the shipped thresholds "
                        "and, with --fit, the fitted ones (repeatable)")  # fmt: skip
    parser.add_argument("--words", type=int, default=None, metavar="N",
                        help="cut every text (of FILE and the guards) to its first N words, "
                        "as summary-only feeds carry them")  # fmt: skip
    args = parser.parse_args(argv)
    log = print

    corpus = Corpus.of(load(args.file, words=args.words))
    guards = [(path, Corpus.of(load(path, words=args.words))) for path in args.guard]
    run = stream(corpus)
    log(f"shipped thresholds: {score(corpus.rows, run.stories).line()}")
    for path, guard in guards:
        log(f"  on {path.name}: {score(guard.rows, stream(guard).stories).line()}")
    log(f"retrieval: {candidate_recall(corpus).line()}")
    log(
        f"per article: fingerprint median {_ms(corpus.fingerprint_seconds, 0.5)}, "
        f"p99 {_ms(corpus.fingerprint_seconds, 0.99)}; retrieve+decide median "
        f"{_ms(run.decide_seconds, 0.5)}, p99 {_ms(run.decide_seconds, 0.99)}"
    )
    if args.fit:
        chosen, s = tune(corpus, fit(corpus))
        log(f"fitted and tuned on the whole file: {s.line()}")
        log(f"  {chosen!r}")
        for path, guard in guards:
            log(f"  on {path.name}: {score(guard.rows, stream(guard, chosen).stories).line()}")
    if not args.no_cv:
        cv = cross_validate(corpus, args.folds, log)
        log(f"cross-validated ({args.folds} folds by topic, pooled): {cv.line()}")
    log(json.dumps(summary(corpus.rows, run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
