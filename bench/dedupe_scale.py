"""Story-dedupe decision time as the store grows (run by hand, not by pytest).

    python bench/dedupe_scale.py [--sizes 10000,100000,1000000] [--probes 2000]
                                 [--batch 100] [--keep DIR]

For each size, a SQLite store is filled with that many synthetic articles (bulk inserts
through the real schema: articles, stories, keys, bands, index terms), then ``--probes``
new articles go through the daemon's own decision path one by one — ``fingerprint``,
``Repository.get_candidates`` (the SQL lookup), ``decide`` — and the time of each is
recorded. Then the same probes go through the batch path a poll takes (``--batch``
articles of one day at a time): their fingerprints, one
``Repository.get_candidates_batch`` (four statements), and ``decide`` for each with the
batch's earlier articles among its candidates; the time per article is the batch's time
divided by its size. Prints median and p99 per article (one by one: over articles;
batch: over batches), the median without the fingerprint (the daemon computes
fingerprints in its worker processes while it decides earlier articles, so the main
process spends only the rest), the candidates per decision and the peak RSS of the
process, after a line timing a fixed Python loop (the machine's speed at the time,
which drifts on a shared machine). The cyclic garbage collector is set up as
``monitor run`` sets it (``monitor._prepare.tune_gc``).

Stored fingerprints are cloned from a pool of real ones (computed from generated news
text) with their own keys, bands and a mix of shared and rare index terms, so the SQL
lookups see realistic posting lists without computing a million fingerprints.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from monitor import dedupe
from monitor._prepare import tune_gc
from monitor.types import Article, ArticleIntent
from storage import make_repository
from storage import models as m

START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_DAYS = 365
POOL = 300

PEOPLE = ["Austin", "Blinken", "Kamikawa", "Kihara", "Hegseth", "Rubio", "Nakatani",
          "Iwaya", "Shoigu", "Lavrov", "Kim", "Wang", "Dong", "Paparo", "Aquilino", "Rupp",
          "Jost", "Kiyomi", "Sullivan", "Campbell", "Emanuel", "Glass", "Yoshida", "Kishida"]
PLACES = ["Tokyo", "Okinawa", "Yokota", "Yokosuka", "Guam", "Seoul", "Pyongyang", "Beijing",
          "Moscow", "Manila", "Taipei", "Hawaii", "Sasebo", "Iwakuni", "Misawa", "Kadena"]
EVENTS = ["missile launch", "joint exercise", "naval patrol", "defense talks",
          "arms deal", "command upgrade", "budget request", "port visit", "air drill",
          "summit meeting", "sanctions package", "troop rotation"]


def news(rng: random.Random, n: int) -> tuple[str, str]:
    """A generated news item: a title and ~250 words about one made-up event."""
    who, other = rng.sample(PEOPLE, 2)
    where, near = rng.sample(PLACES, 2)
    what = rng.choice(EVENTS)
    count, year = rng.randint(2, 900), rng.choice([2024, 2025, 2026])
    title = f"{who} in {where}: {what} number {n}"
    sentences = [
        f"{who} said on Tuesday that the {what} near {where} involved {count} units.",
        f"{other} told reporters in {near} the {what} was planned since {year}.",
        f"Officials in {where} confirmed the figure of {count} and promised more details.",
        f"The {what} follows talks between {who} and {other} earlier this month.",
        f"Analysts said event {n} showed how {where} and {near} coordinate closely.",
    ]
    body = " ".join(rng.choice(sentences) for _ in range(12))
    return title, body


def article(rng: random.Random, n: int, at: datetime) -> Article:
    title, body = news(rng, n)
    return Article(source=f"outlet-{n % 40}", title=title, body=body,
                   url=f"https://bench.example.org/{n}", link=None, guid=None,
                   published=at, fetched=at)  # fmt: skip


def fill(repo: object, size: int, rng: random.Random) -> None:
    """Bulk-insert ``size`` articles, each its own story, with cloned fingerprints."""
    pool = [dedupe.fingerprint(article(rng, -i, START)) for i in range(1, POOL + 1)]
    vocab = [f"rare{i}" for i in range(200_000)]
    engine = repo.engine  # type: ignore[attr-defined]
    batch = 20_000
    for lo in range(0, size, batch):
        rows = range(lo + 1, min(size, lo + batch) + 1)
        stories, arts, keys, bands, terms = [], [], [], [], []
        for i in rows:
            fp = pool[i % POOL]
            at = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
            index_terms = list(fp.terms[: len(fp.terms) // 2]) + rng.sample(vocab, 8)
            stories.append({"id": i, "title": f"story {i}", "first_at": at, "last_at": at,
                            "articles": 1, "created_at": at})  # fmt: skip
            arts.append({"id": i, "source": f"outlet-{i % 40}", "item_key": f"u:{i}",
                         "title": f"story {i}", "body": "", "url": None, "link": None,
                         "guid": None, "author": None, "published": at, "fetched": at,
                         "at": at, "story_id": i, "decision": "new", "level": 0,
                         "score": 0.0, "reason": "bench", "backlog": True, "pruned": False,
                         "fingerprint": {"keys": [f"url:https://bench.example.org/old/{i}"],
                                         "bands": [], "terms": index_terms,
                                         "data": fp.data, "version": fp.version}})  # fmt: skip
            keys.append({"key": f"url:https://bench.example.org/old/{i}", "article_id": i})
            bands += [{"band": f"{rng.getrandbits(60):015x}", "article_id": i}
                      for _ in range(16)]  # fmt: skip
            terms += [{"term": t, "at": at, "article_id": i} for t in index_terms]
        with engine.begin() as conn:
            conn.execute(insert(m.stories), stories)
            conn.execute(insert(m.articles), arts)
            conn.execute(insert(m.article_keys), keys)
            conn.execute(insert(m.article_bands), bands)
            conn.execute(insert(m.article_terms), terms)
        print(f"  filled {rows[-1]:,}/{size:,}", end="\r", file=sys.stderr)
    print(file=sys.stderr)


def probes(rng: random.Random, n: int, batch: int) -> list[list[Article]]:
    """``n`` new articles in batches of ``batch``, each batch's articles of one day (a
    poll brings the day's news)."""
    out = []
    for lo in range(0, n, batch):
        day = START + timedelta(days=rng.randrange(SPAN_DAYS))
        out.append([article(rng, 10_000_000 + k, day + timedelta(seconds=rng.randrange(86400)))
                    for k in range(lo, min(n, lo + batch))])  # fmt: skip
    return out


