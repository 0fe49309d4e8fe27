"""parse: feeds, pages and article text; hostile XML; every dev feed over real HTTP."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser  # type: ignore[import-untyped,unused-ignore]
import pytest

from monitor import parse as parse_module
from monitor.errors import ParseError
from monitor.fetch import HTTPFetcher
from monitor.normalize import normalize
from monitor.parse import derived_key, extract_text, parse_feed, parse_page
from monitor.types import FeedState, Fetched
from tests.servers import HTTPServer, Response

DATA = Path(__file__).parent / "data"
FEEDS_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "feeds_dev"
NOW = datetime(2024, 7, 29, tzinfo=UTC)


def fetched(
    name_or_bytes: str | bytes, content_type: str = "application/rss+xml", **headers: str
) -> Fetched:
    body = (
        name_or_bytes if isinstance(name_or_bytes, bytes) else (DATA / name_or_bytes).read_bytes()
    )
    all_headers = {"content-type": content_type, **headers}
    return Fetched(
        url="https://news.example.org/feeds/main.xml", status=200, content=body, headers=all_headers
    )


def test_exported_members_sorted() -> None:
    assert parse_module.__all__ == sorted(parse_module.__all__)


def test_rss2_entries() -> None:
    entries = parse_feed(fetched("rss2.xml"), "Desk")
    assert [e.guid for e in entries][:2] == [
        "desk-0001",
        "https://news.example.org/2024/07/28/deterrence",
    ]
    first = entries[0]
    assert first.source == "Desk"
    assert (
        first.link == "https://news.example.org/2024/07/28/usfj-jfhq?utm_source=rss"
    )  # made absolute
    assert "joint force headquarters" in first.title
    assert first.published == datetime(2024, 7, 28, 0, 30, tzinfo=UTC)
    assert first.author and "desk@example.org" in first.author
    # a javascript: link is not kept; with no guid either, the entry gets a derived key
    assert entries[2].link is None
    assert entries[2].guid is not None and entries[2].guid.startswith("derived:")


def test_rss2_normalized() -> None:
    article = normalize(parse_feed(fetched("rss2.xml"), "Desk")[0], fetched=NOW, now=NOW)
    assert article.title == "US Forces Japan to become a joint force headquarters"
    assert article.body == "The 2+2 meeting in Tokyo agreed…"
    assert article.url == "https://news.example.org/2024/07/28/usfj-jfhq"


def test_atom_entry_with_xml_base_and_content() -> None:
    (entry,) = parse_feed(fetched("atom.xml", "application/atom+xml"), "Atom")
    assert entry.guid == "tag:atom.example.org,2024:drills"
    assert entry.link == "https://atom.example.org/blog/posts/drills"
    assert "content" in entry.content and entry.summary == "Short summary."
    assert entry.published == datetime(2024, 7, 28, 6, 0, tzinfo=UTC)
    assert entry.author == "Atom Author"


def test_json_feed() -> None:
    doc = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "J",
      "items": [{"id": 1, "url": "/j/1", "title": "One", "content_html": "<p>Hi</p>",
                 "date_published": "2024-07-28T09:00:00+09:00", "authors": [{"name": "A"}]},
                {"id": "2", "external_url": "https://elsewhere.example.org/2",
                 "content_text": "Two"}]}"""
    one, two = parse_feed(fetched(doc, "application/feed+json"), "J")
    assert (one.guid, one.link, one.title, one.author) == (
        "1",
        "https://news.example.org/j/1",
        "One",
        "A",
    )
    assert one.published == datetime(2024, 7, 28, 0, 0, tzinfo=UTC)
    assert (two.guid, two.link, two.content) == ("2", "https://elsewhere.example.org/2", "Two")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"not": "a feed"}', "JSON without a JSON Feed version"),
        (b"{broken json", "invalid JSON"),
    ],
)
def test_json_that_is_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed(fetched(body, "application/json"), "J")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/rss+xml", ""])
def test_html_page_served_as_feed_is_an_error(content_type: str) -> None:
    with pytest.raises(
        ParseError, match=r"^Guarded: not a feed: got .* page \(title: 'Just a moment...'\)"
    ):
        parse_feed(fetched("challenge.html", content_type), "Guarded")


def test_feed_served_as_text_html_still_parses() -> None:
    assert len(parse_feed(fetched("rss2.xml", "text/html"), "Misconfigured")) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty document"),
        (b"   \n", "empty document"),
        (b"/etc/passwd", "not a readable feed"),  # bytes, never opened as a path
        (b"<?xml version='1.0'?><note><to>x</to></note>", "no RSS, Atom or RDF root element"),
        (b"<rss version='2.0'><channel><title>cut", "no entries found: XML error at line"),
    ],
)
def test_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_feed(fetched(body, "application/xml"), "Src")
    assert str(info.value).startswith("Src: ")
    assert "root:" not in str(info.value)


def test_bozo_feed_still_yields_its_entries() -> None:
    entries = parse_feed(fetched("broken.xml"), "Broken")
    assert [e.guid for e in entries] == ["k1", "k2"]


