"""Batch decisions (``Pipeline.ingest_batch``) are the decisions of ``Pipeline.ingest`` one
by one, on SQLite and PostgreSQL, for a bounded number of candidate lookups per batch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import storage
from monitor import _batch, dedupe
from monitor.config import Config, PollConfig
from monitor.normalize import normalize
from monitor.pipeline import Pipeline
from monitor.types import Article, ArticleIntent, Decision, DecisionKind, Entry
from tests.conftest import _postgres_or_skip, _postgres_schema, statements_sent
from tests.test_dedupe import (
    _H1,
    _H2,
    _H3,
    _H4,
    _NJ,
    _TOKYO,
    MANILA_2PLUS2,
    NEXT_2PLUS2,
    QUAKE_DAY,
    SEED_DAY,
    TOKYO_2PLUS2_COPY,
    _template_item,
    make_article,
    seed_articles,
)
from tests.test_stories import EVENT, FOLLOW_UP

CONFIG = Config(database="", poll=PollConfig(), notifiers={}, aliases={}, feeds=(),
                watchlists=())  # fmt: skip
COLUMNS = ("id", "story_id", "decision", "level", "score", "reason", "matched_article_id",
           "related_story_id")  # fmt: skip


def _item(item: Any, source: str) -> Article:
    entry = Entry(source=source, guid=None, link=item.link, title=item.title,
                  summary=item.body, published=item.published)  # fmt: skip
    return normalize(entry, fetched=item.published, now=item.published)


def _batch_articles() -> list[Article]:
    """Re-reports, copies, the same URL again, follow-ups, other events of one kind, a
    fragment healed (H3 and H4 after the fragment stored by ``_prestore``)."""
    day = SEED_DAY
    return [
        *seed_articles(),
        _TOKYO,
        make_article(TOKYO_2PLUS2_COPY, day + timedelta(hours=5), url="https://c.example/9"),
        make_article(("Another title", "Another body."), day + timedelta(hours=6),
                     url=_TOKYO.url, source="mirror"),  # fmt: skip
        make_article(MANILA_2PLUS2, day + timedelta(days=2), url="https://m.example/1"),
        make_article(NEXT_2PLUS2, day + timedelta(days=1), url="https://n.example/1"),
        *(_item(item, f"outlet{n}") for n, item in enumerate(EVENT)),
        _item(FOLLOW_UP, "outlet0"),
        *(replace(_template_item(n), url=f"https://t.example/{n}") for n in range(12)),
        # Items of one form stored later than they happened: ids and times disagree.
        *(replace(_template_item(n), url=f"https://t.example/{n}", published=day - timedelta(
            hours=n), fetched=day - timedelta(hours=n)) for n in range(12, 20)),  # fmt: skip
        _H3,
        _H4,
        _NJ,
        _H1,  # stored already by _prestore: None, and those after it sharing terms look up alone
        make_article(("Strong quake hits Taiwan's Hualien again", _H2.body),
                     QUAKE_DAY + timedelta(hours=30), url="https://h.example/again"),  # fmt: skip
    ]


def _prestore(pipeline: Pipeline) -> None:
    """H1 stored, and H2 as a fragment of a story of its own (as an earlier decision may
    have left it)."""
    assert pipeline.ingest(_H1, backlog=True, now=QUAKE_DAY, watch=False) is not None
    pipeline.repo.add_article(ArticleIntent(
        article=_H2, item_key="u:h2", fingerprint=dedupe.fingerprint(_H2),
        decision=Decision(DecisionKind.NEW, 0, 0.7, "new story")), QUAKE_DAY)  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two clean databases of one backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/one.db", f"sqlite:///{tmp_path}/batch.db"
        return
    url = _postgres_or_skip()
    one, batch = _postgres_schema(url), _postgres_schema(url)
    try:
        yield next(one), next(batch)
    finally:
        for gen in (one, batch):
            next(gen, None)


def _run(url: str, articles: Sequence[Article], *, batch: bool) -> list[dict[str, Any] | None]:
    repo = storage.make_repository(url)
    try:
        pipeline = Pipeline(CONFIG, repo, clock=lambda: SEED_DAY)
        _prestore(pipeline)
        if batch:
            ids = pipeline.ingest_batch([(a, None, None) for a in articles], backlog=True,
                                        now=SEED_DAY, watch=False)  # fmt: skip
        else:
            ids = [pipeline.ingest(a, backlog=True, now=SEED_DAY, watch=False) for a in articles]
        rows = [repo.get_article(i) if i is not None else None for i in ids]
        return _in_order([{c: r[c] for c in COLUMNS} if r else None for r in rows])
    finally:
        repo.close()


def _in_order(rows: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
    """``rows`` with article and story ids replaced by their rank: PostgreSQL's sequences
    also advance for an insert that wrote nothing (an item stored already), which one by
    one attempts and a batch leaves out."""
    ranks = {}
    for kind, cols in (("a", ("id", "matched_article_id")),
                       ("s", ("story_id", "related_story_id"))):  # fmt: skip
        ids = sorted({r[c] for r in rows if r for c in cols if r[c] is not None})
        ranks[kind] = {i: n for n, i in enumerate(ids)}
    out: list[dict[str, Any] | None] = []
    for r in rows:
        if r is not None:
            r = {**r, **{c: ranks["a" if c in ("id", "matched_article_id") else "s"].get(r[c])
                         for c in ("id", "matched_article_id", "story_id", "related_story_id")}}
        out.append(r)
    return out


@pytest.mark.parametrize(("per_term", "limit", "chunk"), [(100, 24, 200), (3, 4, 7)],
                         ids=["defaults", "tight-limits-small-chunks"])  # fmt: skip
def test_batch_decides_as_one_by_one(
    two_urls: tuple[str, str], per_term: int, limit: int, chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Tight limits make the batch's own articles push stored postings out of a term's
    # latest ones and out of the candidates, as they would once stored.
    monkeypatch.setattr(dedupe, "TERM_POSTINGS", per_term)
    monkeypatch.setattr(dedupe, "CANDIDATE_LIMIT", limit)
    monkeypatch.setattr(_batch, "CHUNK", chunk)
    articles = _batch_articles()
    one = _run(two_urls[0], articles, batch=False)
    both = _run(two_urls[1], articles, batch=True)
    assert both == one
    kinds = {r["decision"] for r in one if r}
    assert kinds == {"new", "duplicate", "rereport"} and one[-2] is None
    if per_term == 100:
        assert any("merges fragments" in r["reason"] for r in one if r)


def test_polls_stored_together_decide_as_one_by_one(two_urls: tuple[str, str]) -> None:
    # The polls a cycle prepared together go through one stream of chunks; each keeps
    # its own backlog flag, and the decisions are those of its articles one by one.
    articles = _batch_articles()
    cuts = [0, 3, 4, 17, len(articles)]
    groups = [_batch.Group([(a, None, None) for a in articles[lo:hi]], n % 2 == 0,
                           SEED_DAY + timedelta(minutes=n))
              for n, (lo, hi) in enumerate(itertools.pairwise(cuts))]  # fmt: skip
    one = _run(two_urls[0], articles, batch=False)
    repo = storage.make_repository(two_urls[1])
    try:
        pipeline = Pipeline(CONFIG, repo, clock=lambda: SEED_DAY)
        _prestore(pipeline)
        found = pipeline.ingest_groups(groups, watch=False)
        assert [len(ids) for ids in found] == [len(g.items) for g in groups]
        rows = [repo.get_article(i) if i is not None else None for ids in found for i in ids]
        backlog = [r["backlog"] for ids, g in zip(found, groups, strict=True) for i in ids
                   if i is not None and (r := repo.get_article(i))]  # fmt: skip
        expected = [g.backlog for ids, g in zip(found, groups, strict=True) for i in ids
                    if i is not None]  # fmt: skip
    finally:
        repo.close()
    assert _in_order([{c: r[c] for c in COLUMNS} if r else None for r in rows]) == one
    assert backlog == expected and set(expected) == {True, False}


def test_a_batch_costs_a_bounded_number_of_candidate_lookups(tmp_path: Path) -> None:
    articles = _batch_articles()[:-2]  # none stored already: nothing looked up alone
    counts = []
    for batch in (False, True):
        repo = storage.make_repository(f"sqlite:///{tmp_path}/{batch}.db")
        pipeline = Pipeline(CONFIG, repo, clock=lambda: SEED_DAY)
        pipeline.ingest(_H2, backlog=True, now=SEED_DAY, watch=False)  # a stored candidate
        try:
            with statements_sent(repo.engine) as sent:
                if batch:
                    pipeline.ingest_batch([(a, None, None) for a in articles], backlog=True,
                                          now=SEED_DAY, watch=False)  # fmt: skip
                else:
                    for a in articles:
                        pipeline.ingest(a, backlog=True, now=SEED_DAY, watch=False)
        finally:
            repo.close()
        reads = ("article_terms", "article_bands", "fingerprint")
        lookups = [s for s in sent if s.lstrip().upper().startswith(("SELECT", "WITH"))
                   and any(t in s for t in reads)]  # fmt: skip
        counts.append(len(lookups))
    assert counts == [len(articles), 3]  # bands, term postings, the candidates' rows


@pytest.mark.parametrize(("per_term", "limit"), [(100, 24), (2, 3)])
def test_each_batch_lookup_is_the_lookup_one_by_one(
    two_urls: tuple[str, str], per_term: int, limit: int, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Decisions hide many differences (another candidate of a story that stays NEW): here
    # each article's candidates from the batch are compared with those the one-by-one
    # lookup finds at that moment, its batch's earlier articles stored.
    monkeypatch.setattr(dedupe, "TERM_POSTINGS", per_term)
    monkeypatch.setattr(dedupe, "CANDIDATE_LIMIT", limit)
    monkeypatch.setattr(_batch, "CHUNK", 9)
    repo = storage.make_repository(two_urls[0])
    pipeline = Pipeline(CONFIG, repo, clock=lambda: SEED_DAY)
    articles = _batch_articles()
    probed = [a for a in articles if a is not _H1]  # H1 is stored already: not looked up
    compared = []
    resolve = _batch._Overlay.candidates

    def checked(self: Any, n: int, found: Any) -> Any:
        got = resolve(self, n, found)
        art = probed[len(compared)]
        fp = dedupe.fingerprint(art)
        alone = repo.get_candidates(fp, art.when, dedupe.WINDOW, limit, per_term=per_term)
        compared.append(sorted(got, key=_id) == sorted(alone, key=_id))
        return got

    monkeypatch.setattr(_batch._Overlay, "candidates", checked)
    try:
        _prestore(pipeline)
        pipeline.ingest_batch([(a, None, None) for a in articles], backlog=True, now=SEED_DAY,
                              watch=False)  # fmt: skip
    finally:
        repo.close()
    assert compared == [True] * len(probed)


def _id(candidate: Any) -> int:
    return int(candidate.article_id)


def test_a_batch_raced_by_another_daemon_is_stored_one_by_one(
    two_urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # Another daemon stores the Manila copy under the same URL after this daemon's batch
    # looked up its candidates: the batch's transaction finds the URL taken, writes
    # nothing, and its articles are stored one by one, the copy as that one's duplicate.
    day = SEED_DAY
    ours = [make_article(TOKYO_2PLUS2_COPY, day, url="https://c.example/1", source="ours"),
            make_article(MANILA_2PLUS2, day + timedelta(days=2), url="https://m.example/1",
                         source="ours"),
            make_article(NEXT_2PLUS2, day + timedelta(days=1), url="https://n.example/1",
                         source="ours")]  # fmt: skip
    theirs = replace(ours[1], source="theirs")
    repo, other = storage.make_repository(two_urls[0]), storage.make_repository(two_urls[0])
    other_id: list[int | None] = []
    lookup = repo.get_candidates_batch

    def raced(*args: Any, **kwargs: Any) -> Any:
        found = lookup(*args, **kwargs)
        if not other_id:
            other_id.append(Pipeline(CONFIG, other, clock=lambda: day).ingest(
                theirs, backlog=True, now=day, watch=False))  # fmt: skip
        return found

    monkeypatch.setattr(repo, "get_candidates_batch", raced)
    try:
        repo.create()
        with caplog.at_level("INFO", logger="monitor.pipeline"):
            ids = Pipeline(CONFIG, repo, clock=lambda: day).ingest_batch(
                [(a, None, None) for a in ours], backlog=True, now=day, watch=False)  # fmt: skip
        rows = [repo.get_article(i) for i in ids if i is not None]
    finally:
        repo.close()
        other.close()
    assert other_id[0] is not None and len(rows) == 3
    assert [r["source"] for r in rows] == ["ours"] * 3
    assert rows[1]["decision"] == "duplicate" and rows[1]["matched_article_id"] == other_id[0]
    assert [r["decision"] for r in (rows[0], rows[2])] == ["new", "new"]
    assert any("batch.redo articles=3" in r.getMessage() for r in caplog.records)
