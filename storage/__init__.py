"""Persistence: the ``Repository`` protocol and ``make_repository``.

One interface, one SQLAlchemy implementation (``SQLRepository``) that runs on SQLite
(the embedded default) and PostgreSQL (``postgresql+psycopg://``). See
``SQLRepository`` for the contract: errors, time zones, threads, schema versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from monitor.types import (
    AlertIntent,
    ArticleIntent,
    BatchCandidates,
    Candidate,
    Fingerprint,
    LoneStory,
    OutboxItem,
    PollIntent,
    SourceState,
)

from ._engine import RETRY_FOR
from .repository import SQLRepository, alert_payload

__all__ = ["Repository", "SQLRepository", "alert_payload", "make_repository", "seed_files"]


class Repository(Protocol):
    """What the pipeline, delivery and CLI need from storage."""

    def create(self) -> None: ...
    def close(self) -> None: ...
    def release_leases(self) -> None: ...
    def hold_lock(self, name: str) -> AbstractContextManager[None]: ...
    def ping(self) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def sync_sources(self, specs: Sequence[tuple[str, str, str]], now: datetime) -> None: ...
    def claim_sources(self, now: datetime, owner: str, lease: timedelta, *,
                      all_enabled: bool = False,
                      limit: int | None = None) -> list[SourceState]: ...  # fmt: skip
    def extend_source_leases(self, owner: str, names: Sequence[str],
                             until: datetime) -> int: ...  # fmt: skip
    def record_poll(self, intent: PollIntent) -> None: ...
    def record_polls(self, intents: Sequence[PollIntent]) -> None: ...
    def get_sources(self) -> list[dict[str, Any]]: ...
    def get_source(self, name: str) -> dict[str, Any] | None: ...
    def announce_source(self, name: str, state: str | None, alert: AlertIntent,
                        now: datetime) -> None: ...  # fmt: skip
    def get_seen_items(self, source: str, item_keys: Sequence[str]) -> set[str]: ...
    def get_candidates(self, fp: Fingerprint, at: datetime, window: timedelta,
                       limit: int, *, per_term: int = ...) -> list[Candidate]: ...  # fmt: skip
    def get_candidates_batch(self, probes: Sequence[tuple[Fingerprint, datetime]],
                             window: timedelta, limit: int, *,
                             per_term: int = ...) -> list[BatchCandidates]: ...  # fmt: skip
    def as_candidate(self, intent: ArticleIntent, article_id: int,
                     story_id: int) -> Candidate: ...  # fmt: skip
    def add_article(self, intent: ArticleIntent, now: datetime) -> int | None: ...
    def add_article_story(self, intent: ArticleIntent,
                          now: datetime) -> tuple[int, int] | None: ...  # fmt: skip
    def get_article(self, article_id: int) -> dict[str, Any] | None: ...
    def get_story(self, story_id: int) -> dict[str, Any] | None: ...
    def iter_articles(self, since: datetime | None = None, *,
                      batch: int = 1000) -> Iterator[dict[str, Any]]: ...  # fmt: skip
    def count_articles(self, since: datetime | None = None, *,
                       include_pruned: bool = True) -> int: ...  # fmt: skip
    def get_entry_counts(self, since: datetime) -> dict[str, int]: ...
    def prune_articles(self, before: datetime, *, limit: int = 500) -> int: ...
    def merge_stories(self, keep: int, other: int, *, automatic: bool = ...) -> int: ...
    def split_article(self, article_id: int, now: datetime) -> int: ...
    def lone_stories(self, after: int, created_before: datetime,
                     limit: int) -> tuple[list[LoneStory], int]: ...
    def settle_story(self, lone: LoneStory, into: int, reason: str) -> bool: ...
    def claim_alerts(self, now: datetime, owner: str, lease: timedelta, *,
                     limit: int = 500) -> list[OutboxItem]: ...  # fmt: skip
    def extend_alert_leases(self, owner: str, ids: Sequence[int], until: datetime) -> int: ...
    def defer_alert(self, item_id: int, until: datetime, *,
                    digest: str | None = None) -> None: ...  # fmt: skip
    def count_sent(self, target: str, since: datetime) -> int: ...
    def mark_sent(self, item_id: int, now: datetime) -> None: ...
    def mark_failed(self, item_id: int, error: str, *, retry_at: datetime | None) -> None: ...
    def requeue_dead(self, now: datetime) -> int: ...
    def get_outbox_summary(self) -> dict[str, Any]: ...
    def get_watchlist_counts(self, since: datetime) -> dict[str, tuple[int, int]]: ...
    def get_sent_alerts(self, since: datetime) -> list[dict[str, Any]]: ...


def make_repository(url: str, *, create: bool = True,
                    retry_for: float = RETRY_FOR) -> SQLRepository:  # fmt: skip
    """Open the database at ``url`` (creating a SQLite file's folder and the schema).

    Args:
        url: a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``).
        create: create or migrate the schema now.
        retry_for: seconds a transaction failing on a transient error (server restart,
            dropped connection) is retried before ``StorageError``.

    Raises:
        StorageError: the database cannot be opened or is of a newer schema.
    """
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    repo = SQLRepository(url, retry_for=retry_for)
    if create:
        repo.create()
    return repo


def seed_files() -> list[tuple[str, str]]:
    """The shipped seed documents as ``(file name, text)``, in name order."""
    folder = resources.files("storage") / "seeds"
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.iterdir()
                  if p.name.endswith(".txt"))  # fmt: skip
