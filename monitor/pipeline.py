"""The poll pipeline: from a due source to stored articles and queued alerts.

::

    claim due sources           storage (lease), in batches            I/O
    fetch                       HTTP, limits, conditional GET          I/O, parallel
    parse                       feedparser / bs4 for pages; item keys  pure, worker processes
    drop seen items             one lookup per source                  I/O
    normalize                   text, canonical URL, dates             pure, worker processes
    fingerprint                 dedupe's keys, bands, terms            pure, worker processes
    dedupe                      candidates (storage, one lookup per    I/O + pure
                                batch of a poll) + decide (pure)
    match                       every watchlist in one pass            pure
    store                       article + story + matches + outbox,    I/O
                                one transaction per batch
    record polls                one transaction per batch              I/O

The batch itself runs in ``monitor._poll`` and the pure steps in ``monitor._prepare``
(worker processes once a batch has met ``POOL_MIN_ENTRIES`` new entries). Delivery of the queued
alerts is ``monitor.deliver``. A failing source is a value
(``PollIntent(ok=False)``) stored with its error; it never stops the cycle.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._cycle_stats import CycleStats, count_decision
from ._leases import keep_leases
from ._prepare import item_key
from ._window import WINDOW
from .config import Config, FeedConfig
from .errors import ConcurrentWriteError, HTTPStatusError, MonitorError, StorageError
from .match import Matcher, make_snippet, parse_query
from .schedule import next_digest_at
from .types import (
    AlertIntent,
    Article,
    ArticleIntent,
    Candidate,
    Decision,
    DecisionKind,
    FeedState,
    Fingerprint,
    LoneStory,
    Match,
    PollIntent,
    SourceState,
)

if TYPE_CHECKING:
    from ._batch import Group
    from ._prepare import Workers

__all__ = ["CycleStats", "Pipeline", "Stored", "item_key", "redact_secrets"]

log = logging.getLogger("monitor.pipeline")

MAX_BACKOFF = timedelta(hours=6)
SETTLED = "settled_story_id"  # meta: the last story ``Pipeline.settle`` looked at
SETTLE_BATCH = 500  # stories read at once
SETTLE_LIMIT = 5000  # stories a daemon's settle run looks at, at most
CLAIM_BATCH = 4  # sources claimed at once, in units of poll.concurrency
CONSOLE = "console"


def utcnow() -> datetime:
    return datetime.now(UTC)


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret substring with ``***`` (longest first)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``Pipeline.store`` did with one article: its intent as stored, its id and
    story (None when the item was stored already), and the fragments merged into it."""

    intent: ArticleIntent
    article_id: int | None
    story_id: int | None
    merged: tuple[tuple[int, int], ...]


