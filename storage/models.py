"""The schema: SQLAlchemy Core tables, the same on SQLite and PostgreSQL.

Times are stored as timezone-aware UTC (``UTCDateTime`` adds the zone back on SQLite).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "article_bands",
    "article_keys",
    "article_terms",
    "articles",
    "matches",
    "meta",
    "metadata",
    "outbox",
    "sources",
    "stories",
]

metadata = MetaData()

ID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime that is always UTC-aware on the way in and out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(300), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("config_url", Text, nullable=False),  # the URL as configured (a 301 may move url)
    Column("type", String(16), nullable=False, default="feed"),
    Column("enabled", Boolean, nullable=False, default=True),  # present in the config
    Column("etag", Text),
    Column("last_modified", Text),
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("first_success", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_polled", UTCDateTime),
    Column("last_new_entry", UTCDateTime),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("retry_after_until", UTCDateTime),  # a server's Retry-After, honoured by --once
    Column("disabled_reason", Text),  # set by a 410: stays disabled until the URL changes
    Column("entries_total", Integer, nullable=False, default=0),
)

stories = Table(
    "stories",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("articles", Integer, nullable=False, default=1),
    Column("related_story_id", ID),
    Column("merged_into", ID),
    Column("created_at", UTCDateTime, nullable=False),
)

articles = Table(
    "articles",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source", String(300), nullable=False),
    Column("item_key", Text, nullable=False),  # per-source identity: guid, else link, else hash
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("url", Text),
    Column("link", Text),
    Column("guid", Text),
    Column("author", Text),
    Column("published", UTCDateTime),
    Column("fetched", UTCDateTime, nullable=False),
    Column("at", UTCDateTime, nullable=False),  # published, else fetched
    Column("story_id", ID, ForeignKey("stories.id"), nullable=False),
    Column("fingerprint", JSON, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("matched_article_id", ID),
    Column("related_story_id", ID),
    Column("backlog", Boolean, nullable=False, default=False),
    Column("pruned", Boolean, nullable=False, default=False),
    UniqueConstraint("source", "item_key", name="uq_articles_item"),
    Index("ix_articles_story", "story_id"),
    Index("ix_articles_at", "at"),
    Index("ix_articles_fetched_source", "fetched", "source"),  # entries per source in 24 h
    Index("ix_articles_pruned_fetched", "pruned", "fetched"),  # retention finds old bodies
)

article_keys = Table(
    "article_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("article_id", ID, nullable=False),
)

article_bands = Table(
    "article_bands",
    metadata,
    Column("band", String(64), nullable=False),
    Column("article_id", ID, nullable=False),
    Index("ix_article_bands_band", "band"),
)

article_terms = Table(
    "article_terms",
    metadata,
    Column("term", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("article_id", ID, nullable=False),
    Index("ix_article_terms_term_at", "term", "at"),
)

matches = Table(
    "matches",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("article_id", ID, nullable=False),
    Column("story_id", ID, nullable=False),
    Column("watchlist", String(300), nullable=False),
    Column("terms", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_matches_watchlist_created", "watchlist", "created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),  # story/watchlist/target
    Column("story_id", ID, nullable=False),
    Column("article_id", ID, nullable=False),
    Column("watchlist", String(300), nullable=False),
    Column("target", String(300), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | dead
    Column("digest", String(64), nullable=False, default="immediate"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)
