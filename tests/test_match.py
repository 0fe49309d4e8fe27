"""match: the query language, normalisation, hits, snippets, and properties of all three."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import match as match_module
from monitor._fold import is_unspaced, normalise
from monitor.errors import QueryError
from monitor.match import (
    And,
    Field,
    Matcher,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    Query,
    Term,
    format_query,
    make_snippet,
    parse_query,
    query_terms,
)
from monitor.types import Hit

ALIASES = {
    "usfj": ['"US Forces Japan"', '"U.S. Forces Japan"', "USFJ", "在日米軍"],
    "jfhq": ['"joint force headquarters"', '"joint headquarters"', "統合軍司令部"],
    "nested": ["@usfj", "INDOPACOM"],
    "loop": ["a", "@loop"],
    "broken": ["(unclosed"],
    "in_body": ["body:x"],
}


def matches(query: str, title: str = "", body: str = "", source: str = "") -> bool:
    return bool(Matcher({"q": parse_query(query, ALIASES)}).match(title, body, source))


def hits(query: str, title: str = "", body: str = "") -> list[tuple[str, str, str]]:
    """(term, field, matched original text) of every hit."""
    found = Matcher({"q": parse_query(query, ALIASES)}).match(title, body)
    texts = {"title": title, "body": body}
    return [(h.term, h.field, texts[h.field][h.start : h.end]) for m in found for h in m.hits]


def test_exported_members_sorted() -> None:
    assert match_module.__all__ == sorted(match_module.__all__)


# --- operators ---------------------------------------------------------------------------

OPERATORS = [
    # query, body, matches
    ("deterrence", "Extended deterrence was discussed.", True),
    ("deterrence", "Deterrent forces were discussed.", False),
    ("japan china", "Japan and China met.", True),  # bare terms: AND
    ("japan china", "Japan met Korea.", False),
    ("japan AND china", "China met Japan.", True),
    ("japan OR china", "Only China here.", True),
    ("japan OR china", "Only Korea here.", False),
    ("japan NOT china", "Japan alone.", True),
    ("japan NOT china", "Japan and China.", False),
    ("japan -china", "Japan and China.", False),
    ("japan -china", "Japan and Korea.", True),
    ("japan AND NOT (china OR russia)", "Japan and Russia.", False),
    ("japan AND NOT (china OR russia)", "Japan and Korea.", True),
    ("japan (drill NOT nuclear)", "Japan held a nuclear drill.", False),  # NOT in parentheses
    ("japan (drill NOT nuclear)", "Japan held a drill.", True),
    ("(japan -drill) OR nuclear", "A nuclear drill in Japan.", True),
    ("a b OR c", "a c", True),  # reads a AND (b OR c)
    ("a b OR c", "b c", False),
    ("a OR b c", "a c", True),  # reads (a OR b) AND c
    ("a OR b c", "a b", False),
    ("+japan -china", "Japan", True),
    ("deter*", "Deterrence matters.", True),
    ("deter*", "A deterrent.", True),
    ("deter*", "They were undeterred.", False),  # the prefix starts a word
    ("deter*", "Determined.", True),
    ('"joint force headquarters"', "a joint force headquarters in Tokyo", True),
    ('"joint force headquarters"', "a joint headquarters force", False),
    ('"china russia"~2', "China and Russia", True),
    ('"china russia"~2', "Russia, with China", True),  # any order
    ('"china russia"~2', "China held drills with Russia", False),  # 3 words between
    ('"china russia"~3', "China held drills with Russia", True),
    ('"china russia"~0', "Russia China", True),
    ('"china russia"~0', "China and Russia", False),
    ('"china russia korea"~2', "China, Korea and Russia", True),
    ('"china russia korea"~2', "China, Korea and then Russia", True),
    ('"china russia korea"~2', "China, Korea and then later Russia", False),
    ("@usfj", "U.S. Forces Japan announced", True),
    ("@usfj", "在日米軍は発表した", True),
    ("@usfj", "US forces in Korea", False),
    ("@nested", "INDOPACOM said", True),
    ("@nested", "USFJ said", True),
]


@pytest.mark.parametrize(("query", "body", "expected"), OPERATORS)
def test_operators(query: str, body: str, expected: bool) -> None:
    assert matches(query, body=body) is expected


FIELDS = [
    # query, title, body, source, matches
    ("title:usfj", "USFJ news", "", "", True),
    ("title:usfj", "News", "USFJ", "", False),
    ("body:usfj", "USFJ news", "", "", False),
    ("body:usfj", "", "USFJ", "", True),
    ("usfj", "USFJ", "", "", True),  # no field: title or body
    ("usfj", "", "", "USFJ", False),  # ... not the source
    ('source:"DoD News"', "", "", "DoD News", True),
    ('source:"DoD News"', "DoD News", "", "", False),
    ("title:(japan OR china) body:drill", "China today", "A drill.", "", True),
    ("title:(japan OR china) body:drill", "A drill", "China.", "", False),
    ('body:"china russia"~1', "China", "and Russia", "", False),  # proximity within a field
    ("japan china", "Japan", "China", "", True),  # AND across fields
    ("TITLE:usfj", "USFJ", "", "", True),
]


@pytest.mark.parametrize(("query", "title", "body", "source", "expected"), FIELDS)
def test_fields(query: str, title: str, body: str, source: str, expected: bool) -> None:
    assert matches(query, title, body, source) is expected


# --- normalisation -----------------------------------------------------------------------

NORMALISATION = [
    # query, text, matches
    ("US", "the US said", True),
    ("US", "the U.S. said", True),
    ("US", "the U.S said", True),
    ("U.S.", "the US said", True),
    ("U.S", "the u.s. said", True),
    ("US", "a USB stick", False),
    ("US", "the bus left", False),
    ("US", "thus", False),
    ("ROK", "ROK forces", True),
    ("ROK", "ROK's forces", True),
    ("ROK", "ROK’s forces", True),
    ("ROK", "brokers said", False),
    ("USFJ", "usfj", True),  # case
    ("usfj", "ＵＳＦＪ", True),  # NFKC: full width
    ("ＵＳＦＪ", "USFJ", True),
    ("cafe", "Café", True),  # accents
    ("Café", "CAFE", True),
    ("Sao Paulo", "São Paulo", True),
    ("Zurich", "Zu\u0308rich", True),  # decomposed accent
    ('"joint force"', "joint-force", True),  # hyphen and space
    ("joint-force", "joint force", True),
    ("joint-force", "joint – force", True),
    ('"joint force headquarters"', "joint\n  force   headquarters", True),
    ('"nuclear umbrella"', "the “nuclear umbrella”", True),  # curly quotes in text
    ("“nuclear umbrella”", "the nuclear umbrella", True),  # ... and in the query
    ('"2+2"', "the Japan-US 2+2 talks", True),
    ('"2+2"', "the ２＋２ meeting", True),
    ("U.S.-Japan", "US Japan alliance", True),
    ("e.g.", "eg", True),
    ("F-35", "F-35A", False),
    ("F-35*", "F-35A", True),
    ("Lockheed", "lockheed-martin", True),
    ("deterrence", "deter\u00adrence", True),  # soft hyphen inside a word
    ("USFJ", "\u200eUSFJ\u200f", True),  # direction marks
]


@pytest.mark.parametrize(("query", "body", "expected"), NORMALISATION)
def test_normalisation(query: str, body: str, expected: bool) -> None:
    assert matches(query, body=body) is expected


CJK = [
    # query, text, matches
    ("在日米軍", "政府は在日米軍の再編を発表した。", True),  # inside a sentence
    ("拡大抑止", "日米は拡大抑止力の強化で一致した", True),  # substring of a longer word
    ("統合軍司令部", "在日米軍を統合軍司令部に改編", True),
    ("統合軍司令部", "在日米軍を統合作戦司令部に改編", False),
    ('"在日米軍 司令部"', "在日米軍司令部", True),  # spaces between CJK are ignored
    ("在日米軍司令部", "在日米軍　司令部", True),  # ideographic space in the text
    ("日米 拡大抑止", "日米が拡大抑止を協議", True),
    ("USFJ", "在日米軍（USFJ）は", True),  # mixed scripts: Latin word inside Japanese
    ("USFJ", "在日米軍USFJは", True),  # a script change is a word boundary
    ("US", "在日USB司令部", False),
    ("日米2プラス2", "日米２プラス２が開かれた", True),  # full-width digits
    ("ガス", "ｶﾞｽ田", True),  # half-width katakana with a voiced mark
    ("ガス", "カス", False),  # voiced marks are not accents
    ("中国", "中國", False),  # no traditional/simplified folding
    ("북한", "북한군이", True),  # Korean particles attach to the noun
    ('"在日米軍 統合"~3', "在日米軍を統合", True),  # each CJK character counts as a word
    ('"在日米軍 統合"~3', "在日米軍の再編と統合", False),
    ('"japan 拡大抑止"~2', "Japan の 拡大抑止", True),
]


@pytest.mark.parametrize(("query", "body", "expected"), CJK)
def test_cjk(query: str, body: str, expected: bool) -> None:
    assert matches(query, body=body) is expected


# --- hits and offsets --------------------------------------------------------------------

HITS = [
    # query, title, body, expected (term, field, original text)
    (
        "deter*",
        "",
        "Deterrence and deterrents.",
        [("deter*", "body", "Deterrence"), ("deter*", "body", "deterrents")],
    ),
    ("US", "", "The U.S. said", [("US", "body", "U.S.")]),
    ("US", "U.S", "", [("US", "title", "U.S")]),
    (
        '"joint force headquarters"',
        "",
        "A joint-force  headquarters.",
        [('"joint force headquarters"', "body", "joint-force  headquarters")],
    ),
    ("usfj -korea", "USFJ", "usfj", [("usfj", "title", "USFJ"), ("usfj", "body", "usfj")]),
    ("usfj NOT korea", "USFJ", "", [("usfj", "title", "USFJ")]),  # NOT terms: no hits
    ("(usfj AND korea) OR japan", "", "USFJ in Japan", [("japan", "body", "Japan")]),
    (
        "@usfj",
        "",
        "在日米軍と U.S. Forces Japan",
        [
            ("在日米軍", "body", "在日米軍"),
            ('"U.S. Forces Japan"', "body", "U.S. Forces Japan"),
            ('"US Forces Japan"', "body", "U.S. Forces Japan"),
        ],
    ),
    ("ｕｓｆｊ", "", "Café ＵＳＦＪ", [("ｕｓｆｊ", "body", "ＵＳＦＪ")]),
    ("Zurich", "", "e\u0301 Zu\u0308rich.", [("Zurich", "body", "Zu\u0308rich")]),
    (
        "straße",
        "",
        "Die Strasse, die Straße",
        [("straße", "body", "Strasse"), ("straße", "body", "Straße")],
    ),
    ("ガス", "", "ｶﾞｽ", [("ガス", "body", "ｶﾞｽ")]),
    ("deterrence", "", "a deter\u00adrence.", [("deterrence", "body", "deter\u00adrence")]),
    (
        '"china russia"~1',
        "",
        "China and Russia; later Russia.",
        [('"china russia"~1', "body", "China"), ('"china russia"~1', "body", "Russia")],
    ),
]


@pytest.mark.parametrize(("query", "title", "body", "expected"), HITS)
def test_hits(query: str, title: str, body: str, expected: list[tuple[str, str, str]]) -> None:
    assert hits(query, title, body) == expected


def test_matches_come_in_mapping_order_with_only_matching_watchlists() -> None:
    names = ["zeta", "alpha", "none", "mid"]
    queries = {"zeta": "japan", "alpha": "china OR japan", "none": "korea", "mid": "japan -x"}
    matcher = Matcher({n: parse_query(queries[n]) for n in names})
    found = matcher.match("Japan", "")
    assert [m.watchlist for m in found] == ["zeta", "alpha", "mid"]
    assert [m.terms for m in found] == [("japan",), ("japan",), ("japan",)]


def test_matcher_without_queries_or_text() -> None:
    assert Matcher({}).match("Japan", "China") == []
    assert Matcher({"q": parse_query("japan")}).match("", "") == []


def test_hand_built_query_that_holds_without_terms_is_still_evaluated() -> None:
    # parse_query refuses it; a tree built by hand still gets the right answer
    matcher = Matcher({"q": Not(Term("korea"))})
    assert [m.watchlist for m in matcher.match("Japan", "")] == ["q"]
    assert matcher.match("Korea", "") == []


def test_empty_term_in_hand_built_query_matches_nothing() -> None:
    assert Matcher({"q": Term("&&")}).match("a && b", "&&") == []


# --- parsing -----------------------------------------------------------------------------

FORMATS = [
    ("a b OR c", "(a AND (b OR c))"),
    ("a OR b c", "((a OR b) AND c)"),
    ("a AND b AND c", "(a AND b AND c)"),
    ("a (b c)", "(a AND b AND c)"),
    ("a -b", "(a AND NOT b)"),
    ("NOT b a", "(NOT b AND a)"),
    ('title:(a OR "b c") deter*', '(title:(a OR "b c") AND deter*)'),
    ('"china russia"~10 japan', '("china russia"~10 AND japan)'),
    ('"china"~3', '"china"'),
    ("@usfj", '("US Forces Japan" OR "U.S. Forces Japan" OR USFJ OR 在日米軍)'),
    (
        "x OR @nested",
        '(x OR "US Forces Japan" OR "U.S. Forces Japan" OR USFJ OR 在日米軍 OR INDOPACOM)',
    ),
    ("title:@usfj", 'title:("US Forces Japan" OR "U.S. Forces Japan" OR USFJ OR 在日米軍)'),
    ("-or japan", "(NOT or AND japan)"),
    ('"or" japan', '("or" AND japan)'),
]


@pytest.mark.parametrize(("query", "expected"), FORMATS)
def test_format_query(query: str, expected: str) -> None:
    parsed = parse_query(query, ALIASES)
    assert format_query(parsed) == expected
    assert parse_query(expected) == parsed  # the printed form reads back the same


def test_parse_tree() -> None:
    assert parse_query('title:(a OR b*) -"c d" "e f"~3') == And((
        Field("title", Or((Term("a"), Prefix("b*")))),
        Not(Phrase("c d")),
        Proximity("e f", 3),
    ))  # fmt: skip


def test_query_terms() -> None:
    query = parse_query('@jfhq AND (deter* OR "china russia"~5) -korea', ALIASES)
    assert query_terms(query) == (
        '"joint force headquarters"',
        '"joint headquarters"',
        "統合軍司令部",
        "deter*",
        '"china russia"~5',
        "korea",
    )


ERRORS = [
    # query, message part, column
    ("", "empty query", 1),
    ("   ", "empty query", 1),
    ("(a OR b", "unbalanced parenthesis", 1),
    ("a AND (b OR (c)", "unbalanced parenthesis", 7),
    ("a OR b)", "unbalanced parenthesis", 7),
    ('a "b c', "unclosed quote", 3),
    ("a AND", "dangling operator AND", 3),
    ("a AND OR b", "dangling operator OR", 7),
    ("OR a", "dangling operator OR", 1),
    ("a -", "dangling operator -", 3),
    ("NOT", "dangling operator NOT", 1),
    ("(a AND)", "dangling operator AND", 4),
    ("a ()", "empty parentheses", 3),
    ("@nope AND x", "unknown alias @nope", 1),
    ("x @loop", "refers to itself", 3),
    ("x OR @broken", "alias @broken entry '(unclosed': unbalanced parenthesis", 6),
    ("title:@in_body", "inside another field", 7),
    ("author:smith", "unknown field 'author'", 1),
    ("x title:(body:y)", "inside another field", 10),
    ("title:", "field title: has nothing after it", 1),
    (":a", "field name missing", 1),
    ("*ter", "leading wildcard", 1),
    ("a ?ter", "leading wildcard", 3),
    ("de*ter", "only a trailing * wildcard", 1),
    ("dete?", "only a trailing * wildcard", 1),
    ('"heart diseas*"', "wildcards inside a phrase", 1),
    ("x~2", "fuzzy", 1),
    ("x^2", "boosts", 1),
    ("[a TO b]", "ranges", 1),
    ("/re/", "regular expressions", 1),
    ('"a b"~1.5', "whole number", 6),
    ('"a b"~', "whole number", 6),
    ("a && b", "write AND instead of &&", 3),
    ("china or russia", "'or' is not an operator", 7),
    ("... a", "no letters or digits", 1),
    ('""', "no letters or digits", 1),
    ("NOT a", "none of its terms", 1),
    ("a OR -b", "none of its terms", 1),
    ("'quoted'", 'unexpected "\'"', 1),
]


@pytest.mark.parametrize(("query", "message", "column"), ERRORS)
def test_parse_errors(query: str, message: str, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query, ALIASES)
    assert message in caught.value.message
    assert caught.value.column == column
    assert str(caught.value).endswith(f"at column {column}")  # the config error line


@given(st.text(max_size=40))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_parse_never_leaks_a_foreign_exception(text: str) -> None:
    try:
        parse_query(text, ALIASES)
    except QueryError as exc:
        assert exc.column is None or 1 <= exc.column <= len(text) + 1


# --- snippets ----------------------------------------------------------------------------


def test_snippet_window_cuts_between_words_and_marks_hits() -> None:
    body = " ".join(f"w{i}" for i in range(200)) + " USFJ " + " ".join("x" * 5 for _ in range(200))
    hit = body.index("USFJ")
    snippet, spans = make_snippet(body, [Hit("usfj", "body", hit, hit + 4)], width=100)
    assert snippet.startswith("…w") and snippet.endswith("x…")
    assert 90 <= len(snippet) <= 105
    assert [snippet[s:e] for s, e in spans] == ["USFJ"]
    assert all(part.startswith(("w", "x", "USFJ")) for part in snippet.strip("…").split())


def test_snippet_of_short_text_and_other_fields() -> None:
    text = "Japan and\nChina"
    snippet, spans = make_snippet(text, [Hit("china", "body", 10, 15), Hit("japan", "title", 0, 5)])
    assert snippet == "Japan and China"
    assert spans == ((10, 15),)
    assert make_snippet(text, [], width=9) == ("Japan and…", ())


def test_snippet_merges_overlapping_hits_and_keeps_a_long_hit_whole() -> None:
    text = "The U.S. Forces Japan command"
    found = [Hit('"US Forces Japan"', "body", 4, 21), Hit("Japan", "body", 16, 21),
             Hit("command", "body", 22, 29)]  # fmt: skip
    snippet, spans = make_snippet(text, found, width=10)
    assert [snippet[s:e] for s, e in spans] == ["U.S. Forces Japan"]
    assert snippet.startswith("…U.S. Forces Japan") and snippet.endswith("…")


def test_snippet_of_japanese_text_cuts_anywhere() -> None:
    text = "あ" * 300 + "在日米軍" + "い" * 300
    snippet, spans = make_snippet(text, [Hit("在日米軍", "body", 300, 304)], width=40)
    assert [snippet[s:e] for s, e in spans] == ["在日米軍"]
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) == 42


def test_snippet_from_real_matcher_hits() -> None:
    body = "Officials said on Tuesday that U.S. Forces Japan (USFJ) will upgrade."
    found = Matcher({"q": parse_query("@usfj upgrade*", ALIASES)}).match("", body)
    snippet, spans = make_snippet(body, found[0].hits)
    assert [snippet[s:e] for s, e in spans] == ["U.S. Forces Japan", "USFJ", "upgrade"]


# --- properties --------------------------------------------------------------------------

WORDS = ["US", "U.S.", "usb", "bus", "Japan", "joint", "force", "forces", "headquarters",
         "ROK", "brokers", "deterrence", "deterrent", "China", "Russia", "在日米軍", "拡大抑止力",
         "Café", "drill", "2+2", "-", ",", "“", "”", "(", ")", "の", "は"]  # fmt: skip
QUERIES = ["US", "usfj", "@usfj", "@jfhq", "japan", "deter*", '"joint force"', "cafe",
           '"china russia"~3', "拡大抑止", "ROK", "title:japan", '"2+2"', "drill*"]  # fmt: skip

SEPARATORS = [" ", " ", " ", "", "-", ", ", "\n", "　"]
texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)
leaves = st.sampled_from(QUERIES)
queries = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} -{p[1]})"),
    ),
    max_leaves=6,
)


def verdict(query: Query, title: str, body: str) -> bool:
    return bool(Matcher({"q": query}).match(title, body))


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@given(queries, texts, texts)
@settings(max_examples=200)
def test_matching_ignores_case(query: str, title: str, body: str) -> None:
    parsed = parse_query(query, ALIASES)
    expected = verdict(parsed, title, body)
    assert verdict(parsed, title.upper(), body.lower()) is expected
    assert verdict(parsed, title.swapcase(), body.swapcase()) is expected


@given(queries, texts, texts)
@settings(max_examples=200)
def test_matching_ignores_nfkc_variants(query: str, title: str, body: str) -> None:
    parsed = parse_query(query, ALIASES)
    expected = verdict(parsed, title, body)
    assert verdict(parsed, full_width(title), full_width(body)) is expected
    assert verdict(parsed, unicodedata.normalize("NFD", title), body) is expected


@given(queries, st.randoms(use_true_random=False), texts, texts)
@settings(max_examples=200)
def test_matching_ignores_the_order_of_or_branches(query: str, rng: random.Random,
                                                   title: str, body: str) -> None:  # fmt: skip
    parsed = parse_query(query, ALIASES)
    shuffled = shuffle_ors(parsed, rng)
    assert verdict(shuffled, title, body) is verdict(parsed, title, body)
    one = Matcher({"q": parsed}).match(title, body)
    other = Matcher({"q": shuffled}).match(title, body)
    assert [set(m.hits) for m in one] == [set(m.hits) for m in other]


def shuffle_ors(query: Query, rng: random.Random) -> Query:
    if isinstance(query, Or):
        items = [shuffle_ors(q, rng) for q in query.items]
        rng.shuffle(items)
        return Or(tuple(items))
    if isinstance(query, And):
        return And(tuple(shuffle_ors(q, rng) for q in query.items))
    if isinstance(query, Not):
        return Not(shuffle_ors(query.item, rng))
    if isinstance(query, Field):
        return Field(query.name, shuffle_ors(query.item, rng))
    return query


def reference(query: Query, title: str, body: str, fields: tuple[str, ...]) -> bool:
    """Evaluate ``query`` leaf by leaf, each leaf matched on its own, one field at a time."""
    if isinstance(query, And):
        return all(reference(q, title, body, fields) for q in query.items)
    if isinstance(query, Or):
        return any(reference(q, title, body, fields) for q in query.items)
    if isinstance(query, Not):
        return not reference(query.item, title, body, fields)
    if isinstance(query, Field):
        return reference(query.item, title, body, (query.name,))
    texts = {"title": title, "body": body}
    return any(verdict(Field(f, query), *(("", texts[f]) if f == "body" else (texts[f], "")))
               for f in fields)  # fmt: skip


@given(st.lists(queries, min_size=1, max_size=8), texts, texts)
@settings(max_examples=200)
def test_many_queries_at_once_agree_with_each_evaluated_leaf_by_leaf(
    some: list[str], title: str, body: str
) -> None:
    parsed = {f"q{i}": parse_query(q, ALIASES) for i, q in enumerate(some)}
    together = {m.watchlist for m in Matcher(parsed).match(title, body)}
    expected = {n for n, q in parsed.items() if reference(q, title, body, ("title", "body"))}
    assert together == expected


@given(queries, texts, texts)
@settings(max_examples=200)
def test_hits_point_at_text_that_folds_to_the_term(query: str, title: str, body: str) -> None:
    for found in Matcher({"q": parse_query(query, ALIASES)}).match(title, body):
        for hit in found.hits:
            original = (title if hit.field == "title" else body)[hit.start : hit.end]
            folded = normalise(original).norm.strip()
            words = normalise(hit.term.strip('"').split('"~')[0].rstrip("*")).norm.strip()
            if '"~' in hit.term:  # proximity: each hit is one of the words
                assert folded in words.split()
            elif hit.term.endswith("*"):
                assert folded.startswith(words)
            else:
                assert folded == words


@given(queries)
def test_format_query_reads_back(query: str) -> None:
    parsed = parse_query(query, ALIASES)
    assert parse_query(format_query(parsed)) == parsed


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_normalised_words_map_back_to_their_original_text(text: str) -> None:
    folded = normalise(text)
    start = 0
    for word in folded.norm.split(" "):
        start = folded.norm.index(word, start) if word else start + 1
        if not word:
            continue
        a, b = folded.span(start, start + len(word))
        assert 0 <= a < b <= len(text)
        assert f" {word} " in f" {normalise(text[a:b]).norm.strip()} " or _cjk(word)
        start += len(word)


def _cjk(word: str) -> bool:
    return any(is_unspaced(c) for c in word)


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text).norm
    assert normalise(once).norm == once


def test_fast_and_slow_folding_agree() -> None:
    text = "U.S. Forces Japan: joint-force HQ “2+2” 在日米軍USFJ"
    assert normalise(text + " ß").norm == normalise(text).norm + "ss "


def test_terms_name_each_matched_span_once() -> None:
    # "US Forces Japan" and "U.S. Forces Japan" fold to the same words: both hit the one
    # span, and the alert's "matched" names it once; USFJ, elsewhere, is named too.
    title = "U.S. Forces Japan upgrade"
    body = "USFJ will become a joint force headquarters."
    (found,) = Matcher({"q": parse_query("@usfj", ALIASES)}).match(title, body)
    spans = {(h.field, h.start, h.end) for h in found.hits}
    assert len(found.hits) == 3 and len(spans) == 2
    assert len(found.terms) == 2 and found.terms[1] == "USFJ"
    assert found.terms[0] in {'"US Forces Japan"', '"U.S. Forces Japan"'}