class Pipeline:
    """Runs poll cycles against one repository with one config.

    Args:
        config: the validated config.
        repo: the storage.
        fetcher: fetches one ``FeedState`` (see ``monitor.fetch.Fetcher``).
        clock: returns the current UTC time; a parameter so tests can move time.
        workers: the parse worker processes to use (made on first use otherwise).
    """

    def __init__(self, config: Config, repo: Any, fetcher: Any = None,
                 clock: Callable[[], datetime] = utcnow,
                 workers: Workers | None = None) -> None:  # fmt: skip
        self.config = config
        self.repo = repo
        self.fetcher = fetcher
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._matcher: Matcher | None = None
        self._workers = workers
        self._feeds = {f.name: f for f in config.feeds}
        self.lease = timedelta(seconds=config.lease)

    @property
    def matcher(self) -> Matcher:
        """The watchlists, compiled on first use (a cycle without new entries never
        needs them, nor the word frequencies they load)."""
        if self._matcher is None:
            self._matcher = Matcher({w.name: parse_query(w.query, self.config.aliases)
                                     for w in self.config.watchlists})  # fmt: skip
        return self._matcher

    def workers(self) -> Workers:
        """The worker processes for parsing and preparing entries, made on first use."""
        from ._prepare import Workers

        if self._workers is None:
            self._workers = Workers(self.config.poll.parse_workers)
        return self._workers

    def workers_for(self, config: Config) -> Workers | None:
        """These worker processes, for the pipeline of a reloaded ``config`` to go on
        with (None when their number changed): a reload must not leave idle ones."""
        same = config.poll.parse_workers == self.config.poll.parse_workers
        return self._workers if same else None

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._workers is not None:
            self._workers.close()

    # -- set-up ------------------------------------------------------------------------

    def sync_sources(self) -> None:
        """Make the stored sources follow the config (added, changed, removed)."""
        specs = [(f.name, f.url, f.type) for f in self.config.feeds if f.enabled]
        self.repo.sync_sources(specs, self.clock())

    def load_seeds(self, files: Sequence[tuple[str, str]], when: datetime) -> int:
        """Store the seed documents once, through the same dedupe as every article.

        Returns:
            How many seed articles were stored now (0 when already seeded).
        """
        if self.repo.get_meta("seeded"):
            return 0
        # Daemons starting together on one database seed one after the other, so the seed
        # articles form one story however their starts interleave.
        with self.repo.hold_lock("seeds"):
            if self.repo.get_meta("seeded"):
                return 0
            stored = 0
            for name, text in files:
                title, body = _split_seed(text)
                art = Article(source="seed", title=title, body=body, url=None, link=None,
                              guid=name, published=when, fetched=when)  # fmt: skip
                if self.ingest(art, backlog=True, now=when, watch=False) is not None:
                    stored += 1
            self.repo.set_meta("seeded", when.isoformat())
        return stored

    # -- poll --------------------------------------------------------------------------

    def run_cycle(self, *, all_enabled: bool = False) -> CycleStats:
        """Poll the sources due now (or every enabled one) and store what is new.

        Due sources are claimed a batch at a time (``CLAIM_BATCH`` × ``poll.concurrency``)
        until none is left, so daemons sharing a database share a burst of due sources
        instead of the first one taking them all; the cycle ends early once it meets a
        source it already polled (a daemon that cannot keep up still finishes its job).
        ``all_enabled`` (``run --once``) claims every enabled source in one go.
        """
        stats = CycleStats()
        limit = None if all_enabled else max(1, self.config.poll.concurrency) * CLAIM_BATCH
        polled: set[str] = set()
        while True:
            states = self.repo.claim_sources(self.clock(), self.owner, self.lease,
                                              all_enabled=all_enabled, limit=limit)  # fmt: skip
            if states:
                self._poll_batch(states, stats)
            names = {s.name for s in states}
            if limit is None or len(states) < limit or names & polled:
                break
            polled |= names
        if stats.sources:
            log.info("cycle.done %s", stats.summary())
        return stats

    def _poll_batch(self, states: Sequence[SourceState], stats: CycleStats) -> None:
        """Fetch the claimed sources in parallel and store each result, their leases
        renewed meanwhile (a batch of slow feeds may outlast one lease)."""
        from ._poll import BatchPoll
        from .fetch import fetch_all

        by_name = {s.name: s for s in states}
        lease = self.lease.total_seconds()

        def renew() -> None:
            self.repo.extend_source_leases(self.owner, list(by_name), self.clock() + self.lease)

        with keep_leases(renew, lease):
            results = fetch_all(self.fetcher, [self._feed_state(s) for s in states],
                                max_workers=self.config.poll.concurrency,
                                per_host=self.config.poll.per_host)  # fmt: skip
            BatchPoll(self, by_name, stats, self.workers).run(results)

    def _feed_state(self, s: SourceState) -> FeedState:
        feed = self._feeds.get(s.name) or FeedConfig(name=s.name, url=s.url)
        return FeedState(
            name=s.name, url=s.url, type=s.type, etag=s.etag, last_modified=s.last_modified,
            timeout=self.config.poll.timeout, max_bytes=self.config.poll.max_bytes,
            headers=feed.headers, verify_tls=feed.verify_tls, select=feed.select,
        )  # fmt: skip

    def _announce(self, name: str, now: datetime) -> None:
        """Queue a message to ``on_source_failure`` when the source's health changed."""
        from .health import announcement, health

        row = self.repo.get_source(name)
        feed = self._feeds.get(name)
        if row is None or self.config.on_source_failure is None:
            return
        state = health(row, now, interval=self._interval(name),
                       silent_after=feed.silent_after if feed else None,
                       threshold=self.config.on_source_failure_after)  # fmt: skip
        found = announcement(row, state, target=self.config.on_source_failure, now=now)
        if found is not None:
            log.warning("source.announce source=%s state=%s", name, state)
            self.repo.announce_source(name, found[0], found[1], now)

    def _failure(self, source: SourceState, exc: Exception, now: datetime) -> PollIntent:
        error = redact_secrets(f"{type(exc).__name__}: {exc}", self.config.secrets)
        log.warning("poll.failed source=%s error=%s", source.name, error)
        status = getattr(exc, "status", None)
        retry_after = getattr(exc, "retry_after", None)
        interval = self._interval(source.name)
        if isinstance(exc, HTTPStatusError) and status == 410:
            return PollIntent(source=source.name, polled_at=now, ok=False, error=error,
                              next_poll_at=now + timedelta(days=3650),
                              disabled_reason=f"410 Gone at {now:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        if retry_after:
            wait = min(max(float(retry_after), interval), 7 * 86400.0)
            until = now + timedelta(seconds=wait)
            return PollIntent(source=source.name, polled_at=now, ok=False, error=error,
                              next_poll_at=until, retry_after_until=until)  # fmt: skip
        backoff = min(timedelta(seconds=interval * 2 ** min(source.consecutive_failures, 10)),
                      max(MAX_BACKOFF, timedelta(seconds=interval)))  # fmt: skip
        return PollIntent(source=source.name, polled_at=now, ok=False, error=error,
                          next_poll_at=now + backoff)  # fmt: skip

    def _interval(self, name: str) -> float:
        feed = self._feeds.get(name)
        return self.config.interval(feed) if feed else self.config.poll.interval

    def _next_poll(self, name: str, now: datetime) -> datetime:
        interval = self._interval(name)
        jitter = self.config.poll.jitter
        return now + timedelta(seconds=interval * (1 + random.uniform(-jitter, jitter)))

    # -- one article -------------------------------------------------------------------

    def ingest(self, art: Article, *, backlog: bool, now: datetime, key: str | None = None,
               stats: CycleStats | None = None, watch: bool = True,
               fingerprint: Fingerprint | None = None) -> int | None:  # fmt: skip
        """Dedupe, match and store one article. Returns its id, or None if already stored.

        ``fingerprint`` is ``dedupe.fingerprint(art)`` when the caller has it already
        (worker processes compute it for a batch of new entries).
        """
        stored = self.store(art, backlog=backlog, now=now, key=key, stats=stats, watch=watch,
                            fingerprint=fingerprint)  # fmt: skip
        return stored.article_id

    def ingest_batch(self, items: Sequence[tuple[Article, str | None, Fingerprint | None]],
                     *, backlog: bool, now: datetime, stats: CycleStats | None = None,
                     watch: bool = True) -> list[int | None]:  # fmt: skip
        """``ingest`` each of ``items`` (article, item key, fingerprint or None) in order,
        their candidates looked up together (``monitor._batch``): the same decisions as
        one by one. Returns each one's id, or None where already stored."""
        from ._batch import ingest_batch

        return ingest_batch(self, items, backlog=backlog, now=now, stats=stats, watch=watch)

    def ingest_groups(self, groups: Sequence[Group], *, stats: CycleStats | None = None,
                      watch: bool = True) -> list[list[int | None]]:  # fmt: skip
        """``ingest_batch`` for several polls' new entries (``monitor._batch.Group``), in
        order, looked up and written together. Returns each group's ids."""
        from ._batch import ingest_groups

        return ingest_groups(self, groups, stats=stats, watch=watch)

    def store(self, art: Article, *, backlog: bool, now: datetime, key: str | None = None,
              stats: CycleStats | None = None, watch: bool = True,
              fingerprint: Fingerprint | None = None,
              candidates: Sequence[Candidate] | None = None) -> Stored:  # fmt: skip
        """``ingest`` with what was stored: ``candidates`` are the article's when looked up
        already (a batch), else they are looked up now."""
        done = self.write(art, backlog=backlog, now=now, key=key, stats=stats, watch=watch,
                          fingerprint=fingerprint, candidates=candidates)  # fmt: skip
        self.report(done, stats)
        return done

    def write(self, art: Article, *, backlog: bool, now: datetime, key: str | None = None,
              stats: CycleStats | None = None, watch: bool = True,
              fingerprint: Fingerprint | None = None,
              candidates: Sequence[Candidate] | None = None) -> Stored:  # fmt: skip
        """``store`` without counting or logging the article (``report`` does, once its
        transaction is committed).

        Inside the repository's ``transaction`` an item another daemon stored meanwhile
        raises ``ConcurrentWriteError`` for the caller to run the whole block again.
        """
        timer = stats if stats is not None else CycleStats()
        intent = self._intent(art, backlog=backlog, key=key, watch=watch, stats=timer,
                              fp=fingerprint, candidates=candidates)  # fmt: skip
        try:
            with timer.timed("store"):
                found = self.repo.add_article_story(intent, now)
        except ConcurrentWriteError:
            if self.repo.in_transaction:  # its writes are part of the caller's
                raise
            # Another daemon stored the same item (GUID, URL or text) from another source
            # after our candidates were read: decide again, now seeing it (a duplicate).
            intent = self._intent(art, backlog=backlog, key=key, watch=watch, stats=timer,
                                  fp=intent.fingerprint)  # fmt: skip
            with timer.timed("store"):
                found = self.repo.add_article_story(intent, now)
        if found is None:
            return Stored(intent, None, None, ())
        article_id, story_id = found
        with timer.timed("store"):
            merged = self._merge_fragments(intent.decision.story_id,
                                           intent.decision.merge_story_ids)
        return Stored(intent, article_id, story_id, merged)

    def report(self, done: Stored, stats: CycleStats | None) -> None:
        """Count a stored article in ``stats`` and log it."""
        if done.article_id is None:
            return
        decision, art = done.intent.decision, done.intent.article
        if stats is not None:
            count_decision(stats, decision.kind, len(done.intent.matches),
                           len(done.intent.alerts))
        log.info("article.stored id=%s source=%s decision=%s level=%s score=%.2f matches=%d",
                 done.article_id, art.source, decision.kind.value, decision.level,
                 decision.score, len(done.intent.matches))  # fmt: skip

    def _merge_fragments(self, story_id: int | None,
                         others: Sequence[int]) -> tuple[tuple[int, int], ...]:  # fmt: skip
        """Merge the story fragments a re-report showed to be its story (``dedupe``).
        Returns ``(story, fragment)`` for each merge that moved articles."""
        if story_id is None:
            return ()
        merged = []
        for other in others:
            try:
                if self.repo.merge_stories(story_id, other, automatic=True):
                    merged.append((story_id, other))
            except StorageError as exc:  # one of them is gone: a bug, not worth a crash
                log.warning("story.merge_skipped story=%s other=%s error=%s",
                            story_id, other, exc)  # fmt: skip
        return tuple(merged)

    def settle(self, now: datetime | None = None, *, limit: int | None = SETTLE_LIMIT) -> int:
        """Settle the stories still of one article ``WINDOW`` after they were
        created, when no more re-reports can join them: each joins the story it clearly
        belongs to, if one stands out (``dedupe.settle``). Resumes after the last story a
        run looked at (kept in the database, so each is settled once), oldest first; at
        most ``limit`` stories a run (None: all that are due).

        Returns:
            How many stories were merged into another.
        """
        now = now or self.clock()
        looked = merged = 0
        with self.repo.hold_lock(SETTLED):  # daemons sharing a database take turns
            after = int(self.repo.get_meta(SETTLED) or 0)
            while limit is None or looked < limit:
                size = SETTLE_BATCH if limit is None else min(SETTLE_BATCH, limit - looked)
                lone, last = self.repo.lone_stories(after, now - WINDOW, size)
                if last == after:
                    break
                for one in lone:
                    merged += self._settle_one(one)
                looked += size
                after = last
                self.repo.set_meta(SETTLED, str(after))
        if merged:
            log.info("stories.settled merged=%d through_story=%d", merged, after)
        return merged

    def _settle_one(self, one: LoneStory) -> int:
        from . import dedupe

        cands = self.repo.get_candidates(one.fingerprint, one.article.when, WINDOW,
                                         dedupe.CANDIDATE_LIMIT,
                                         per_term=dedupe.TERM_POSTINGS)  # fmt: skip
        found = dedupe.settle(one.article, one.fingerprint, one.story_id, cands)
        if found is None or found.story_id is None:
            return 0
        try:
            return int(self.repo.settle_story(one, found.story_id, found.reason))
        except StorageError as exc:  # the story is gone (merged by hand meanwhile)
            log.warning("story.settle_skipped story=%s into=%s error=%s", one.story_id,
                        found.story_id, exc)  # fmt: skip
            return 0

    def _intent(self, art: Article, *, backlog: bool, key: str | None, watch: bool,
                stats: CycleStats, fp: Fingerprint | None = None,
                candidates: Sequence[Candidate] | None = None) -> ArticleIntent:  # fmt: skip
        from . import dedupe  # here: its word tables load only when an article comes

        with stats.timed("dedupe"):
            fp = fp or dedupe.fingerprint(art)
            if candidates is None:
                candidates = self.repo.get_candidates(fp, art.when, dedupe.WINDOW,
                                                      dedupe.CANDIDATE_LIMIT,
                                                      per_term=dedupe.TERM_POSTINGS)  # fmt: skip
            decision = dedupe.decide(art, fp, candidates)
        matches: list[Match] = []
        alerts: tuple[AlertIntent, ...] = ()
        with stats.timed("match"):
            if watch and decision.kind is not DecisionKind.DUPLICATE:
                matches = self.matcher.match(art.title, art.body, art.source)
        # Only a new story alerts: a re-report joins its story and alerts nobody (the
        # story may predate any watchlist, like the seeds, or have alerted already).
        if not backlog and decision.kind is DecisionKind.NEW and matches:
            decision = self._follows(art, fp, decision, stats)  # timed as dedupe
            with stats.timed("match"):
                alerts = self._alerts(art, decision, matches)
        return ArticleIntent(article=art, item_key=key or item_key(art), fingerprint=fp,
                             decision=decision, matches=tuple(matches), alerts=alerts,
                             backlog=backlog)  # fmt: skip

    def _follows(self, art: Article, fp: Fingerprint, decision: Decision,
                 stats: CycleStats) -> Decision:  # fmt: skip
        """A new story that will alert, and relates to nothing within the dedupe window,
        looks for the story it follows up to ``dedupe.RELATED_WINDOW`` back: one more
        lookup, made only for articles that alert, so a cycle of new entries that match
        no watchlist costs nothing more."""
        from . import dedupe

        if decision.related_story_id is not None:
            return decision
        with stats.timed("dedupe"):
            wide = self.repo.get_candidates(fp, art.when, dedupe.RELATED_WINDOW,
                                            dedupe.CANDIDATE_LIMIT,
                                            per_term=dedupe.TERM_POSTINGS)  # fmt: skip
            return dedupe.follow_up(art, fp, decision, wide)

    def _alerts(self, art: Article, decision: Any,
                matches: Sequence[Match]) -> tuple[AlertIntent, ...]:  # fmt: skip
        if not matches:
            return ()
        follows = None
        if decision.related_story_id is not None:
            related = self.repo.get_story(decision.related_story_id)
            if related and related["alerted"]:
                follows = related["title"]
        out: list[AlertIntent] = []
        by_name = {w.name: w for w in self.config.watchlists}
        for match in matches:
            wl = by_name[match.watchlist]
            payload = {**_payload(art, match, follows), "urgent": wl.urgent}
            due = next_digest_at(wl.digest, self.clock())
            for target in wl.notify or (CONSOLE,):
                out.append(AlertIntent(watchlist=wl.name, target=target, digest=str(wl.digest),
                                       payload={**payload, "target": target}, due=due))  # fmt: skip
        return tuple(out)


FULL_TEXT_MAX_BYTES = 2_000_000
FULL_TEXT_PER_POLL = 50  # pages fetched for one poll at most; the rest keep their summary


def with_full_text(fetcher: Any, articles: Sequence[Article], config: Config) -> list[Article]:
    """Articles with the main text of their page as body, where it says more.

    Article links come from the internet, so they are fetched with the SSRF guard, a
    size cap and a deadline; a page that fails keeps the feed's summary.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .parse import extract_text

    def one(art: Article) -> Article:
        if not art.link:
            return art
        try:
            page = fetcher.fetch_untrusted(art.link, timeout=min(config.poll.timeout, 20.0),
                                           max_bytes=min(config.poll.max_bytes,
                                                         FULL_TEXT_MAX_BYTES))  # fmt: skip
            text = extract_text(page.content)
        except MonitorError as exc:
            log.info("fulltext.failed source=%s error=%s", art.source,
                     redact_secrets(str(exc), config.secrets))  # fmt: skip
            return art
        return replace(art, body=text) if len(text) > len(art.body) else art

    head, rest = list(articles[:FULL_TEXT_PER_POLL]), list(articles[FULL_TEXT_PER_POLL:])
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, head)) + rest


def _payload(art: Article, match: Match, follows: str | None) -> dict[str, Any]:
    from storage import alert_payload

    field = "body" if any(h.field == "body" for h in match.hits) else "title"
    text = art.body if field == "body" else art.title
    snippet, spans = make_snippet(text, match.hits, field)
    return alert_payload({
        "watchlist": match.watchlist, "target": "", "title": art.title, "source": art.source,
        "link": art.link or art.url, "published": art.published, "snippet": snippet,
        "terms": match.terms, "fields": tuple(dict.fromkeys(h.field for h in match.hits)),
        "highlights": spans, "follows": follows, "sources": (art.source,),
    })  # fmt: skip


def _split_seed(text: str) -> tuple[str, str]:
    """A seed file's title (its first line of four words or more) and body."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    for i, line in enumerate(lines):
        if len(line.split()) >= 4:
            if len(line.split()) <= 25:
                return line, "\n".join(x for x in lines[i + 1 :] if x)
            first = line.split(". ")[0]
            return first[:200], "\n".join(x for x in lines[i:] if x)
    return text[:120], text