def test_empty_valid_feed_has_no_entries() -> None:
    body = b"<?xml version='1.0'?><rss version='2.0'><channel><title>Quiet</title></channel></rss>"
    assert parse_feed(fetched(body), "Quiet") == []


def test_repeated_guid_does_not_collapse_items() -> None:
    entries = parse_feed(fetched("repeated_guid.xml"), "Rep")
    assert len(entries) == 5
    assert [e.guid for e in entries[:2]] == [None, None]  # fall back to their distinct links
    assert entries[2].guid and entries[3].guid and entries[2].guid != entries[3].guid  # derived
    assert entries[2].guid.startswith("derived:")
    assert entries[4].guid == "unique"
    keys = {e.guid or e.link for e in entries}
    assert len(keys) == 5


def test_derived_keys_are_stable_and_distinct() -> None:
    first = parse_feed(fetched("no_ids.xml"), "Nid")
    again = parse_feed(fetched("no_ids.xml"), "Nid")
    assert [e.guid for e in first] == [e.guid for e in again]
    assert len({e.guid for e in first}) == 2
    assert all(e.guid and e.guid.startswith("derived:") and e.link is None for e in first)
    assert first[0].guid == derived_key(first[0])


@pytest.mark.parametrize(
    ("name", "content_type", "title"),
    [
        ("latin1.xml", "application/xml", "Café défense"),  # charset only in the XML declaration
        ("latin1.xml", "application/xml; charset=utf-8", "Café défense"),  # wrong HTTP charset
        ("utf8_bom.xml", "application/xml; charset=iso-8859-1", "在日米軍"),  # BOM wins
        ("utf8_bom.xml", "", "在日米軍"),
    ],
)
def test_charsets_and_boms(name: str, content_type: str, title: str) -> None:
    (entry,) = parse_feed(fetched(name, content_type), "Enc")
    assert normalize(entry, fetched=NOW, now=NOW).title == title


def test_utf16_feed() -> None:
    text = (DATA / "rss2.xml").read_text("utf-8").replace('encoding="utf-8"', 'encoding="utf-16"')
    assert len(parse_feed(fetched(text.encode("utf-16"), "application/xml"), "U16")) == 3


def test_relative_links_use_content_location() -> None:
    doc = fetched("rss2.xml", **{"content-location": "/other/base.xml"})
    assert (
        parse_feed(doc, "Loc")[0].link
        == "https://news.example.org/2024/07/28/usfj-jfhq?utm_source=rss"
    )
    body = b"<rss version='2.0'><channel><item><title>r</title><link>rel/1</link></item>"
    body += b"</channel></rss>"
    (entry,) = parse_feed(fetched(body, **{"content-location": "/other/base.xml"}), "Loc")
    assert entry.link == "https://news.example.org/other/rel/1"


# --- hostile XML -----------------------------------------------------------------------


def _billion_laughs(encoding: str) -> bytes:
    text = (DATA / "billion_laughs.xml").read_text("utf-8")
    return text.replace('encoding="utf-8"', f'encoding="{encoding}"').encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-32"])
def test_billion_laughs_is_refused_without_expanding(encoding: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="entity declaration refused"):
            parse_feed(fetched(_billion_laughs(encoding), "application/xml"), "Laughs")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_feedparser_alone_does_not_expand_billion_laughs(encoding: str) -> None:
    """What feedparser 6 does without our guard: drops nested entity declarations."""
    result = feedparser.parse(io.BytesIO(_billion_laughs(encoding)))
    assert len(str(result)) < 10_000
    assert "lollol" not in str(result)


def _xxe_docs(target: str) -> list[str]:
    rss = "<rss version='2.0'><channel><item><title>{}</title></item></channel></rss>"
    return [
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{target}">\n]>\n'
        + rss.format("a &xxe; b"),
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>'
        + rss.format("&xxe;"),
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY % pe SYSTEM "{target}">\n%pe;\n]>\n'
        + rss.format("p"),
        f"<?xml version='1.0'?>\n<!DOCTYPE rss [\n<!ENTITY xxe PUBLIC 'x' '{target}'>\n]>\n"
        + rss.format("&xxe;"),
    ]


def test_xxe_to_a_local_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY")
    for text in _xxe_docs(secret.as_uri()):
        doc = text.encode()
        with pytest.raises(ParseError, match="entity declaration refused"):
            parse_feed(fetched(doc, "application/xml"), "XXE")
        assert "TOP-SECRET-CANARY" not in str(feedparser.parse(io.BytesIO(doc)))
        utf16 = io.BytesIO(text.encode("utf-16"))
        assert "TOP-SECRET-CANARY" not in str(feedparser.parse(utf16))


def test_safe_internal_entities_are_allowed() -> None:
    doc = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY nbsp "&#160;">\n'
        b'<!ENTITY org "MOD">\n]>\n<rss version="2.0"><channel><item>'
        b"<title>&org;&nbsp;news</title><guid>s</guid></item></channel></rss>"
    )
    (entry,) = parse_feed(fetched(doc, "application/xml"), "Safe")
    assert normalize(entry, fetched=NOW, now=NOW).title == "MOD news"


