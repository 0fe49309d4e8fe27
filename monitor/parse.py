"""Parse: fetched documents into ``Entry`` values (pure; no network, no file system).

- ``parse_feed``: RSS, Atom, RDF through feedparser, JSON Feed through the standard
  library. feedparser gets the body as a byte *stream* with the real response headers
  (content type for the charset, content location for relative links): never a URL or
  a path (``feedparser.parse(b"/etc/passwd")`` opens the file; a stream never does).
- ``parse_page``: entries from an HTML listing with a CSS selector.
- ``extract_text``: the main text of an article page.

Issue 6 rules kept here: an HTML or challenge page served to a feed URL is a
``ParseError`` ("not a feed: got text/html page"), never "no entries"; a broken (bozo)
feed still yields the entries feedparser found, else a ``ParseError`` with the reason;
hostile entity declarations are refused before parsing (``_parse_guard``); entries
with neither id nor link get a derived key, and a GUID repeated across items is not
trusted as a key.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import xml.sax
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser  # type: ignore[import-untyped,unused-ignore]

from monitor._parse_fast import fast_entries
from monitor._parse_guard import entity_problem, sniff_text
from monitor._parse_html import absolute_link, extract_text, parse_page
from monitor._parse_json import looks_like_json, parse_json_feed
from monitor.errors import ParseError
from monitor.normalize import clean_text
from monitor.types import Entry, Fetched

__all__ = ["derived_key", "extract_text", "feedparser_entries", "parse_feed", "parse_page"]

DERIVED_PREFIX = "derived:"  # GUIDs we made up, so storage can tell them from real ones
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
# bozo reasons that do not mean the document is broken
_HARMLESS_BOZO: tuple[type[Exception], ...] = (
    feedparser.CharacterEncodingOverride,
    feedparser.NonXMLContentType,
)


def parse_feed(fetched: Fetched, source: str, *, fast: bool = True) -> list[Entry]:
    """Parse a feed document (RSS 0.9x/1.0/2.0, Atom, JSON Feed).

    Plain, well-formed RSS 2.0 and Atom go through lxml (``monitor._parse_fast``, about
    ten times faster), everything else through feedparser; both give the same entries.

    Args:
        fetched: The HTTP answer: body, headers and final URL.
        source: The source name, for entries and messages.
        fast: Try the lxml path first (False: feedparser only).

    Returns:
        The entries in document order (possibly none, for a valid empty feed).

    Raises:
        ParseError: Not a feed (an HTML page, JSON that is not a JSON Feed, an empty
            or unreadable body), a refused entity declaration, or a broken feed in
            which no entry could be found. The message names the source and problem.
    """
    data = fetched.content
    if not data.strip():
        raise ParseError(f"{source}: not a feed: empty document")
    problem = entity_problem(data)
    if problem:
        raise ParseError(f"{source}: {problem}")
    if looks_like_json(data, fetched.headers.get("content-type", "")):
        pairs = parse_json_feed(data, source)
        return _with_keys([e for e, _ in pairs], base=fetched.url)
    entries = fast_entries(fetched, source) if fast else None
    if entries is None:
        entries = feedparser_entries(fetched, source)
    return _with_keys(entries, base=_base(fetched))


def feedparser_entries(fetched: Fetched, source: str) -> list[Entry]:
    """The entries of an RSS, Atom or RDF document as feedparser reads it (no keys yet).

    Raises:
        ParseError: as ``parse_feed``.
    """
    result = feedparser.parse(io.BytesIO(fetched.content), response_headers=_headers(fetched))
    _check_feed(result, fetched, source)
    return [_entry(raw, source) for raw in result.entries]


def _headers(fetched: Fetched) -> dict[str, str]:
    """The real response headers, for feedparser's charset and base-URL rules.

    No Content-Location is made up from the fetched URL: feedparser resolves RSS GUIDs
    against it as if they were links, and a GUID must not change when a feed moves.
    Links are made absolute afterwards (``_with_keys``).
    """
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    if "content-location" in headers:
        headers["content-location"] = _base(fetched)
    return headers


def _base(fetched: Fetched) -> str:
    location = fetched.headers.get("content-location", "").strip()
    return urljoin(fetched.url, location) if location else fetched.url


def _check_feed(result: Any, fetched: Fetched, source: str) -> None:
    """Raise unless feedparser found a feed (see the module docstring)."""
    version, entries = result.get("version", ""), result.get("entries", [])
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    if not version and _is_html(fetched):
        media = _media_type(fetched)
        media = media if media in _HTML_TYPES else "text/html"
        raise ParseError(f"{source}: not a feed: got {media} page{_page_title(fetched.content)}")
    if entries:
        return
    if bozo is not None and not isinstance(bozo, _HARMLESS_BOZO):
        raise ParseError(f"{source}: not a readable feed, no entries found: {_reason(bozo)}")
    if not version:
        raise ParseError(f"{source}: not a feed: no RSS, Atom or RDF root element")


def _media_type(fetched: Fetched) -> str:
    return fetched.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_html(fetched: Fetched) -> bool:
    if _media_type(fetched) in _HTML_TYPES:
        return True
    head = sniff_text(fetched.content[:1024]).lstrip().lower()
    return head.startswith(("<!doctype html", "<html"))


def _page_title(data: bytes) -> str:
    """`` (title: '...')`` for an HTML page, so a login or challenge page is recognisable."""
    found = _HTML_TITLE.search(sniff_text(data[:65536]))
    title = clean_text(found.group(1)) if found else ""
    return f" (title: {title[:80]!r})" if title else ""


def _reason(exc: Exception) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        where = f"line {exc.getLineNumber()}, column {exc.getColumnNumber()}"
        return f"XML error at {where}: {exc.getMessage()}"
    return f"{type(exc).__name__}: {exc}"


def _entry(raw: Any, source: str) -> Entry:
    return Entry(
        source=source,
        guid=str(raw.get("id") or "").strip() or None,
        link=str(raw.get("link") or "").strip() or None,
        title=str(raw.get("title") or ""),
        summary=str(raw.get("summary") or ""),
        content=_content(raw.get("content") or []),
        published=_date(raw),
        author=str(raw.get("author") or "").strip() or None,
    )


def _content(parts: Sequence[Any]) -> str:
    """The entry's content: the first HTML part, else the first part."""
    values = [(str(p.get("type", "")), str(p.get("value", ""))) for p in parts]
    html = [v for t, v in values if "html" in t and v.strip()]
    text = [v for _, v in values if v.strip()]
    return (html or text or [""])[0]


