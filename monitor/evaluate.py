"""``monitor eval stories``: story-dedupe quality on labelled articles.

The rows go in file order through the daemon's own ingest path (normalize → dedupe →
store) on a fresh temporary SQLite store without seeds; the stories it forms are then
compared with the gold labels pair by pair.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Config, PollConfig
from .errors import ConfigError
from .normalize import normalize
from .types import Entry

__all__ = ["pair_counts", "pair_scores", "read_labelled", "run_eval"]

log = logging.getLogger("monitor.eval")


def read_labelled(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file, each with at least ``id``, ``story``, ``title``, ``text``.

    Raises:
        ConfigError: a line is not JSON or lacks a required field (names the line).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ConfigError(f"{path}:{n}: not a JSON object") from None
        missing = [k for k in ("id", "story", "title", "text") if k not in row]
        if not isinstance(row, dict) or missing:
            raise ConfigError(f"{path}:{n}: missing {', '.join(missing) or 'fields'}")
        yield row


def pair_counts(gold: list[Any], predicted: list[Any],
                topics: list[Any]) -> tuple[int, int, int, int, int]:  # fmt: skip
    """Pairs of articles counted by label, not pair by pair: in both the gold and the
    predicted story, in the predicted one only, in the gold one only, hard negatives
    (pairs of one topic, not None, but different gold stories) and those predicted as
    one story."""

    def pairs(*keys: list[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in Counter(zip(*keys, strict=True)).values())

    both = pairs(gold, predicted)
    topical = [n for n, t in enumerate(topics) if t is not None]
    topic = [topics[n] for n in topical]
    topic_gold, topic_pred = [gold[n] for n in topical], [predicted[n] for n in topical]
    hard = pairs(topic) - pairs(topic, topic_gold)
    merged = pairs(topic, topic_pred) - pairs(topic, topic_gold, topic_pred)
    return both, pairs(predicted) - both, pairs(gold) - both, hard, merged


def pair_scores(gold: list[str], predicted: list[Any],
                topics: list[str | None]) -> dict[str, float | None]:  # fmt: skip
    """Pairwise precision, recall, F1 and the hard-negative merge rate.

    A pair is two articles; it is positive in gold when they share a story label and
    predicted when they share a stored story. Hard negatives are pairs of one topic but
    different gold stories.
    """
    tp, fp, fn, negatives, merged_negatives = pair_counts(gold, predicted, topics)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    hard: float | None = None
    if any(t is not None for t in topics):
        hard = merged_negatives / negatives if negatives else 0.0
    return {"pairs_precision": round(precision, 4), "pairs_recall": round(recall, 4),
            "pairs_f1": round(f1, 4),
            "hard_negative_merge_rate": None if hard is None else round(hard, 4)}  # fmt: skip


def run_eval(path: Path, *, progress: Callable[[Iterable[Any]], Iterable[Any]] = iter
             ) -> dict[str, Any]:  # fmt: skip
    """Stream the labelled rows through dedupe on a temporary store and score the result."""
    from storage import make_repository

    from ._window import WINDOW
    from .pipeline import Pipeline

    rows = list(read_labelled(path))
    start = time.perf_counter()
    now = datetime.now(UTC)
    config = Config(database="", poll=PollConfig(), notifiers={}, aliases={}, feeds=(),
                    watchlists=())  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="monitor-eval-") as tmp:
        repo = make_repository(f"sqlite:///{tmp}/eval.db")
        try:
            pipeline = Pipeline(config, repo, clock=lambda: now)
            ids = [_ingest(pipeline, row, now) for row in progress(rows)]
            # As the daemon does once the stories' window has passed.
            pipeline.settle(now + WINDOW, limit=None)
            stories = [_story_of(repo, i) for i in ids]
        finally:
            repo.close()
    seconds = time.perf_counter() - start
    gold = [str(r["story"]) for r in rows]
    predicted = [s if s is not None else f"lost:{n}" for n, s in enumerate(stories)]
    topics = [str(r["topic"]) if r.get("topic") is not None else None for r in rows]
    return {**pair_scores(gold, predicted, topics), "articles": len(rows),
            "stories": len(set(predicted)), "gold_stories": len(set(gold)),
            "seconds": round(seconds, 2)}  # fmt: skip


def _story_of(repo: Any, article_id: int | None) -> int | None:
    row = repo.get_article(article_id) if article_id else None
    return None if row is None else int(row["story_id"])


def _ingest(pipeline: Any, row: dict[str, Any], now: datetime) -> int | None:
    published = _date(row.get("published"))
    entry = Entry(source=str(row.get("source") or "eval"), guid=str(row["id"]),
                  link=row.get("url") or None, title=str(row["title"]), summary=str(row["text"]),
                  published=published)  # fmt: skip
    article = normalize(entry, fetched=now, now=now)
    article_id: int | None = pipeline.ingest(article, backlog=True, now=now,
                                             key=f"eval:{row['id']}", watch=False)  # fmt: skip
    return article_id


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
