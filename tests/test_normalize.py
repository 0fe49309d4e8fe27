"""normalize: canonical URLs, clean text, Entry -> Article (pure; tables and properties)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import normalize as normalize_module
from monitor.normalize import canonical_url, clean_text, normalize
from monitor.types import Entry

NOW = datetime(2024, 7, 29, 12, 0, tzinfo=UTC)
FETCHED = datetime(2024, 7, 29, 11, 59, tzinfo=UTC)


def test_exported_members_sorted() -> None:
    assert normalize_module.__all__ == sorted(normalize_module.__all__)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # case, default port, www, fragment, trailing slash, http -> https
        ("HTTP://WWW.Example.COM:80/a/b/#frag", "https://example.com/a/b"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("http://example.com:8080/x", "https://example.com:8080/x"),
        ("https://user:secret@example.com/x", "https://example.com/x"),
        ("https://example.com./x", "https://example.com/x"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        # tracking parameters dropped, the rest sorted
        ("https://example.com/p?utm_source=rss&utm_medium=feed&id=7", "https://example.com/p?id=7"),
        ("https://example.com/p?b=2&a=1&fbclid=xyz&gclid=1", "https://example.com/p?a=1&b=2"),
        ("https://example.com/p?mc_cid=1&mc_eid=2&UTM_Campaign=x", "https://example.com/p"),
        ("https://example.com/p?msclkid=1&_ga=2&igshid=3&q=news", "https://example.com/p?q=news"),
        ("https://example.com/p?", "https://example.com/p"),
        # AMP variants
        ("https://example.com/amp/story/", "https://example.com/story"),
        ("https://example.com/story/amp", "https://example.com/story"),
        ("https://example.com/story.amp", "https://example.com/story"),
        ("https://example.com/story.amp.html", "https://example.com/story.html"),
        ("https://example.com/story?amp=1", "https://example.com/story"),
        ("https://example.com/story?amp", "https://example.com/story"),
        ("https://example.com/story?outputType=amp", "https://example.com/story"),
        (
            "https://example.com/story?outputType=print",
            "https://example.com/story?outputType=print",
        ),
        ("https://amp.example.com/story", "https://example.com/story"),
        (
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a/b",
            "https://example.com/a/b",
        ),
        ("https://www.google.com/amp/s/www.example.com/a.amp", "https://example.com/a"),
        # redirect wrappers with the target in the URL
        (
            "https://news.google.com/articles/CBMi?url=https%3A%2F%2Fwww.example.org%2Fz%3Futm_source%3Dgn",
            "https://example.org/z",
        ),
        (
            "https://www.google.com/url?sa=t&q=https://example.org/a%3Fb%3D1",
            "https://example.org/a?b=1",
        ),
        ("https://www.google.co.jp/url?url=http://example.jp/x/", "https://example.jp/x"),
        (
            "https://l.facebook.com/l.php?u=http%3A%2F%2Fexample.org%2Fp&h=AT0",
            "https://example.org/p",
        ),
        ("https://out.reddit.com/t3_x?url=https%3A%2F%2Fexample.org%2Fr", "https://example.org/r"),
        ("https://duckduckgo.com/l/?uddg=https%3A%2F%2Fexample.org%2Fd", "https://example.org/d"),
        # wrappers without a usable target stay as they are
        (
            "https://www.google.com/url?q=javascript:alert(1)",
            "https://google.com/url?q=javascript:alert(1)",
        ),
        # international names and paths
        ("https://例え.jp/パス/", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("https://[2001:db8::1]:8443/a/", "https://[2001:db8::1]:8443/a"),
        # not http(s): left alone
        ("mailto:desk@example.org", "mailto:desk@example.org"),
        (
            "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
            "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
        ),
        ("/relative/path", "/relative/path"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("http://[invalid", "http://[invalid"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_variants_collapse() -> None:
    variants = [
        "http://www.example.com/news/2024/07/28/story/",
        "https://example.com/news/2024/07/28/story?utm_source=twitter#comments",
        "https://amp.example.com/news/2024/07/28/story/amp/",
        "https://EXAMPLE.com:443/news/2024/07/28/story?fbclid=abc",
        "https://www.google.com/url?q=https://example.com/news/2024/07/28/story",
    ]
    assert len({canonical_url(v) for v in variants}) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<p>Hello <b>world</b></p><p>again</p>", "Hello world again"),
        ("US<b>FJ</b> stands up", "USFJ stands up"),
        ("line<br>break", "line break"),
        ("<ul><li>one</li><li>two</li></ul>", "one two"),
        ("AT&amp;T &eacute;t&eacute; &#8212; &#x2014;", "AT&T été — —"),
        ("plain text, no markup", "plain text, no markup"),
        ("a < b and c > d", "a < b and c > d"),
        ("  lots \n\t of   space  ", "lots of space"),
        ("non\u00a0breaking", "non breaking"),
        ("<script>alert(1)</script><style>p{}</style>kept", "kept"),
        ("<!-- comment -->text<!DOCTYPE html>", "text"),
        ("<p>a<script>x<p>y</p></script>b</p><noscript><p>n</p></noscript>c", "ab c"),
        ("<template><p>t</p></template>u<?php echo 1 ?>v<![CDATA[w]]>", "uv"),
        ("<ruby>漢<rt>kan</rt><rp>(</rp></ruby>字", "漢字"),  # ruby readings are not text
        ("<table><tr><td>a</td><td>b</td></tr></table>c<div>d<span>e</span></div>", "a b c de"),
        ("\ufeff<p>bom</p>", "bom"),
        ('<?xml version="1.0"?><a>t</a>', "t"),
        ("nul\x00byte", "nulbyte"),
        ("lone\ud800surrogate", "lonesurrogate"),
        ("bell\x07and\x1bescape", "bellandescape"),
        ("&amp;lt;p&amp;gt;double escaped&amp;lt;/p&amp;gt;", "double escaped"),  # feed bug
        ("http://example.com/page.html", "http://example.com/page.html"),  # no locator warning
        ("在日米軍 <b>統合軍司令部</b>", "在日米軍 統合軍司令部"),
        ("", ""),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_clean_text_is_not_carried_over_from_one_text_or_thread_to_another() -> None:
    texts = ["<p>open <script>never closed", "<ruby>a<rt>b", "<p>Hello <b>world</b></p>"] * 40
    expected = [clean_text(t) for t in texts]
    assert expected[:3] == ["open", "a", "Hello world"]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(clean_text, texts)) == expected


def _entry(**kw: object) -> Entry:
    base: dict[str, object] = {
        "source": "Test",
        "guid": "g1",
        "link": "http://www.example.com/a/?utm_source=rss",
        "title": "<b>Title</b> &amp; more",
        "summary": "<p>Summary</p>",
    }
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


def test_normalize_cleans_and_canonicalizes() -> None:
    article = normalize(_entry(), fetched=FETCHED, now=NOW)
    assert article.title == "Title & more"
    assert article.body == "Summary"
    assert article.url == "https://example.com/a"
    assert article.link == "http://www.example.com/a/?utm_source=rss"
    assert article.guid == "g1"
    assert article.source == "Test"
    assert article.published is None
    assert article.when == FETCHED


def test_normalize_prefers_content_over_summary() -> None:
    article = normalize(_entry(content="<div>Full text</div>"), fetched=FETCHED, now=NOW)
    assert article.body == "Full text"
    empty = normalize(_entry(content="<p> </p>"), fetched=FETCHED, now=NOW)
    assert empty.body == "Summary"


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (
            datetime(2024, 7, 28, 9, 0, tzinfo=timezone(timedelta(hours=9))),
            datetime(2024, 7, 28, 0, 0, tzinfo=UTC),
        ),
        (datetime(2024, 7, 28, 9, 0), datetime(2024, 7, 28, 9, 0, tzinfo=UTC)),  # naive = UTC
        (NOW + timedelta(hours=23), NOW + timedelta(hours=23)),  # within a day: kept
        (NOW + timedelta(days=2), FETCHED),  # far future: clamped to the fetch time
        (datetime(2999, 1, 1, tzinfo=UTC), FETCHED),
        (None, None),
    ],
)
def test_normalize_dates(published: datetime | None, expected: datetime | None) -> None:
    article = normalize(_entry(published=published), fetched=FETCHED, now=NOW)
    assert article.published == expected
    assert article.published is None or article.published.tzinfo == UTC


def test_normalize_removes_nul_and_surrogates_everywhere() -> None:
    entry = _entry(
        source="So\x00urce",
        guid="g\x00\ud800id",
        link="https://example.com/\x00x",
        title="t\x00i\udfff",
        summary="s\x00",
        author="a\x00b",
    )
    article = normalize(entry, fetched=FETCHED, now=NOW)
    for value in (
        article.source,
        article.guid,
        article.link,
        article.url,
        article.title,
        article.body,
        article.author,
    ):
        assert value is not None
        assert "\x00" not in value
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def test_normalize_missing_link_and_author() -> None:
    article = normalize(_entry(link=None, author="  "), fetched=FETCHED, now=NOW)
    assert article.url is None and article.link is None and article.author is None


_url_part = st.text(alphabet="abcAMPp-_.~%/?=&#:@!$'()*+,;0123456789 é日", max_size=20)
_urls = st.builds(
    lambda scheme, host, port, path, query, frag: f"{scheme}://{host}{port}/{path}?{query}#{frag}",
    st.sampled_from(["http", "https", "HTTP", "hTtPs"]),
    st.sampled_from(
        ["example.com", "www.Example.COM", "amp.example.org", "例え.jp", "[::1]", "news.google.com"]
    ),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    _url_part,
    st.lists(
        st.tuples(
            st.sampled_from(["utm_source", "a", "b", "amp", "url", "q", "fbclid", "z"]), _url_part
        ),
        max_size=4,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
    _url_part,
)


@settings(max_examples=300, deadline=None)
@given(_urls)
def test_canonical_url_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_canonical_url_idempotent_on_any_text(text: str) -> None:
    once = canonical_url(text)
    assert canonical_url(once) == once


_markup = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<b>",
                "</b>",
                "<br>",
                "&amp;",
                "&lt;",
                "&gt;",
                "&#0;",
                "<!--",
                "-->",
                "<",
                ">",
                "&",
            ]
        ),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_markup)
def test_clean_text_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once
    assert "\x00" not in once
