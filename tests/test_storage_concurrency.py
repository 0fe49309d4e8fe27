"""The storage contract when several daemons share one database, on SQLite and PostgreSQL.

Each "daemon" here is a repository of its own (its own engine and connections) on the
same database; threads make them race for real.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from monitor.errors import ConcurrentWriteError
from monitor.types import Decision, DecisionKind
from storage import SQLRepository, make_repository
from storage import models as m
from tests.test_storage import T0, _alert, _intent

T = TypeVar("T")
LEASE = timedelta(minutes=2)


@pytest.fixture
def repos(db_url: str) -> Iterator[list[SQLRepository]]:
    """Three repositories on one database, as three daemons would have."""
    first = make_repository(db_url)
    others = [make_repository(db_url) for _ in range(2)]
    yield [first, *others]
    for repo in (first, *others):
        repo.close()


def _race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls at the same moment, one thread each."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _count(repo: SQLRepository, table: object) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_the_same_entry_stored_by_three_daemons_is_stored_and_alerted_once(
    repos: list[SQLRepository],
) -> None:
    intent = _intent(1, alerts=(_alert("desk"), _alert("chat")))
    ids = _race([lambda r=r: r.add_article(intent, T0) for r in repos])  # type: ignore[misc]
    assert len([i for i in ids if i is not None]) == 1
    repo = repos[0]
    assert _count(repo, m.articles) == 1
    assert _count(repo, m.stories) == 1  # the losers' story rows were rolled back
    assert _count(repo, m.matches) == 1
    assert sorted(i.target for i in repo.claim_alerts(T0, "one", LEASE)) == ["chat", "desk"]


def test_a_conflicting_insert_writes_nothing_not_even_its_story(
    repos: list[SQLRepository],
) -> None:
    repo = repos[0]
    first = repo.add_article(_intent(1), T0)
    story = repo.get_article(first)["story_id"]  # type: ignore[index]
    assert repo.add_article(_intent(1), T0) is None  # a new story would have been made
    assert repos[1].add_article(_intent(1, story=story), T0) is None  # a re-report's
    assert _count(repo, m.stories) == 1
    assert repo.get_story(story)["articles"] == 1  # type: ignore[index]


def test_same_key_from_another_source_stored_meanwhile_asks_to_decide_again(
    repos: list[SQLRepository],
) -> None:
    a, b = repos[0], repos[1]
    mine = _intent(1, keys=("url:https://example.org/same",), alerts=(_alert(),))
    theirs = replace(mine, article=replace(mine.article, source="agency"), item_key="g:x")
    assert a.add_article(mine, T0) is not None
    with pytest.raises(ConcurrentWriteError):  # both decided "new" before either stored
        b.add_article(theirs, T0)
    assert _count(a, m.articles) == 1 and _count(a, m.stories) == 1
    duplicate = Decision(kind=DecisionKind.DUPLICATE, level=1, score=1.0, reason="same url")
    decided_again = replace(theirs, alerts=(), decision=duplicate)
    assert b.add_article(decided_again, T0) is not None  # a duplicate may share keys
    assert len(a.claim_alerts(T0, "one", LEASE)) == 1


def test_long_keys_stay_distinct_and_are_found_again(repos: list[SQLRepository]) -> None:
    repo = repos[0]
    long_a = "url:https://example.org/" + "a" * 300 + "/one"
    long_b = "url:https://example.org/" + "a" * 300 + "/two"
    first = repo.add_article(_intent(1, keys=(long_a,)), T0)
    second = repo.add_article(_intent(2, keys=(long_b,)), T0)  # no conflict: not the same
    assert first is not None and second is not None
    probe = replace(_intent(3, keys=(long_a,)).fingerprint)
    found = [c.article_id for c in repo.get_candidates(probe, T0, timedelta(days=1), 0)]
    assert found == [first]


def test_concurrent_claims_split_the_sources_without_overlap(
    repos: list[SQLRepository],
) -> None:
    names = [f"source-{i:03d}" for i in range(120)]
    repos[0].sync_sources([(n, f"https://e.org/{n}", "feed") for n in names], T0)

    def drain(repo: SQLRepository, owner: str) -> list[str]:
        got: list[str] = []
        while batch := repo.claim_sources(T0, owner, LEASE, limit=7):
            got += [s.name for s in batch]
        return got

    claimed = _race([lambda r=r, i=i: drain(r, f"daemon-{i}")  # type: ignore[misc]
                     for i, r in enumerate(repos)])  # fmt: skip
    every = [n for got in claimed for n in got]
    assert Counter(every) == Counter(names)  # each source once, none left out
    owners = {r["name"]: r["lease_owner"] for r in repos[0].get_sources()}
    assert all(owners[n] == f"daemon-{i}" for i, got in enumerate(claimed) for n in got)


def test_concurrent_alert_claims_never_share_a_row(repos: list[SQLRepository]) -> None:
    for n in range(60):
        repos[0].add_article(_intent(n, keys=(f"url:{n}",), alerts=(_alert(),)), T0)

    def drain(repo: SQLRepository, owner: str) -> list[int]:
        got: list[int] = []
        while batch := repo.claim_alerts(T0, owner, LEASE, limit=5):
            got += [i.id for i in batch]
        return got

    claimed = _race([lambda r=r, i=i: drain(r, f"d{i}") for i, r in enumerate(repos)])  # type: ignore[misc]
    every = [i for got in claimed for i in got]
    assert len(every) == len(set(every)) == 60


def test_claim_limit_order_and_lease_extension(repos: list[SQLRepository]) -> None:
    repo, other = repos[0], repos[1]
    repo.sync_sources([(n, f"https://e.org/{n}", "feed") for n in "abc"], T0)
    first = repo.claim_sources(T0, "one", LEASE, limit=2)
    assert [s.name for s in first] == ["a", "b"]
    later = T0 + timedelta(minutes=1)
    assert repo.extend_source_leases("one", ["a", "b", "c"], later + LEASE) == 2
    assert other.extend_source_leases("two", ["a"], later + LEASE * 10) == 0  # not its own
    assert [s.name for s in other.claim_sources(T0 + LEASE + timedelta(seconds=1), "two",
                                                LEASE)] == ["c"]  # fmt: skip
    assert [s.name for s in other.claim_sources(later + LEASE + timedelta(seconds=1), "two",
                                                LEASE)] == ["a", "b"]  # fmt: skip
    repo.add_article(_intent(1, alerts=(_alert(),)), T0)
    (item,) = repo.claim_alerts(T0, "one", LEASE)
    assert repo.extend_alert_leases("one", [item.id], T0 + LEASE * 3) == 1
    assert other.claim_alerts(T0 + LEASE * 2, "two", LEASE) == []
    repo.mark_sent(item.id, T0)
    assert repo.extend_alert_leases("one", [item.id], T0 + LEASE * 9) == 0  # released


def test_daemons_starting_together_add_sources_and_meta_without_errors(
    repos: list[SQLRepository],
) -> None:
    specs = [(f"s{i}", f"https://e.org/{i}", "feed") for i in range(30)]
    _race([lambda r=r: r.sync_sources(specs, T0) for r in repos])  # type: ignore[misc]
    assert len(repos[0].get_sources()) == 30
    _race([lambda r=r, i=i: r.set_meta("seeded", str(i))  # type: ignore[misc]
           for i, r in enumerate(repos)])  # fmt: skip
    assert repos[0].get_meta("seeded") in {"0", "1", "2"}


def test_a_long_owner_name_fits_its_column_and_stays_unique(
    repos: list[SQLRepository],
) -> None:
    repo = repos[0]
    host = "node-" + "x" * 200 + ".cluster.example.org"
    repo.sync_sources([("a", "https://e.org/a", "feed"), ("b", "https://e.org/b", "feed")], T0)
    assert len(repo.claim_sources(T0, f"{host}:101", LEASE, limit=1)) == 1
    assert len(repo.claim_sources(T0, f"{host}:102", LEASE, limit=1)) == 1
    assert repo.extend_source_leases(f"{host}:101", ["a", "b"], T0 + LEASE) == 1
    owners = {r["lease_owner"] for r in repo.get_sources()}
    assert len(owners) == 2 and all(len(o) <= 100 for o in owners)