# --- pages -----------------------------------------------------------------------------


def test_parse_page_links_and_titles() -> None:
    page = fetched("listing.html", "text/html; charset=utf-8")
    entries = parse_page(page, "MOD", "ul.news li a")
    assert [(e.link, e.title) for e in entries] == [
        (
            "https://www.mod.example.jp/en/press/2024/0728a.html",
            'Japan-U.S. Security Consultative Committee ("2+2")',
        ),
        (
            "https://www.mod.example.jp/en/press/2024/0727.html",
            "Defense Minister's press conference",
        ),
        ("https://other.example.org/story#top", "Joint statement"),
    ]
    assert all(e.guid is None and e.source == "MOD" for e in entries)


def test_parse_page_elements_containing_a_link() -> None:
    (entry,) = parse_page(fetched("listing.html", "text/html"), "MOD", "div.card")
    assert (entry.link, entry.title) == (
        "https://www.mod.example.jp/en/press/cards/1.html",
        "Read more",
    )


def test_parse_page_errors() -> None:
    page = fetched("listing.html", "text/html")
    with pytest.raises(ParseError, match=r"MOD: bad CSS selector 'ul\[\['"):
        parse_page(page, "MOD", "ul[[")
    with pytest.raises(ParseError, match=r"matched no links \(page title: 'Just a moment...'\)"):
        parse_page(fetched("challenge.html", "text/html"), "MOD", "ul.news li a")


def test_extract_text_keeps_the_article() -> None:
    text = extract_text((DATA / "article.html").read_bytes())
    assert text.splitlines() == [
        "US Forces Japan upgraded to joint force headquarters",
        "TOKYO — The United States will upgrade US Forces Japan into a joint force headquarters, "
        "the two governments said after the Security Consultative Committee meeting.",
        "The change responds to Japan's own Joint Operations Command.",
        "It will be phased in.",
    ]
    for noise in ("tracking", "Menu Item", "Related", "Copyright", "Search"):
        assert noise not in text


def test_extract_text_without_article_element_and_cap() -> None:
    html = (
        "<html><body><div>menu</div><div id='x'>"
        + "<p>para graph</p>" * 50
        + "</div></body></html>"
    )
    text = extract_text(html, max_chars=30)
    assert text.startswith("para graph") and len(text) <= 30
    assert extract_text("\x00<p>nul\ud800</p>") == "nul"


# --- every dev feed, served over real HTTP ----------------------------------------------


def _dev_documents() -> list[Path]:
    if not FEEDS_DEV.is_dir():
        return []
    return sorted(
        p
        for p in FEEDS_DEV.rglob("*")
        if p.is_file() and p.suffix in (".xml", ".json") and not p.name.endswith(".serde.json")
    )


@pytest.fixture(scope="module")
def dev_server() -> Iterator[HTTPServer]:
    with HTTPServer() as server:
        for path in _dev_documents():
            kind = "application/json" if path.suffix == ".json" else "application/xml"
            route = "/" + path.relative_to(FEEDS_DEV).as_posix()
            server.routes[route] = Response(200, path.read_bytes(), {"Content-Type": kind})
        yield server


@pytest.fixture(scope="module")
def fetcher() -> Iterator[HTTPFetcher]:
    with HTTPFetcher() as f:
        yield f


@pytest.mark.skipif(not FEEDS_DEV.is_dir(), reason=f"dev feeds not found at {FEEDS_DEV}")
@pytest.mark.parametrize(
    "path", _dev_documents(), ids=lambda p: p.relative_to(FEEDS_DEV).as_posix()
)
def test_dev_feed_fetch_parse_normalize(
    path: Path, dev_server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    url = dev_server.url("/" + path.relative_to(FEEDS_DEV).as_posix())
    got = fetcher.fetch(FeedState(name=path.stem, url=url, timeout=10))
    assert got.status == 200 and got.content == path.read_bytes()
    try:
        entries = parse_feed(got, path.stem)
    except ParseError as exc:
        assert str(exc).startswith(f"{path.stem}: ")
        return
    assert entries, "a feed that parses must have entries (all dev documents have items)"
    articles = [normalize(e, fetched=NOW, now=NOW) for e in entries]
    for article in articles:
        assert article.guid or article.url, "every article has a key"
        assert article.published is None or article.published.tzinfo == UTC


def test_dev_feeds_mostly_parse() -> None:
    """Guard against a regression that would turn every document into a ParseError."""
    docs = _dev_documents()
    if not docs:
        pytest.skip(f"dev feeds not found at {FEEDS_DEV}")
    ok = 0
    for path in docs:
        kind = "application/json" if path.suffix == ".json" else "application/xml"
        try:
            ok += bool(parse_feed(fetched(path.read_bytes(), kind), path.stem))
        except ParseError:
            pass
    assert ok >= len(docs) - 12  # the cut-down fragments and two non-feed XML samples
