"""The schema: SQLAlchemy Core tables, the same on SQLite and PostgreSQL.

Times are stored as timezone-aware UTC (``UTCDateTime`` adds the zone back on SQLite).
Text is stored the same on both (``CleanText``, ``CleanString``, ``CleanJSON``): NUL
characters, which PostgreSQL refuses, and lone surrogates, which neither can encode, are
removed on the way in, so what one backend keeps the other keeps too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "CleanJSON",
    "CleanString",
    "CleanText",
    "IndexTime",
    "UTCDateTime",
    "article_bands",
    "article_keys",
    "article_terms",
    "articles",
    "clean_text",
    "json_as_stored",
    "matches",
    "meta",
    "metadata",
    "micros",
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


class IndexTime(UTCDateTime):
    """A UTC time in an index row, stored as an integer of microseconds since 1970.

    On SQLite a ``DateTime`` is 26 characters of text, and the term index is the largest
    index and much of the write work. On PostgreSQL a batch lookup returns each term's
    postings with their times: turning ``timestamp with time zone`` into microseconds
    there (numeric arithmetic per posting) took 40% of the statement's time (85 against
    50 ms for 1,679 terms). Comparisons and ordering are those of the times.
    """

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(Integer() if dialect.name == "sqlite" else BigInteger())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        value = super().process_bind_param(value, dialect)
        return None if value is None else micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, int):
            return (_EPOCH + value * _MICROSECOND).replace(tzinfo=UTC)
        return super().process_result_value(value, dialect)


_EPOCH = datetime(1970, 1, 1)  # naive UTC, as UTCDateTime binds it on SQLite
_MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """``value`` as microseconds since 1970 (UTC), as ``IndexTime`` stores it."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (value - _EPOCH) // _MICROSECOND


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` as both backends can store it: without NUL and without lone surrogates.

    A surrogate pair (UTF-16 read as two code points) becomes the character it encodes;
    astral characters (emoji, rare CJK) are kept as they are.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    return value


def json_as_stored(value: Any) -> bytes:
    """The JSON text a ``CleanJSON`` column keeps for ``value`` (what reading it back
    decodes), written once."""
    return _clean_dump(value) or orjson.dumps(_cleaned(value))


def _clean_json(value: Any) -> Any:
    """``value`` with every string (keys too, at any depth) through ``clean_text``."""
    return value if _clean_dump(value) is not None else _cleaned(value)


def _clean_dump(value: Any) -> bytes | None:
    """orjson's text of ``value`` when nothing in it needs cleaning, else None.

    Nearly every value is clean already: orjson writes it in a few microseconds, and
    only when that fails (a lone surrogate, a key that is not a string) or shows a NUL
    is it walked in Python, which took 3% of an all-new poll cycle for fingerprints.
    """
    try:
        text = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return None
    return None if b"\\u0000" in text else text


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


class CleanText(TypeDecorator[str]):
    """``Text`` whose values (stored and looked up) pass through ``clean_text``."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return clean_text(value) if isinstance(value, str) else value


class CleanString(CleanText):
    """``String(length)`` whose values pass through ``clean_text``."""

    impl = String  # type: ignore[assignment]
    cache_ok = True


class CleanJSON(TypeDecorator[Any]):
    """``JSON`` whose strings (keys and values, at any depth) pass through ``clean_text``."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _clean_json(value)


meta = Table(
    "meta",
    metadata,
    Column("key", CleanString(64), primary_key=True),
    Column("value", CleanText, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", CleanString(300), nullable=False, unique=True),
    Column("url", CleanText, nullable=False),
    Column("config_url", CleanText, nullable=False),  # the URL as configured (a 301 may move url)
    Column("type", CleanString(16), nullable=False, default="feed"),
    Column("enabled", Boolean, nullable=False, default=True),  # present in the config
    Column("etag", CleanText),
    Column("last_modified", CleanText),
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("lease_owner", CleanString(100)),
    Column("lease_until", UTCDateTime),
    Column("first_success", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_polled", UTCDateTime),
    Column("last_new_entry", UTCDateTime),
    Column("last_error", CleanText),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("retry_after_until", UTCDateTime),  # a server's Retry-After, honoured by --once
    Column("disabled_reason", CleanText),  # set by a 410: stays disabled until the URL changes
    Column("announced", String(16)),  # the health state last told to on_source_failure
    Column("entries_total", Integer, nullable=False, default=0),
)

stories = Table(
    "stories",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("title", CleanText, nullable=False),
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
    Column("source", CleanString(300), nullable=False),
    Column("item_key", CleanText, nullable=False),  # per-source identity: guid, link or hash
    Column("title", CleanText, nullable=False),
    Column("body", CleanText, nullable=False),
    Column("url", CleanText),
    Column("link", CleanText),
    Column("guid", CleanText),
    Column("author", CleanText),
    Column("published", UTCDateTime),
    Column("fetched", UTCDateTime, nullable=False),
    Column("at", UTCDateTime, nullable=False),  # published, else fetched
    Column("story_id", ID, ForeignKey("stories.id"), nullable=False),
    Column("fingerprint", CleanJSON, nullable=False),
    Column("decision", CleanString(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", CleanText, nullable=False),
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
    Column("key", CleanString(200), primary_key=True),
    Column("article_id", ID, nullable=False),
)

article_bands = Table(
    "article_bands",
    metadata,
    Column("band", CleanString(64), nullable=False),
    Column("article_id", ID, nullable=False),
    # The key is the only index: on SQLite the rows live in it (no rowid table beside).
    PrimaryKeyConstraint("band", "article_id", name="pk_article_bands"),
    sqlite_with_rowid=False,
)

article_terms = Table(
    "article_terms",
    metadata,
    Column("term", CleanString(200), nullable=False),
    Column("at", IndexTime, nullable=False),
    Column("article_id", ID, nullable=False),
    # The key covers the article id: a level-3 lookup reads each term's latest postings
    # in its window from the key alone and stops early (``SQLRepository.get_candidates``).
    # On SQLite the rows live in the key (no rowid table beside) and ``at`` is an integer:
    # a fifth of the size, half the write work of a text time and a separate index.
    PrimaryKeyConstraint("term", "at", "article_id", name="pk_article_terms"),
    sqlite_with_rowid=False,
)

matches = Table(
    "matches",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("article_id", ID, nullable=False),
    Column("story_id", ID, nullable=False),
    Column("watchlist", CleanString(300), nullable=False),
    Column("terms", CleanJSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_matches_watchlist_created", "watchlist", "created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("key", CleanString(300), nullable=False, unique=True),  # story/watchlist/target
    Column("story_id", ID, nullable=False),
    Column("article_id", ID, nullable=False),
    Column("watchlist", CleanString(300), nullable=False),
    Column("target", CleanString(300), nullable=False),
    Column("payload", CleanJSON, nullable=False),
    Column("status", CleanString(16), nullable=False),  # pending | sent | dead
    Column("digest", CleanString(64), nullable=False, default="immediate"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", CleanString(100)),
    Column("lease_until", UTCDateTime),
    Column("last_error", CleanText),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)
