"""Normalize: pure functions that turn a parsed ``Entry`` into an ``Article``.

- ``clean_text``: HTML or text to plain text (lxml's HTML parser, read as a stream of
  events rather than built into a tree): tags removed, entities decoded, whitespace
  collapsed, NUL, control characters and lone surrogates removed. Idempotent: text that
  still decodes (double-escaped feeds, ``&amp;lt;p&amp;gt;``) is cleaned again until it is
  stable.
- ``canonical_url``: the level-1 dedupe key (issue 3); see ``monitor._canonical_url``.
- ``normalize``: title and body cleaned, dates in UTC with far-future ones clamped to
  the fetch time, canonical URL from the link.

No clock, no I/O: ``now`` and ``fetched`` are parameters.
"""

from __future__ import annotations

import html
import re
import threading
from datetime import UTC, datetime, timedelta

from lxml import etree

from monitor._canonical_url import canonical_url
from monitor.types import Article, Entry

__all__ = ["canonical_url", "clean_text", "normalize", "strip_invalid"]

FUTURE_SLACK = timedelta(days=1)  # publish dates beyond now + this are clamped (issue 6)
_MAX_PASSES = 8  # clean_text repeats until stable; real double-escaping needs 2 or 3
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 "
    "h4 h5 h6 header hr li main nav ol p pre section table td th tr ul".split()
)
# Left out with everything inside them: code, styles, templates and no-script fallbacks.
_SKIPPED = frozenset(("script", "style", "template", "noscript"))
# Ruby annotations (the reading above a kanji, its fallback parentheses): not the text.
_RUBY = frozenset(("rt", "rp"))
_PARSERS = threading.local()  # .parser: this thread's (parser, target) for _html_text


def strip_invalid(text: str) -> str:
    """Remove NUL, other C0 controls (not tab/newline/CR), DEL, lone surrogates and
    the non-characters U+FFFE/U+FFFF."""
    return _INVALID.sub("", text)


def clean_text(text: str) -> str:
    """Turn HTML or text into one line of plain text.

    Args:
        text: HTML, a fragment, or plain text (possibly with entities).

    Returns:
        Plain text with tags removed, entities decoded and whitespace collapsed;
        ``clean_text(clean_text(x)) == clean_text(x)``.
    """
    for _ in range(_MAX_PASSES):
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def _clean_once(text: str) -> str:
    text = strip_invalid(text)
    if "<" in text:
        text = _html_text(text)
    elif "&" in text:
        text = html.unescape(text)
    return " ".join(strip_invalid(text).split())


def _html_text(markup: str) -> str:
    """The text of an HTML fragment, with block elements kept apart by spaces.

    The character data lxml's HTML parser reports, in document order, and a space at the
    start and end of each block element. Comments, processing instructions, the doctype,
    ruby annotations and the elements in ``_SKIPPED`` give none. (The same text as
    beautifulsoup4's ``get_text("")`` on the tree lxml builds, with those removed.)
    """
    markup = _XML_DECL.sub("", markup)
    if markup[:1] == "\ufeff":  # as bs4 did (lxml bug 1948551)
        markup = markup[1:]
    parser, target = _text_parser()
    target.reset()
    try:
        parser.feed(markup)
        parser.close()
    except BaseException:
        del _PARSERS.parser  # never reuse a parser left in the middle of a document
        raise
    return "".join(target.parts)


def _text_parser() -> tuple[etree.HTMLParser, _TextTarget]:
    """This thread's parser and its target (an lxml parser is not for two threads, and
    building one, which inspects the target, costs several parses)."""
    try:
        pair: tuple[etree.HTMLParser, _TextTarget] = _PARSERS.parser
    except AttributeError:
        target = _TextTarget()
        pair = _PARSERS.parser = (etree.HTMLParser(target=target, recover=True), target)
    return pair


class _TextTarget:
    """An lxml parser target that keeps the text of an HTML document (``_html_text``)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skipped = 0  # depth inside an element of _SKIPPED
        self.ruby = 0  # depth of rt/rp elements around the text

    def reset(self) -> None:
        """Forget the last document."""
        self.parts = []
        self.skipped = self.ruby = 0

    def start(self, tag: str, attrib: object) -> None:
        if self.skipped or tag in _SKIPPED:
            self.skipped += 1
        elif tag in _BLOCKS:
            self.parts.append(" ")
        elif tag in _RUBY:
            self.ruby += 1

    def end(self, tag: str) -> None:
        if self.skipped:
            self.skipped -= 1
        elif tag in _BLOCKS:
            self.parts.append(" ")
        elif tag in _RUBY:
            self.ruby -= 1

    def data(self, data: str) -> None:
        if not (self.skipped or self.ruby):
            self.parts.append(data)

    def close(self) -> None:
        return None


def normalize(entry: Entry, *, fetched: datetime, now: datetime) -> Article:
    """Turn a parsed entry into an article: plain text, canonical URL, UTC dates.

    Args:
        entry: The entry as the parser found it.
        fetched: When the document was fetched (aware; naive is taken as UTC).
        now: The current time, for clamping far-future dates.

    Returns:
        The article. ``published`` is None when the entry had no date (``Article.when``
        then falls back to ``fetched``); a date after ``now + 1 day`` becomes ``fetched``.
    """
    fetched = _utc(fetched)
    body = clean_text(entry.content) or clean_text(entry.summary)
    link = _clean_ref(entry.link)
    return Article(
        source=clean_text(entry.source),
        title=clean_text(entry.title),
        body=body,
        url=canonical_url(link) if link else None,
        link=link,
        guid=_clean_ref(entry.guid),
        published=_published(entry.published, fetched=fetched, now=_utc(now)),
        fetched=fetched,
        author=clean_text(entry.author or "") or None,
    )


def _clean_ref(value: str | None) -> str | None:
    """A link or GUID without invalid characters or surrounding whitespace."""
    if value is None:
        return None
    return strip_invalid(value).strip() or None


def _published(value: datetime | None, *, fetched: datetime, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        value = _utc(value)
    except (OverflowError, ValueError):  # a year-1 or year-9999 date with an offset
        return None
    return fetched if value > now + FUTURE_SLACK else value


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