def one_by_one(repo: object, batches: list[list[Article]]) -> dict[str, float]:
    totals, sql, rest, cands = [], [], [], []
    for art in (a for b in batches for a in b):
        t0 = time.perf_counter()
        fp = dedupe.fingerprint(art)
        t1 = time.perf_counter()
        found = repo.get_candidates(fp, art.when, dedupe.WINDOW,  # type: ignore[attr-defined]
                                    dedupe.CANDIDATE_LIMIT,
                                    per_term=dedupe.TERM_POSTINGS)  # fmt: skip
        t2 = time.perf_counter()
        dedupe.decide(art, fp, found)
        t3 = time.perf_counter()
        totals.append((t3 - t0) * 1000)
        sql.append((t2 - t1) * 1000)
        rest.append((t3 - t1) * 1000)
        cands.append(len(found))
    return _summary(totals, sql, rest, cands)


def batched(repo: Any, batches: list[list[Article]]) -> dict[str, float]:
    """Per batch: fingerprints, one batch lookup, then each decision with the earlier
    articles of the batch as stored ones (ids above the store's; nothing is written)."""
    totals, sql, rest, cands = [], [], [], []
    for arts in batches:
        t0 = time.perf_counter()
        fps = [dedupe.fingerprint(a) for a in arts]
        t1 = time.perf_counter()
        found = repo.get_candidates_batch([(fp, a.when) for a, fp in zip(arts, fps, strict=True)],
                                          dedupe.WINDOW, dedupe.CANDIDATE_LIMIT,
                                          per_term=dedupe.TERM_POSTINGS)  # fmt: skip
        t2 = time.perf_counter()
        earlier = []
        for n, (art, fp) in enumerate(zip(arts, fps, strict=True)):
            mine = [*found[n].stored, *(earlier[i] for i in found[n].earlier)]
            decision = dedupe.decide(art, fp, mine)
            intent = ArticleIntent(article=art, item_key="", fingerprint=fp, decision=decision)
            earlier.append(repo.as_candidate(intent, (1 << 40) + n,
                                             decision.story_id or (1 << 40) + n))  # fmt: skip
            cands.append(len(mine))
        t3 = time.perf_counter()
        totals.append((t3 - t0) * 1000 / len(arts))
        sql.append((t2 - t1) * 1000 / len(arts))
        rest.append((t3 - t1) * 1000 / len(arts))
    return _summary(totals, sql, rest, cands)


def _summary(totals: list[float], sql: list[float], rest: list[float],
             cands: list[int]) -> dict[str, float]:  # fmt: skip
    q = statistics.quantiles(totals, n=100) if len(totals) > 1 else totals * 99
    return {"median_ms": statistics.median(totals), "p99_ms": q[98],
            "sql_median_ms": statistics.median(sql), "rest_median_ms": statistics.median(rest),
            "candidates": statistics.mean(cands)}


def machine_seconds() -> float:
    """The best of three runs of a fixed pure-Python loop: how fast this machine is now.
    A shared machine's speed drifts by a third within an hour, and the figures with it."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10_000_000):
            pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=2000,
                        help="new articles timed; the batch path's median is over "
                             "probes / batch batches")  # fmt: skip
    parser.add_argument("--batch", type=int, default=100, help="articles per batch lookup")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each store in this folder (dedupe-SIZE.db) and use it "
                             "again when there: a 1M store takes long to fill")  # fmt: skip
    args = parser.parse_args()
    print(f"machine: a Python loop of 10,000,000 steps takes {machine_seconds():.2f} s "
          "(the milliseconds below scale with it)")  # fmt: skip
    print("stored      path         median ms   p99 ms   sql median ms   without fp ms"
          "   candidates   peak RSS MB")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        with ExitStack() as stack:
            if args.keep is not None:
                path = args.keep / f"dedupe-{size}.db"
            else:
                path = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir)))
                path = path / "bench.db"
            filled = path.exists()
            repo = make_repository(f"sqlite:///{path}")
            stack.callback(repo.close)
            if not filled:
                fill(repo, size, random.Random(size))
                with repo.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            batches = probes(random.Random(size + 1), args.probes, args.batch)
            tune_gc()  # as the daemon runs (``monitor run``)
            for name, run in (("one by one", one_by_one), (f"batch {args.batch}", batched)):
                r = run(repo, batches)
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"{size:>9,}   {name:<10}   {r['median_ms']:9.2f}  {r['p99_ms']:7.2f}"
                      f"   {r['sql_median_ms']:13.2f}   {r['rest_median_ms']:13.2f}"
                      f"   {r['candidates']:10.1f}"
                      f"   {rss:11.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
