"""The lxml fast path reads feeds exactly as feedparser does, or leaves them to it (issue 9).

Each check parses a document both ways and compares what the pipeline keeps: the item
keys (derived keys included) and the normalised articles.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor._parse_fast import fast_entries
from monitor._prepare import entry_key
from monitor.errors import ParseError
from monitor.normalize import normalize
from monitor.parse import parse_feed
from monitor.types import Fetched

ROOT = Path(__file__).resolve().parent.parent
DEV_FEEDS = ROOT.parent / "shared" / "eval" / "feeds_dev"
DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 3, 2, tzinfo=UTC)
TYPES = ("application/rss+xml", "application/xml; charset=utf-8", "text/xml")


def kept(fetched: Fetched, *, fast: bool) -> object:
    """What the pipeline keeps of a document: (item key, article) pairs, or the error."""
    try:
        entries = parse_feed(fetched, "src", fast=fast)
    except ParseError as exc:
        return str(exc)
    return [(entry_key(e, NOW), normalize(e, fetched=NOW, now=NOW)) for e in entries]


def doc(data: bytes, content_type: str = "application/rss+xml") -> Fetched:
    return Fetched(url="https://example.org/feed.xml", status=200, content=data,
                   headers={"content-type": content_type})  # fmt: skip


def same_both_ways(fetched: Fetched) -> bool:
    """Assert both paths agree; return whether the fast path took the document."""
    assert kept(fetched, fast=True) == kept(fetched, fast=False)
    return fast_entries(fetched, "src") is not None


def _dev_feeds() -> list[Path]:
    return sorted(DEV_FEEDS.rglob("*.xml")) if DEV_FEEDS.is_dir() else []


@pytest.mark.skipif(not _dev_feeds(), reason=f"no real feeds in {DEV_FEEDS}")
@pytest.mark.parametrize("content_type", TYPES)
def test_real_feeds_read_alike(content_type: str) -> None:
    taken = [same_both_ways(doc(p.read_bytes(), content_type)) for p in _dev_feeds()]
    if content_type != "text/xml":  # (us-ascii without a charset: mostly feedparser's)
        assert sum(taken) >= len(taken) // 4  # the common shapes do take the fast path


@pytest.mark.parametrize("path", sorted(DATA.glob("*.xml")), ids=lambda p: p.name)
def test_test_feeds_read_alike(path: Path) -> None:
    same_both_ways(doc(path.read_bytes()))


def _bench_corpus() -> object:
    spec = importlib.util.spec_from_file_location("bench_cycle", ROOT / "bench" / "cycle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cycle"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.Corpus(6, seed=3)


def test_benchmark_corpus_takes_the_fast_path_and_reads_alike() -> None:
    corpus = _bench_corpus()
    for changed in (False, True):
        corpus.changed = changed  # type: ignore[attr-defined]
        for feed in corpus.feeds:  # type: ignore[attr-defined]
            kind = "application/atom+xml" if feed.atom else "application/rss+xml"
            assert same_both_ways(doc(corpus.document(feed), kind))  # type: ignore[attr-defined]


RSS_HEAD = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            b'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            b'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>')  # fmt: skip


@pytest.mark.parametrize("item", [
    b"<item><title>a</title><media:title>other</media:title><guid>1</guid></item>",
    b"<item><title>a</title><title>b</title><guid>1</guid></item>",
    b"<item><title>a</title><description><p>markup</p></description><guid>1</guid></item>",
    b"<item><title>a</title><description>&lt;svg&gt;x&lt;/svg&gt;</description></item>",
    b"<item><title>a</title><link>https://e.org/?a=1&amp;amp;b=2</link></item>",
    b"<item><title>a</title><pubDate>not a date</pubDate><guid>1</guid></item>",
    b"<item xml:base='https://e.org/'><title>a</title><link>/x</link></item>",
], ids=["media-title", "two-titles", "markup", "svg", "entity-in-link", "bad-date", "xml-base"])
def test_what_the_fast_path_leaves_to_feedparser(item: bytes) -> None:
    fetched = doc(RSS_HEAD + item + b"</channel></rss>")
    assert fast_entries(fetched, "src") is None
    assert isinstance(kept(fetched, fast=True), list)


def test_broken_and_other_formats_go_to_feedparser() -> None:
    for data in (b"<rss version='2.0'><channel><item><title>a &nbsp; b</title></item>",
                 (DATA / "broken.xml").read_bytes(),
                 b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/"
                 b"22-rdf-syntax-ns#' xmlns='http://purl.org/rss/1.0/'><item><title>a"
                 b"</title><link>https://e.org/a</link></item></rdf:RDF>"):  # fmt: skip
        assert fast_entries(doc(data), "src") is None
        same_both_ways(doc(data))


def test_a_charset_that_contradicts_the_document_goes_to_feedparser() -> None:
    item = "<item><title>café</title><guid>1</guid></item>".encode()
    data = RSS_HEAD + item + b"</channel></rss>"
    assert fast_entries(doc(data, "application/rss+xml; charset=iso-8859-1"), "src") is None
    assert fast_entries(doc(data, "text/xml"), "src") is None  # us-ascii by RFC 3023
    assert same_both_ways(doc(data, "application/rss+xml; charset=utf-8"))


# -- properties ------------------------------------------------------------------------

_TEXT = st.text(st.sampled_from(list("ab é日&<>\"' \n\t;#x1")), max_size=12)
_HTML = st.lists(st.one_of(_TEXT, st.sampled_from(
    ["<p>", "</p>", "<b>", "</b>", "<br/>", "<a href='/r?a=1&b=2'>", "</a>", "&amp;", "&lt;",
     "&nbsp;", "<script>x</script>", "<!-- c -->", "<noscript>n</noscript>", "<img src=x>",
     "<iframe>f</iframe>", "&amp;lt;i&amp;gt;", "&a;", "&#39;", "&#60;b&#62;", "&copy;",
     "&#x1F600;", "&#0;", "&Amp;", "a&b", "&#xZZ;"])), max_size=8).map("".join)  # fmt: skip
_WHEN = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1),
                     timezones=st.just(UTC))  # fmt: skip
_ITEM = st.fixed_dictionaries({}, optional={
    "title": _HTML, "link": st.sampled_from(["https://e.org/a", "/rel/b", " https://e.org/c "]),
    "guid": st.sampled_from(["g1", "g2", "https://e.org/g", ""]),
    "permalink": st.sampled_from(["true", "false"]), "summary": _HTML, "content": _HTML,
    "author": st.sampled_from(["Ann", "a@e.org (Ann)"]), "published": _WHEN,
    "updated": _WHEN, "cdata": st.booleans()})  # fmt: skip


def _rss(items: list[dict[str, object]]) -> bytes:
    out = []
    for it in items:
        parts = [f"<title>{escape(str(it['title']))}</title>" if "title" in it else "",
                 f"<link>{escape(str(it['link']))}</link>" if "link" in it else ""]  # fmt: skip
        if "guid" in it:
            attr = f" isPermaLink={quoteattr(str(it['permalink']))}" if "permalink" in it else ""
            parts.append(f"<guid{attr}>{escape(str(it['guid']))}</guid>")
        if "summary" in it:
            text = str(it["summary"])
            cdata = it.get("cdata") and "]]>" not in text
            parts.append(f"<description><![CDATA[{text}]]></description>" if cdata
                         else f"<description>{escape(text)}</description>")  # fmt: skip
        if "content" in it:
            parts.append(f"<content:encoded>{escape(str(it['content']))}</content:encoded>")
        if "author" in it:
            parts.append(f"<author>{escape(str(it['author']))}</author>")
        if "published" in it:
            parts.append(f"<pubDate>{format_datetime(it['published'])}</pubDate>")  # type: ignore[arg-type]
        out.append("<item>" + "".join(parts) + "</item>")
    return RSS_HEAD + "".join(out).encode() + b"</channel></rss>"


def _atom(items: list[dict[str, object]]) -> bytes:
    out = []
    for it in items:
        parts = [f"<title type='html'>{escape(str(it['title']))}</title>" if "title" in it
                 else "",
                 f"<link href={quoteattr(str(it['link']))}/>" if "link" in it else "",
                 f"<id>{escape(str(it['guid']))}</id>" if "guid" in it else "",
                 f"<summary type='html'>{escape(str(it['summary']))}</summary>"
                 if "summary" in it else "",
                 f"<content type='html'>{escape(str(it['content']))}</content>"
                 if "content" in it else "",
                 f"<author><name>{escape(str(it['author']))}</name></author>"
                 if "author" in it else ""]  # fmt: skip
        for key in ("published", "updated"):
            if key in it:
                parts.append(f"<{key}>{it[key].isoformat()}</{key}>")  # type: ignore[attr-defined]
        out.append("<entry>" + "".join(parts) + "</entry>")
    return ("<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            "<title>t</title><id>urn:t</id>" + "".join(out) + "</feed>").encode()


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_ITEM, min_size=1, max_size=4))
def test_generated_rss_reads_alike(items: list[dict[str, object]]) -> None:
    same_both_ways(doc(_rss(items)))


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_ITEM, min_size=1, max_size=4))
def test_generated_atom_reads_alike(items: list[dict[str, object]]) -> None:
    same_both_ways(doc(_atom(items), "application/atom+xml"))
