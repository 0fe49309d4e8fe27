"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), which feedparser 6 does not read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from monitor.errors import ParseError
from monitor.types import Entry

__all__ = ["looks_like_json", "parse_json_feed"]

_JSON_TYPES = ("application/feed+json", "application/json")


def looks_like_json(data: bytes, content_type: str) -> bool:
    """True when the body is (declared or looks like) JSON rather than XML."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES:
        return True
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def parse_json_feed(data: bytes, source: str) -> list[tuple[Entry, dict[str, Any]]]:
    """Parse a JSON Feed into entries (each with its raw item, for key derivation).

    Raises:
        ParseError: Not JSON, or not a JSON Feed.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"{source}: not a feed: invalid JSON ({exc})") from exc
    version = doc.get("version", "") if isinstance(doc, dict) else ""
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise ParseError(f"{source}: not a feed: JSON without a JSON Feed version")
    items = doc.get("items") or []
    if not isinstance(items, list):
        raise ParseError(f"{source}: not a feed: JSON Feed 'items' is not a list")
    return [(_entry(item, source), item) for item in items if isinstance(item, dict)]


def _entry(item: dict[str, Any], source: str) -> Entry:
    guid = item.get("id")
    return Entry(
        source=source,
        guid=str(guid).strip() or None if guid is not None else None,
        link=_text(item.get("url")) or _text(item.get("external_url")) or None,
        title=_text(item.get("title")),
        summary=_text(item.get("summary")),
        content=_text(item.get("content_html")) or _text(item.get("content_text")),
        published=_date(item.get("date_published")) or _date(item.get("date_modified")),
        author=_author(item),
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _author(item: dict[str, Any]) -> str | None:
    authors = item.get("authors")
    first = authors[0] if isinstance(authors, list) and authors else item.get("author")
    name = first.get("name") if isinstance(first, dict) else None
    return name.strip() or None if isinstance(name, str) else None
