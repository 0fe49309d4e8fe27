"""CPU time per entry of the pure per-article steps: normalize, fingerprint, decide.

Run by hand from the repository root (on a shared machine, under ``nice``)::

    nice -n 10 .venv/bin/python bench/prepare.py                 # 100 feeds, 3 rounds
    nice -n 10 .venv/bin/python bench/prepare.py --feeds 200 --rounds 5

The entries are ``bench/cycle.py``'s deterministic corpus of ``--feeds`` feeds (built in
memory, no server), parsed as the pipeline parses them (``parse_keyed``). Then, timed in
CPU seconds (``time.process_time``, so another process on the machine does not count):

- ``normalize``: every entry to an ``Article``;
- ``fingerprint``: every article;
- ``decide``: every article in publication order against its candidates, retrieved by
  ``bench/dedupe_tune.py``'s in-memory store (the retrieval contract of ``monitor.dedupe``,
  fingerprints through JSON as storage hands them back) and stored with its decision;
  only ``decide`` itself is timed, not the retrieval.

Each step runs ``--rounds`` times; printed are the first round (cold caches, as in a
fresh worker process) and the best round, in milliseconds per entry.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cycle import Corpus
from dedupe_tune import MemoryStore, stored_copy

from monitor import dedupe
from monitor._prepare import parse_keyed
from monitor.normalize import normalize
from monitor.types import Article, Decision, Entry, FeedState, Fetched, Fingerprint

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)
T = TypeVar("T")


def entries(feeds: int) -> list[Entry]:
    """The corpus's entries, parsed and keyed as the pipeline does."""
    corpus = Corpus(feeds)
    out: list[Entry] = []
    for feed in corpus.feeds:
        url = f"http://127.0.0.1{feed.path}"
        state = FeedState(name=f"feed {feed.index}", url=url)
        fetched = Fetched(url=url, status=200, content=corpus.document(feed),
                          headers={"content-type": "application/xml"})  # fmt: skip
        keyed, _, _ = parse_keyed(state, fetched, NOW)
        out += [entry for _, entry in keyed]
    return out


def decide_all(articles: list[Article], fps: list[Fingerprint]) -> tuple[float, list[Decision]]:
    """Stream the articles through retrieval and ``decide``: seconds in ``decide`` only."""
    store = MemoryStore()
    seconds = 0.0
    decisions = []
    for i in sorted(range(len(articles)), key=lambda i: articles[i].when):
        article, fp = articles[i], fps[i]
        candidates = store.candidates(article, fp)
        start = time.process_time()
        decision = dedupe.decide(article, fp, candidates)
        seconds += time.process_time() - start
        decisions.append(decision)
        store.add(article, stored_copy(fp), decision)
    return seconds, decisions


def timed(step: Callable[[], T]) -> tuple[float, T]:
    start = time.process_time()
    result = step()
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    items = entries(args.feeds)
    n = len(items)
    times: dict[str, list[float]] = {"normalize": [], "fingerprint": [], "decide": []}
    kinds: dict[str, int] = {}
    for _ in range(args.rounds):
        seconds, articles = timed(lambda: [normalize(e, fetched=NOW, now=NOW) for e in items])
        times["normalize"].append(seconds)
        seconds, fps = timed(lambda: [dedupe.fingerprint(a) for a in articles])  # noqa: B023
        times["fingerprint"].append(seconds)
        seconds, decisions = decide_all(articles, fps)
        times["decide"].append(seconds)
        kinds = {}
        for d in decisions:
            kinds[d.kind.value] = kinds.get(d.kind.value, 0) + 1
    print(f"{args.feeds} feeds, {n} entries; decisions {kinds}")
    for step, seconds in times.items():
        print(f"{step:12s} first {1000 * seconds[0] / n:6.3f} ms/entry   "
              f"best {1000 * min(seconds) / n:6.3f} ms/entry")  # fmt: skip


if __name__ == "__main__":
    main()
