"""Values passed between the stages.

Named by direction (storage→pipeline ``FeedState``, pipeline→storage ``ArticleIntent``).
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = [
    "Alert",
    "AlertIntent",
    "Article",
    "ArticleIntent",
    "BatchCandidates",
    "Candidate",
    "Decision",
    "DecisionKind",
    "Delivery",
    "DeliveryOutcome",
    "Entry",
    "FeedState",
    "Fetched",
    "Fingerprint",
    "Hit",
    "LoneStory",
    "Match",
    "OutboxItem",
    "PollIntent",
    "SourceState",
]


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the fetcher needs to poll one source (storage → fetch)."""

    name: str
    url: str
    type: str = "feed"  # "feed" or "page"
    etag: str | None = None
    last_modified: str | None = None
    timeout: float = 30.0  # total deadline in seconds
    max_bytes: int = 10 * 1024 * 1024
    headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    select: str | None = None  # CSS selector for page sources


@dataclass(frozen=True, slots=True)
class Fetched:
    """One HTTP answer (fetch → parse).

    ``not_modified`` is True for a 304; ``content`` is then empty. ``permanent_url`` is set
    when a 301/308 moved the source. ``retry_after`` is seconds to wait, when the server
    asked for it.
    """

    url: str  # the final URL after redirects
    status: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    permanent_url: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One item as the parser found it, before normalisation (text may hold HTML)."""

    source: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str = ""
    published: datetime | None = None
    author: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """A normalised article: plain text, canonical URL, UTC dates."""

    source: str
    title: str
    body: str
    url: str | None  # canonical URL (see normalize.canonical_url)
    link: str | None  # the link as the feed gave it
    guid: str | None
    published: datetime | None
    fetched: datetime
    author: str | None = None

    @property
    def when(self) -> datetime:
        """The article's own time: published, else fetched."""
        return self.published or self.fetched


@dataclass(frozen=True, slots=True)
class Hit:
    """One place a query term matched: ``field`` is title, body or source."""

    term: str  # the query term as written (e.g. '"joint force headquarters"', 'deter*')
    field: str
    start: int  # character offsets into that field's original text
    end: int


@dataclass(frozen=True, slots=True)
class Match:
    """A watchlist that matched an article, with the hits that made it match."""

    watchlist: str
    hits: tuple[Hit, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """The distinct matched terms, in first-hit order. A term whose every hit is a
        span an earlier term matched too ("U.S. Forces Japan" where "US Forces Japan"
        matched the same words) adds nothing and is left out."""
        spans: dict[tuple[str, int, int], str] = {}
        for h in self.hits:
            spans.setdefault((h.field, h.start, h.end), h.term)
        return tuple(dict.fromkeys(spans.values()))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What dedupe derives from an article and storage indexes.

    - ``keys``: exact level-1/2 keys (``guid:…``, ``url:…``, ``text:…`` content hash); a
      stored article sharing any key is the same item, whatever its age.
    - ``bands``: locality-sensitive hash bands of the body (level 2, near-identical text);
      any age.
    - ``terms``: rare terms and entities for level-3 candidate lookup, within a time window.
    - ``data``: JSON-serialisable scoring data (term weights, entities, numbers, …).
    """

    keys: tuple[str, ...]
    bands: tuple[str, ...]
    terms: tuple[str, ...]
    data: dict[str, Any]
    version: int = 1


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored article that dedupe may compare against (storage → dedupe).

    Its fingerprint holds what dedupe compares (keys, data, version); bands and terms,
    which only storage's index reads, are left empty.
    """

    article_id: int
    story_id: int
    when: datetime
    title: str
    fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class BatchCandidates:
    """One article's candidates from a batch lookup (storage → pipeline).

    ``stored``: the stored articles found; ``earlier``: the positions of the earlier
    articles of the same batch found too, on the assumption that each of them is stored,
    in batch order, before this article is decided (``Repository.get_candidates_batch``).
    """

    stored: tuple[Candidate, ...]
    earlier: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LoneStory:
    """A story still of one article (storage → dedupe's ``settle``): the story, and its
    article as stored, with the whole fingerprint (keys, bands and terms too)."""

    story_id: int
    article_id: int
    article: Article
    fingerprint: Fingerprint


class DecisionKind(str, Enum):
    NEW = "new"  # a new story
    DUPLICATE = "duplicate"  # same item or same text as a stored article (level 1 or 2)
    REREPORT = "rereport"  # another write-up of a known story (level 3)


@dataclass(frozen=True, slots=True)
class Decision:
    """What dedupe decided for one article, with why.

    ``article_id`` is the matched article (duplicate, or best re-report candidate);
    ``story_id`` the story joined (None for NEW); ``related_story_id`` for a NEW story that
    follows up an earlier one; ``merge_story_ids`` the stories a re-report shows to be
    fragments of the story it joins (to be merged into it once the article is stored).
    """

    kind: DecisionKind
    level: int  # 0 for new, else 1, 2 or 3
    score: float
    reason: str
    article_id: int | None = None
    story_id: int | None = None
    related_story_id: int | None = None
    merge_story_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to send to one target (pipeline → notify)."""

    key: str  # idempotency key, stable across retries
    watchlist: str
    target: str  # notifier name
    story_id: int
    title: str
    source: str
    link: str | None
    published: datetime | None
    snippet: str  # plain text around the first hits
    terms: tuple[str, ...]  # matched query terms, for "why this fired"
    fields: tuple[str, ...] = ()  # fields that matched (title, body, source)
    highlights: tuple[tuple[int, int], ...] = ()  # spans of matched text within snippet
    follows: str | None = None  # title of the earlier related story
    sources: tuple[str, ...] = ()
    urgent: bool = False  # passes through quiet hours


class DeliveryOutcome(str, Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later
    PERMANENT = "permanent"  # refused for good: dead letter at once


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one send (notify → pipeline). ``error`` is redacted."""

    outcome: DeliveryOutcome
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class AlertIntent:
    """One outbox row to write with an article (pipeline → storage).

    ``payload`` holds the ``Alert`` fields except ``key`` and ``story_id``, which the
    store fills in once the story is known.
    """

    watchlist: str
    target: str
    digest: str
    payload: dict[str, Any]
    due: datetime | None = None  # when to send: now, or the next digest time


@dataclass(frozen=True, slots=True)
class ArticleIntent:
    """Everything stored for one new article, in one transaction (pipeline → storage)."""

    article: Article
    item_key: str
    fingerprint: Fingerprint
    decision: Decision
    matches: tuple[Match, ...] = ()
    alerts: tuple[AlertIntent, ...] = ()
    backlog: bool = False


@dataclass(frozen=True, slots=True)
class PollIntent:
    """The outcome of polling one source (pipeline → storage)."""

    source: str
    polled_at: datetime
    next_poll_at: datetime
    ok: bool
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    new_url: str | None = None  # a permanent redirect moved the source
    disabled_reason: str | None = None  # 410 Gone
    retry_after_until: datetime | None = None  # the server asked us to wait until then
    new_entries: int = 0
    not_modified: bool = False


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source as the store knows it (storage → pipeline)."""

    name: str
    url: str
    type: str
    etag: str | None
    last_modified: str | None
    first_success: datetime | None
    consecutive_failures: int
    disabled_reason: str | None
    next_poll_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed outbox row (storage → delivery)."""

    id: int
    key: str
    watchlist: str
    target: str
    digest: str
    attempts: int
    alert: Alert
