"""HTML sources: entries from a listing page (``type: page``), and an article's main text.

Issue 6, "Page sources and full text": many press-release pages (Japan's Ministry of
Defense and Ministry of Foreign Affairs among them) have no feed; a CSS selector picks
the article links from the listing. ``extract_text`` keeps the main text of an article
page for matching and dedupe.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import soupsieve
from bs4 import BeautifulSoup, Tag

from monitor.errors import ParseError
from monitor.normalize import clean_text, strip_invalid
from monitor.types import Entry, Fetched

__all__ = ["extract_text", "html_soup", "parse_page"]

_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*>")
_XML_DECL_TEXT = re.compile(r"^\s*<\?xml[^>]*>")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_BOILERPLATE = (
    "script style noscript template svg iframe form button nav header footer aside "
    "select input textarea dialog"
).split()
_BLOCKS = (
    "p h1 h2 h3 h4 h5 h6 li blockquote pre div section article tr dd dt figcaption table"
).split()
_BREAK = "\x1e"  # marks block boundaries; never in parsed text (strip_invalid removes it)
_MAIN_SELECTORS = ('[itemprop="articleBody"]', "main", '[role="main"]', "#content", ".content")


def html_soup(markup: str | bytes, content_type: str = "") -> BeautifulSoup:
    """Parse HTML with lxml, using the HTTP charset when there is one.

    The XML declaration of XHTML pages is dropped (bs4 would warn that XML is being
    parsed as HTML, which it is, on purpose).
    """
    if isinstance(markup, str):
        markup = strip_invalid(markup)
        return BeautifulSoup(_XML_DECL_TEXT.sub("", markup), "lxml")
    found = _CHARSET.search(content_type)
    if found is None and _XML_DECL.match(markup):
        found = _CHARSET.search(markup[:200].decode("latin-1").replace("encoding", "charset"))
    encoding = found.group(1) if found else None
    return BeautifulSoup(_XML_DECL.sub(b"", markup), "lxml", from_encoding=encoding)


def parse_page(fetched: Fetched, source: str, select: str) -> list[Entry]:
    """Entries from an HTML listing page.

    Args:
        fetched: The page as fetched (its URL is the base for relative links).
        source: The source name, for entries and messages.
        select: A CSS selector for the ``<a>`` links, or for elements containing one.

    Returns:
        One entry per distinct http(s) link, in page order: title = link text, link
        made absolute, no GUID (the canonical link is the key).

    Raises:
        ParseError: A bad selector, or no link matched (layout changed, or a login or
            challenge page came instead of the listing).
    """
    soup = html_soup(fetched.content, fetched.headers.get("content-type", ""))
    base = _base_url(soup, fetched.url)
    try:
        elements = soup.select(select)
    except (soupsieve.SelectorSyntaxError, ValueError) as exc:
        raise ParseError(f"{source}: bad CSS selector {select!r}: {exc}") from exc
    entries: dict[str, Entry] = {}
    for element in elements:
        entry = _link_entry(element, base, source)
        if entry is not None and entry.link not in entries:
            entries[entry.link or ""] = entry
    if not entries:
        title = clean_text(soup.title.get_text()) if soup.title else ""
        shown = f" (page title: {title[:80]!r})" if title else ""
        raise ParseError(f"{source}: selector {select!r} matched no links{shown}")
    return list(entries.values())


def _base_url(soup: BeautifulSoup, url: str) -> str:
    base = soup.find("base", href=True)
    href = base.get("href") if isinstance(base, Tag) else None
    return urljoin(url, href.strip()) if isinstance(href, str) else url


def _link_entry(element: Tag, base: str, source: str) -> Entry | None:
    anchor = (
        element if element.name == "a" and element.get("href") else element.find("a", href=True)
    )
    if not isinstance(anchor, Tag):
        return None
    link = absolute_link(base, str(anchor.get("href", "")))
    if link is None:
        return None
    title = clean_text(anchor.get_text(" ")) or clean_text(str(anchor.get("title") or ""))
    if not title:
        image = anchor.find("img", alt=True)
        title = clean_text(str(image.get("alt"))) if isinstance(image, Tag) else ""
    title = title or clean_text(element.get_text(" "))
    return Entry(source=source, guid=None, link=link, title=title, summary="")


def absolute_link(base: str, href: str) -> str | None:
    """``href`` made absolute against ``base``; None unless it is an http(s) URL."""
    href = re.sub(r"[\t\r\n]", "", strip_invalid(href)).strip()
    if not href or href.startswith("#"):
        return None
    try:
        link = urljoin(base, href)
    except ValueError:
        return None
    return link if re.match(r"(?i)https?://[^/]", link) else None


def extract_text(html: str | bytes, *, max_chars: int = 200_000) -> str:
    """The main text of an article page: paragraphs, one per line, at most ``max_chars``.

    Boilerplate (scripts, navigation, header, footer, forms, asides) is dropped; the
    main element is the largest ``<article>``, else ``articleBody``/``<main>``, else
    the element holding the most paragraph text.
    """
    soup = html_soup(html)
    for tag in soup(_BOILERPLATE):
        tag.decompose()
    root = _main_element(soup)
    for br in root.find_all("br"):
        br.replace_with(_BREAK)
    for tag in root.find_all(_BLOCKS):
        tag.insert_before(_BREAK)
        tag.insert_after(_BREAK)
    lines = (" ".join(line.split()) for line in root.get_text("").split(_BREAK))
    return "\n".join(line for line in lines if line)[:max_chars].strip()


def _main_element(soup: BeautifulSoup) -> Tag:
    articles = soup.find_all("article")
    if articles:
        return max(articles, key=lambda a: len(a.get_text(" ", strip=True)))
    for selector in _MAIN_SELECTORS:
        found = soup.select_one(selector)
        if found is not None and len(found.get_text(" ", strip=True)) > 200:
            return found
    return _densest(soup) or soup.body or soup


def _densest(soup: BeautifulSoup) -> Tag | None:
    """The element whose direct ``<p>`` children hold the most text."""
    scores: dict[int, tuple[int, Tag]] = {}
    for p in soup.find_all("p"):
        parent = p.parent
        if isinstance(parent, Tag):
            score, _ = scores.get(id(parent), (0, parent))
            scores[id(parent)] = (score + len(p.get_text(" ", strip=True)), parent)
    if not scores:
        return None
    score, best = max(scores.values(), key=lambda pair: pair[0])
    return best if score > 0 else None
