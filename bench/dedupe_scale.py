"""Story-dedupe decision time as the store grows (run by hand, not by pytest).

    python bench/dedupe_scale.py [--sizes 10000,100000,1000000] [--probes 500]

For each size, a SQLite store is filled with that many synthetic articles (bulk inserts
through the real schema: articles, stories, keys, bands, index terms), then ``--probes``
new articles go through the daemon's own decision path one by one — ``fingerprint``,
``Repository.get_candidates`` (the SQL lookup), ``decide`` — and the time of each is
recorded. Prints median and p99 per article, the candidates per decision and the peak
RSS of the process.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from monitor import dedupe  # noqa: E402
from monitor.types import Article  # noqa: E402
from storage import make_repository  # noqa: E402
from storage import models as m  # noqa: E402

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


def probe(repo: object, probes: int, rng: random.Random) -> dict[str, float]:
    totals, sql, cands = [], [], []
    for n in range(probes):
        at = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
        art = article(rng, 10_000_000 + n, at)
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
        cands.append(len(found))
    q = statistics.quantiles(totals, n=100)
    return {"median_ms": statistics.median(totals), "p99_ms": q[98],
            "sql_median_ms": statistics.median(sql), "candidates": statistics.mean(cands)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    print("stored      median ms   p99 ms   sql median ms   candidates   peak RSS MB")
    for size in (int(s) for s in args.sizes.split(",")):
        rng = random.Random(size)
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            repo = make_repository(f"sqlite:///{tmp}/bench.db")
            fill(repo, size, rng)
            with repo.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
            r = probe(repo, args.probes, rng)
            repo.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{size:>9,}   {r['median_ms']:9.2f}  {r['p99_ms']:7.2f}   {r['sql_median_ms']:13.2f}"
              f"   {r['candidates']:10.1f}   {rss:11.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