def _date(raw: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = raw.get(key)
        if isinstance(value, time.struct_time):
            try:
                return datetime(*value[:6], tzinfo=UTC)
            except (ValueError, OverflowError):
                continue
    return None


def derived_key(entry: Entry) -> str:
    """A stable key for an entry that has no usable GUID or link.

    A hash of the cleaned title, summary and date: the same item in the next poll
    gets the same key.
    """
    date = entry.published.isoformat() if entry.published else ""
    text = "\x1f".join((clean_text(entry.title), clean_text(entry.summary), date))
    return DERIVED_PREFIX + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def _with_keys(entries: list[Entry], *, base: str) -> list[Entry]:
    """Absolute http(s) links, and keys for entries whose GUID cannot be trusted.

    A GUID that several items of one document share (some feeds repeat one for every
    item) is dropped for those items; they fall back to their link when the link is
    unique in the document, else to a derived key.
    """
    entries = [_with_link(e, base) for e in entries]
    guids = Counter(e.guid for e in entries if e.guid)
    links = Counter(e.link for e in entries if e.link)
    keyed = []
    for entry in entries:
        guid = entry.guid if entry.guid and guids[entry.guid] == 1 else None
        if guid is None and (entry.link is None or (entry.guid and links[entry.link] > 1)):
            guid = derived_key(entry)
        keyed.append(replace(entry, guid=guid))
    return keyed


def _with_link(entry: Entry, base: str) -> Entry:
    link = absolute_link(base, entry.link) if entry.link else None
    return replace(entry, link=link)
