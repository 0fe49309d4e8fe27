"""Does the pipeline find every entry feedparser finds? (issue 9: nothing traded for speed)

Run by hand from the repository root::

    .venv/bin/python bench/parse_check.py                 # feeds_dev + the 500-feed corpus
    .venv/bin/python bench/parse_check.py --feeds 2000 --dev ../shared/eval/feeds_dev

For every document (the real feeds of ``--dev`` under three Content-Types, and the
``bench/cycle.py`` corpus of ``--feeds`` feeds, as first served and with its new entries)
it compares three readings:

- feedparser alone (``feedparser.parse`` with the response headers): its entries;
- ``parse_feed(fast=False)``: our feedparser path;
- ``parse_feed``: what the pipeline runs (the lxml fast path where it applies).

and prints per set: documents, fast-path documents, feedparser's entries, ours, entries
feedparser found that we did not (``missing``, must be 0), documents whose item keys or
normalised articles differ between our two paths (``differ``, must be 0), documents
that are an error for us but yield entries to feedparser, and parse seconds both ways.
Exit status 1 when anything is missing or differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import feedparser  # type: ignore[import-untyped,unused-ignore]

from monitor._parse_fast import fast_entries
from monitor._prepare import entry_key
from monitor.errors import ParseError
from monitor.normalize import normalize
from monitor.parse import parse_feed
from monitor.types import Entry, Fetched

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, tzinfo=UTC)
DEV_TYPES = ("application/rss+xml", "application/xml; charset=utf-8", "text/xml")


@dataclass
class Tally:
    docs: int = 0
    fast: int = 0
    feedparser: int = 0
    ours: int = 0
    missing: int = 0
    differ: int = 0
    refused: int = 0
    fast_s: float = 0.0
    slow_s: float = 0.0

    def line(self, name: str) -> str:
        return (f"{name:28s} docs {self.docs:5d}  fast path {self.fast:5d}  "
                f"feedparser entries {self.feedparser:6d}  ours {self.ours:6d}  "
                f"missing {self.missing}  differ {self.differ}  error-for-us {self.refused}  "
                f"parse {self.fast_s:6.2f}s (feedparser path {self.slow_s:6.2f}s)")  # fmt: skip


def _entries(fetched: Fetched, fast: bool) -> tuple[list[Entry] | str, float]:
    start = time.perf_counter()
    try:
        out: list[Entry] | str = parse_feed(fetched, "src", fast=fast)
    except ParseError as exc:
        out = str(exc)
    return out, time.perf_counter() - start


def _kept(entries: list[Entry] | str) -> object:
    if isinstance(entries, str):
        return entries
    return [(entry_key(e, NOW), normalize(e, fetched=NOW, now=NOW)) for e in entries]


def check(tally: Tally, fetched: Fetched) -> None:
    raw = feedparser.parse(io.BytesIO(fetched.content), response_headers=fetched.headers)
    ours, fast_s = _entries(fetched, fast=True)
    slow, slow_s = _entries(fetched, fast=False)
    tally.docs += 1
    tally.fast += fast_entries(fetched, "src") is not None
    tally.feedparser += len(raw.entries)
    tally.fast_s += fast_s
    tally.slow_s += slow_s
    if isinstance(ours, str):
        tally.refused += bool(raw.entries)
        tally.missing += len(raw.entries)
    else:
        tally.ours += len(ours)
        tally.missing += max(0, len(raw.entries) - len(ours))
    tally.differ += _kept(ours) != _kept(slow)


def dev_documents(folder: Path) -> Iterator[Fetched]:
    for path in sorted(folder.rglob("*.xml")):
        for kind in DEV_TYPES:
            yield Fetched(url=f"https://example.org/{path.name}", status=200,
                          content=path.read_bytes(), headers={"content-type": kind})  # fmt: skip


def corpus_documents(n: int) -> Iterator[Fetched]:
    spec = importlib.util.spec_from_file_location("bench_cycle", ROOT / "bench" / "cycle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cycle"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    corpus = module.Corpus(n)
    for changed in (False, True):
        corpus.changed = changed
        for feed in corpus.feeds:
            if changed and feed.extra is None:
                continue
            kind = "application/atom+xml" if feed.atom else "application/rss+xml"
            yield Fetched(url=f"http://127.0.0.1/feeds/{feed.index}.xml", status=200,
                          content=corpus.document(feed),
                          headers={"content-type": f"{kind}; charset=utf-8"})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "eval" / "feeds_dev")
    parser.add_argument("--feeds", type=int, default=500, help="corpus size (0: none)")
    args = parser.parse_args()
    sets = []
    if args.dev.is_dir():
        sets.append((f"feeds_dev x{len(DEV_TYPES)} types", dev_documents(args.dev)))
    else:
        print(f"no {args.dev}: real feeds skipped")
    if args.feeds:
        sets.append((f"corpus N={args.feeds}", corpus_documents(args.feeds)))
    bad = False
    for name, documents in sets:
        tally = Tally()
        for fetched in documents:
            check(tally, fetched)
        print(tally.line(name), flush=True)
        bad |= bool(tally.missing or tally.differ)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
