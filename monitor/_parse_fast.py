"""A fast path for plain, well-formed RSS 2.0 and Atom 1.0 feeds, with lxml (issue 9).

feedparser reads anything, but it costs about 0.6 ms per entry: it runs a SAX parser in
Python, sanitises every HTML field and resolves relative links in them, and the
pipeline then cleans the same HTML a second time (``normalize.clean_text``). lxml builds
the tree in C, and the HTML fields go to ``clean_text`` as they are, one HTML pass.

It is only a fast path: ``fast_entries`` returns None, and ``parse_feed`` uses feedparser,
for anything it is not sure to read exactly as feedparser does: XML that is not well
formed, a DOCTYPE, ``xml:base``, RSS 1.0/RDF, an encoding that the HTTP charset
contradicts, an element or namespace inside an item that feedparser maps to a field we
read and this module does not handle, repeated fields, markup inside a field, HTML that
feedparser's sanitiser treats differently from ``clean_text`` (template, applet, svg,
math), a date feedparser could not read either, no entries at all. tests/test_parse_fast.py
checks on real and generated feeds that both paths give the same articles.

Field mapping (as feedparser does it): RSS ``guid`` is the id and, unless
``isPermaLink="false"``, the link of an item without ``<link>``; ``pubDate`` is the
published date, ``dc:date`` the updated one; ``author`` or ``dc:creator`` the author. Atom
``id``, the one ``rel="alternate"`` HTML link, ``published``/``updated``, the author as
``name (email)``; ``summary`` and ``content`` of type text or html.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from html.entities import name2codepoint
from typing import Any

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from monitor.types import Entry, Fetched

__all__ = ["fast_entries"]

_ATOM = "http://www.w3.org/2005/Atom"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
# Namespaces whose item elements feedparser keeps under keys we never read.
_IGNORED_NS = frozenset({
    "http://wellformedweb.org/CommentAPI/",
    "http://purl.org/rss/1.0/modules/slash/",
    "http://purl.org/rss/1.0/modules/syndication/",
    "http://rssnamespace.org/feedburner/ext/1.0",
    "http://www.georss.org/georss",
    "com-wordpress:feed-additions:1",
})  # fmt: skip
_MEDIA = "http://search.yahoo.com/mrss/"
# Media RSS elements feedparser keeps apart (media_content, media_thumbnail, ...); its
# media:title, media:description and media:category (also inside media:group) become the
# entry's title, summary and tags, so those go to feedparser.
_IGNORED_MEDIA = frozenset(f"{{{_MEDIA}}}{name}" for name in (
    "content", "thumbnail", "credit", "keywords", "rating", "player", "restriction",
    "license", "copyright", "hash", "text"))  # fmt: skip
_RSS_ITEM = frozenset({"title", "link", "description", "guid", "pubDate", "author",
                       "category", "comments", "enclosure",
                       f"{{{_CONTENT}}}encoded", f"{{{_DC}}}creator", f"{{{_DC}}}date",
                       f"{{{_DC}}}subject"})  # fmt: skip
_ATOM_ENTRY = frozenset(f"{{{_ATOM}}}{name}" for name in (
    "title", "link", "id", "published", "updated", "author", "summary", "content",
    "category", "rights"))  # fmt: skip
_MULTI = frozenset({"category", "link", f"{{{_DC}}}subject", f"{{{_ATOM}}}category",
                    f"{{{_ATOM}}}link"})  # fmt: skip
_TEXT_TYPES = frozenset({None, "text", "html"})
# Markup feedparser's sanitiser and clean_text read differently (kept or dropped text).
_ENTITY_LIKE = re.compile(r"&[A-Za-z0-9_#]+;")
_REFERENCE = re.compile(r"&(#?[A-Za-z0-9]+);")
_TAG = re.compile(r"""<(?:/?[A-Za-z][A-Za-z0-9]*(?:\s+[A-Za-z_:][-\w:.]*"""
                  r"""(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>=`]+))?)*\s*/?>"""
                  r"""|!--(?:(?!--)[^<>])*-->)""")
_ODD_MARKUP = re.compile(r"<\s*/?\s*(?:template|applet|svg|math)\b", re.IGNORECASE)
_XML_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/xml",
                        "text/xml"})  # fmt: skip
_DECLARED = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_comments=True, remove_pis=True, huge_tree=False)  # fmt: skip


class _Unsure(Exception):
    """Leave this document to feedparser."""


def fast_entries(fetched: Fetched, source: str) -> list[Entry] | None:
    """The entries of a plain RSS 2.0 or Atom 1.0 document, or None to use feedparser.

    Args:
        fetched: The HTTP answer (its Content-Type decides the encoding rules).
        source: The source name, for the entries.

    Returns:
        The entries in document order, as ``parse._entry`` makes them from feedparser's
        result; None when the document is not one this fast path reads exactly.
    """
    try:
        root = _root(fetched)
        if root.tag == "rss":
            entries = [_rss_item(item, source) for item in _rss_items(root)]
        elif root.tag == f"{{{_ATOM}}}feed":
            entries = [_atom_entry(e, source) for e in root.iterchildren(f"{{{_ATOM}}}entry")]
        else:
            return None
    except (_Unsure, etree.LxmlError, ValueError):
        return None
    return entries or None


def _root(fetched: Fetched) -> Any:
    data = fetched.content
    media, _, params = fetched.headers.get("content-type", "").partition(";")
    if media.strip().lower() not in _XML_TYPES or b"xml:base" in data:
        raise _Unsure
    declared = _DECLARED.match(data)
    encoding = (declared.group(1).decode() if declared else "utf-8").lower()
    charset = _CHARSET.search(params)
    if charset is not None and charset.group(1).lower() != encoding:
        raise _Unsure
    if charset is None and media.strip().lower() == "text/xml" and not data.isascii():
        raise _Unsure  # RFC 3023: text/xml without a charset is us-ascii to feedparser
    if encoding not in ("utf-8", "utf8") and not data.isascii():
        raise _Unsure
    tree = etree.fromstring(data, _PARSER).getroottree()
    if tree.docinfo.doctype:
        raise _Unsure
    return tree.getroot()


def _rss_items(root: Any) -> Iterable[Any]:
    if root.get("version") not in ("2.0", "0.91", "0.92"):
        raise _Unsure
    channels = [c for c in root if c.tag == "channel"]
    if len(channels) != 1:
        raise _Unsure
    items: Iterable[Any] = channels[0].iterchildren("item")
    return items


def _fields(element: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """The child elements by tag, each at most once (``_MULTI`` ones in lists)."""
    out: dict[str, Any] = {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag not in allowed:
            if etree.QName(tag).namespace in _IGNORED_NS or _ignored_media(child):
                continue
            raise _Unsure
        if tag in _MULTI:
            out.setdefault(tag, []).append(child)
        elif tag in out:
            raise _Unsure
        else:
            out[tag] = child
    return out


def _ignored_media(element: Any) -> bool:
    return all(e.tag in _IGNORED_MEDIA for e in element.iter() if isinstance(e.tag, str))


def _text(element: Any | None, *, html: bool = False) -> str | None:
    if element is None:
        return None
    if len(element):  # markup inside: feedparser serialises it its own way
        raise _Unsure
    value = element.text or ""
    if html and "<" in value and (_ODD_MARKUP.search(value) or not _plain_markup(value)):
        raise _Unsure
    if html and "&" in value and not _plain_references(value):
        raise _Unsure
    return value.strip()


def _plain_markup(html: str) -> bool:
    """Whether every ``<`` starts a well-formed tag or comment (feedparser's sanitiser
    and lxml's HTML parser read anything else, a stray ``<`` say, each its own way)."""
    return all(_TAG.match(html, i) for i in _iter_lt(html))


def _plain_references(html: str) -> bool:
    """Whether every ``&…;`` is an HTML 4 entity or a character reference that is not
    markup (feedparser rewrites others: ``&a;`` becomes ``&amp;a``)."""
    for ref in _REFERENCE.finditer(html):
        name = ref.group(1)
        if name[0] != "#":
            if name not in name2codepoint:
                return False
            continue
        try:
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        except ValueError:
            return False
        if not 0 < code < 0x110000 or chr(code) in "<>&":
            return False
    return True


def _iter_lt(text: str) -> Iterable[int]:
    i = text.find("<")
    while i >= 0:
        yield i
        i = text.find("<", i + 1)


def _rss_item(item: Any, source: str) -> Entry:
    f = _fields(item, _RSS_ITEM)
    guid_el = f.get("guid")
    guid = _text(guid_el)
    link = _text(f["link"][0]) if "link" in f else None
    if "link" in f and (len(f["link"]) > 1 or not link):
        raise _Unsure
    permalink = guid_el.get("isPermaLink") if guid_el is not None else None
    if permalink not in (None, "true", "false"):
        raise _Unsure
    if link is None and guid and permalink != "false":
        link = guid
    if "author" in f and f"{{{_DC}}}creator" in f:
        raise _Unsure
    if link and _ENTITY_LIKE.search(link):  # feedparser rewrites these in <link>
        raise _Unsure
    author = _text(f.get("author")) or _text(f.get(f"{{{_DC}}}creator"))
    published = _date(f.get("pubDate")) or _date(f.get(f"{{{_DC}}}date"))
    content = _text(f.get(f"{{{_CONTENT}}}encoded"), html=True)
    return Entry(source=source, guid=guid or None, link=link or None,
                 title=_text(f.get("title"), html=True) or "",
                 summary=_summary(_text(f.get("description"), html=True), content),
                 content=content or "", published=published, author=author or None)  # fmt: skip


def _summary(summary: str | None, content: str | None) -> str:
    """feedparser copies the content into the summary of an entry that has none."""
    if summary is None:
        return content or ""
    if not summary and content is not None:
        raise _Unsure
    return summary


def _atom_entry(entry: Any, source: str) -> Entry:
    f = _fields(entry, _ATOM_ENTRY)
    for key in ("title", "summary", "content"):
        element = f.get(f"{{{_ATOM}}}{key}")
        if element is not None and (element.get("type") not in _TEXT_TYPES
                                    or element.get("src") is not None):  # fmt: skip
            raise _Unsure
    published = _date(f.get(f"{{{_ATOM}}}published")) or _date(f.get(f"{{{_ATOM}}}updated"))
    content = _text(f.get(f"{{{_ATOM}}}content"), html=True)
    return Entry(source=source, guid=_text(f.get(f"{{{_ATOM}}}id")) or None,
                 link=_atom_link(f.get(f"{{{_ATOM}}}link", [])),
                 title=_text(f.get(f"{{{_ATOM}}}title"), html=True) or "",
                 summary=_summary(_text(f.get(f"{{{_ATOM}}}summary"), html=True), content),
                 content=content or "", published=published,
                 author=_atom_author(f.get(f"{{{_ATOM}}}author")))  # fmt: skip


def _atom_link(links: list[Any]) -> str | None:
    """The one alternate HTML link (feedparser's ``link``)."""
    found = []
    for link in links:
        rel = link.get("rel", "alternate")
        kind = link.get("type", "application/atom+xml" if rel == "self" else "text/html")
        if rel == "alternate" and kind in ("text/html", "application/xhtml+xml"):
            found.append(link.get("href"))
    if len(found) != 1 or not (found[0] or "").strip():
        raise _Unsure
    return str(found[0]).strip()


def _atom_author(author: Any | None) -> str | None:
    if author is None:
        return None
    parts = {etree.QName(c.tag).localname: c for c in author if isinstance(c.tag, str)}
    if set(parts) - {"name", "email", "uri"} or "name" not in parts:
        raise _Unsure
    name, email = _text(parts["name"]), _text(parts.get("email"))
    return (f"{name} ({email})" if email else name) or None


def _date(element: Any | None) -> datetime | None:
    """The date as feedparser reads it (its own date parser, so every format agrees)."""
    value = _text(element)
    if not value:
        return None
    from feedparser.datetimes import _parse_date  # type: ignore[import-untyped,unused-ignore]

    parsed = _parse_date(value)
    if not isinstance(parsed, time.struct_time):
        raise _Unsure
    try:
        return datetime(*parsed[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        raise _Unsure from None
