"""Watchlist matching: every watchlist against one article in one pass (issue 4).

Pure: values in, values out; no I/O, no clock.

Query language (Lucene style, parsed by luqum; precedence is luqum's)::

    deterrence                one word (whole word in Latin script)
    "joint force headquarters"   a phrase: these words, in this order
    deter*                    trailing wildcard: deterrence, deterrent, ...
    "China Russia"~10         proximity: all words, any order, at most 10 other words
                              among them (a CJK character counts as a word)
    a AND b    a b            both (bare terms are joined by AND)
    a OR b                    either
    NOT a      -a             not; a query needs at least one term that is not negated
    ( ... )                   grouping
    title:a  body:"a b"  source:(a OR b)
                              restrict a term, phrase or group to one field; without
                              a field a term may match the title or the body
    @usfj                     the config alias ``usfj``: OR of its entries, each of
                              which is query text ('"US Forces Japan"', USFJ, 在日米軍)

``a b OR c`` reads ``a AND (b OR c)``; :func:`format_query` prints the parsed form with
every group explicit. Unsupported and refused with a column: fuzzy (``a~2``), boosts,
ranges, regular expressions, leading or inner wildcards, ``?``, lowercase ``and``/``or``
/``not`` (Lucene would search them as words; write them in capitals, or quote them).

Normalisation, the same for query terms and article text:

- Unicode NFKC (full-width ``ＵＳＦＪ`` is ``USFJ``, half-width katakana is full-width),
  case folding, accents removed (Japanese voiced marks kept: ガ is not カ);
- every character that is not a letter, digit or mark separates words, so hyphens,
  slashes, curly or straight quotes and apostrophes all read as a space: ``joint-force``
  = ``joint force``, ``ROK’s`` holds the word ``ROK``, ``"2+2"`` is the words 2 2;
  invisible format characters (soft hyphens, zero-width joiners) are dropped;
- dotted abbreviations lose their dots: ``U.S.`` = ``U.S`` = ``US``;
- Latin (and every script written with spaces) matches whole words: ``US`` does not
  match ``USB`` or ``bus``, ``ROK`` not ``brokers``;
- Chinese, Japanese, Korean and Thai are written without spaces: their terms match as
  substrings (``拡大抑止`` in ``拡大抑止力``), spaces between two such characters are
  ignored, and a script change (``在日US軍``) is a word boundary.

Speed: every literal of every query is a key of ONE Aho-Corasick automaton over the
normalised text. Keys carry their word boundaries as spaces (``" us "``, prefix
``" deter"``) and the normalised text is padded and single-spaced, so every automaton
hit is a real match with no check after it. One scan per field gives the set of hit
keys. Each query is indexed under a *cover*: keys of which at least one must hit for the
query to hold, taken from its rarest required part (English word frequencies from
wordfreq; ``@usfj`` rather than ``military`` in ``@usfj AND military``). Only the queries
whose cover was hit are evaluated, so the cost follows the number of plausible
watchlists, not all of them. Offsets back into the original text are computed only for
the hits reported.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from typing import Protocol

import ahocorasick  # type: ignore[import-not-found,unused-ignore]

from ._fold import Normalised, core, is_unspaced, normalise, word_count
from ._query import (
    FIELDS,
    And,
    Field,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    Query,
    Term,
    format_query,
    holds_without_terms,
    parse_query,
    query_terms,
)
from ._snippet import make_snippet
from .types import Hit, Match

__all__ = [
    "And",
    "Field",
    "Matcher",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Proximity",
    "Query",
    "Term",
    "format_query",
    "make_snippet",
    "parse_query",
    "query_terms",
]

# --- compiled queries ----------------------------------------------------------------------

_BITS = {name: 1 << i for i, name in enumerate(FIELDS)}  # title 1, body 2, source 4
_DEFAULT_FIELDS = _BITS["title"] | _BITS["body"]
_NAMES = {bit: name for name, bit in _BITS.items()}
_RawHit = tuple[int, int, int, str]  # field bit, start, end, term


class _Article:
    """What one scan of an article found: hit keys per field; positions on demand."""

    def __init__(self, texts: dict[int, Normalised], found: dict[int, dict[int, list[int]]],
                 compiler: _Compiler) -> None:  # fmt: skip
        """``found`` holds, per field bit, the end index of every hit by key id."""
        self.texts, self._found = texts, found
        self._ends, self._pads, self._prefix = compiler.ends, compiler.pads, compiler.prefix
        self.masks: dict[int, int] = {}
        for bit, by_key in found.items():
            for uid in by_key:
                self.masks[uid] = self.masks.get(uid, 0) | bit
        self._spans: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._hits: dict[_RawHit, Hit] = {}
        self._leaves: dict[_Key | _AnyKey, list[_RawHit]] = {}
        self._hit_keys: dict[int, set[int]] = {}

    def hit_keys(self, mask: int) -> set[int]:
        """The keys hit in at least one of the fields in ``mask``."""
        keys = self._hit_keys.get(mask)
        if keys is None:
            keys = self._hit_keys[mask] = {uid for uid, bits in self.masks.items() if bits & mask}
        return keys

    def leaf_hits(self, leaf: _Key | _AnyKey) -> list[_RawHit]:
        """The hits of one shared node; many queries use the same alias or its entries."""
        hits = self._leaves.get(leaf)
        if hits is None:
            hits = self._leaves[leaf] = leaf.raw_hits(self)
        return hits

    def spans(self, uid: int, bit: int) -> list[tuple[int, int]]:
        """Normalised ``(start, end)`` of each hit of key ``uid`` in one field, in order."""
        spans = self._spans.get((uid, bit))
        if spans is None:
            back, pad = self._ends[uid], self._pads[uid]
            ends = self._found[bit].get(uid, ())
            spans = [(end + 1 - back, end + 1 - pad) for end in ends]
            if self._prefix[uid]:  # a hit of deter* covers the whole word, deterrence
                norm = self.texts[bit].norm
                spans = [(start, norm.index(" ", end)) for start, end in spans]
            self._spans[uid, bit] = spans
        return spans

    def hit(self, raw: _RawHit) -> Hit:
        """The :class:`Hit` for ``raw``, its offsets mapped back to the original text."""
        hit = self._hits.get(raw)
        if hit is None:
            bit, start, end, term = raw
            start, end = self.texts[bit].span(start, end)
            hit = self._hits[raw] = Hit(term, _NAMES[bit], start, end)
        return hit


_Cover = tuple[float, frozenset[int]]  # estimated rarity, keys of which one must hit


class _Node(Protocol):
    def test(self, art: _Article) -> bool: ...
    def collect(self, art: _Article, out: list[_RawHit]) -> None: ...
    def cover(self, rarity: list[float]) -> _Cover | None: ...


class _Key:
    """One literal: matches when its automaton key was hit in one of the fields."""

    __slots__ = ("mask", "term", "uid")

    def __init__(self, uid: int, mask: int, term: str) -> None:
        self.uid, self.mask, self.term = uid, mask, term

    def test(self, art: _Article) -> bool:
        return bool(art.masks.get(self.uid, 0) & self.mask)

    def cover(self, rarity: list[float]) -> _Cover | None:
        return rarity[self.uid], frozenset((self.uid,))

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        out.extend(art.leaf_hits(self))

    def raw_hits(self, art: _Article) -> list[_RawHit]:
        mask = art.masks.get(self.uid, 0) & self.mask
        return [
            (bit, s, e, self.term)
            for bit in (1, 2, 4)
            if mask & bit
            for s, e in art.spans(self.uid, bit)
        ]


class _Near:
    """Proximity: one hit of every word within a window of ``distance`` other words."""

    __slots__ = ("distance", "mask", "sizes", "term", "uids")

    def __init__(self, uids: list[int], sizes: list[int], distance: int, mask: int,
                 term: str) -> None:  # fmt: skip
        self.uids, self.sizes, self.distance, self.mask, self.term = (
            uids, sizes, distance, mask, term)  # fmt: skip

    def test(self, art: _Article) -> bool:
        return any(self._windows(art, bit, first=True) for bit in self._fields(art))

    def cover(self, rarity: list[float]) -> _Cover | None:
        return min((rarity[uid], frozenset((uid,))) for uid in self.uids)

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        for bit in self._fields(art):
            out.extend((bit, s, e, self.term) for s, e in self._windows(art, bit, first=False))

    def _fields(self, art: _Article) -> list[int]:
        mask = self.mask
        for uid in self.uids:
            mask &= art.masks.get(uid, 0)
        return _bits(mask)

    def _windows(self, art: _Article, bit: int, first: bool) -> set[tuple[int, int]]:
        """The hits that take part in a close enough window (the first one if ``first``)."""
        text, found = art.texts[bit], set[tuple[int, int]]()
        words: list[list[_Place]] = [
            [(text.token(s), text.token(e - 1), s, e) for s, e in art.spans(uid, bit)]
            for uid in self.uids
        ]
        starts = [[w[0] for w in hits] for hits in words]
        budget = self.distance + sum(self.sizes)
        for hit in (hit for hits in words for hit in hits):
            window = _window_from(words, starts, hit)
            if window and max(w[1] for w in window) - hit[0] + 1 <= budget:
                found.update((w[2], w[3]) for w in window)
                if first:
                    break
        return found


_Place = tuple[int, int, int, int]  # first word, last word, start, end


def _window_from(words: list[list[_Place]], starts: list[list[int]],
                 hit: _Place) -> list[_Place]:  # fmt: skip
    """``hit`` and, for every other word, its first hit at or after ``hit`` (or [])."""
    window = []
    for hits, first in zip(words, starts, strict=True):
        k = bisect_left(first, hit[0])
        if k == len(hits):
            return []
        window.append(hits[k])
    return window


class _All:
    __slots__ = ("items",)

    def __init__(self, items: list[_Node]) -> None:
        self.items = items

    def test(self, art: _Article) -> bool:
        for item in self.items:  # a plain loop: this runs for every candidate query
            if not item.test(art):
                return False
        return True

    def cover(self, rarity: list[float]) -> _Cover | None:
        """Every item must hold, so the rarest item's cover will do."""
        covers = [c for c in (item.cover(rarity) for item in self.items) if c is not None]
        return min(covers, key=lambda c: c[0], default=None)

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        for item in self.items:
            item.collect(art, out)


class _Any(_All):
    __slots__ = ()

    def test(self, art: _Article) -> bool:
        for item in self.items:
            if item.test(art):
                return True
        return False

    def cover(self, rarity: list[float]) -> _Cover | None:
        """One item must hold, so all their covers are needed."""
        covers = [item.cover(rarity) for item in self.items]
        if any(c is None for c in covers):
            return None
        return sum(c[0] for c in covers if c), frozenset().union(*(c[1] for c in covers if c))

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        for item in self.items:
            if item.test(art):
                item.collect(art, out)


class _AnyKey:
    """An OR of plain keys (an alias, say): one set test instead of one call per key."""

    __slots__ = ("keys", "mask", "uids")

    def __init__(self, keys: list[_Key], mask: int) -> None:
        self.keys, self.mask, self.uids = keys, mask, frozenset(k.uid for k in keys)

    def test(self, art: _Article) -> bool:
        return not self.uids.isdisjoint(art.hit_keys(self.mask))

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        out.extend(art.leaf_hits(self))

    def raw_hits(self, art: _Article) -> list[_RawHit]:
        hit = art.hit_keys(self.mask)
        return [raw for key in self.keys if key.uid in hit for raw in art.leaf_hits(key)]

    def cover(self, rarity: list[float]) -> _Cover | None:
        return sum(rarity[uid] for uid in self.uids), self.uids


class _None:
    __slots__ = ("item",)

    def __init__(self, item: _Node) -> None:
        self.item = item

    def test(self, art: _Article) -> bool:
        return not self.item.test(art)

    def collect(self, art: _Article, out: list[_RawHit]) -> None:
        return None  # negated terms never explain a match

    def cover(self, rarity: list[float]) -> _Cover | None:
        return None


def _bits(mask: int) -> list[int]:
    return [bit for bit in (1, 2, 4) if mask & bit]


# --- the matcher -----------------------------------------------------------------------------


class _Compiler:
    """Turns query trees into nodes over automaton keys, shared between queries."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.ends: list[int] = []  # per key: from the hit's end back to the match start
        self.pads: list[int] = []  # per key: trailing boundary space in the key
        self.prefix: list[bool] = []  # per key: a prefix ending in a spaced script
        self.rarity: list[float] = []  # per key: how common its words are in English
        self.leaves: dict[tuple[int, int, str], _Key] = {}
        self.ors: dict[tuple[tuple[tuple[int, str], ...], int], _AnyKey] = {}

    def compile(self, query: Query, mask: int = _DEFAULT_FIELDS) -> _Node:
        if isinstance(query, And | Or):
            items = [self.compile(q, mask) for q in query.items]
            if isinstance(query, And):
                return _All(items)
            keys = [item for item in items if isinstance(item, _Key) and item.mask == mask]
            return self.any_key(keys, mask) if len(keys) == len(items) else _Any(items)
        if isinstance(query, Not):
            return _None(self.compile(query.item, mask))
        if isinstance(query, Field):
            return self.compile(query.item, _BITS[query.name])
        if isinstance(query, Proximity):
            return self.near(query, mask)
        prefix = isinstance(query, Prefix)
        return self.leaf(self.key(core(query.text[:-1] if prefix else query.text), prefix),
                         mask, query.term)  # fmt: skip

    def near(self, query: Proximity, mask: int) -> _Node:
        words = [w for w in dict.fromkeys(core(w) for w in query.text.split()) if w]
        if len(words) < 2:
            return self.leaf(self.key(" ".join(words), False), mask, query.term)
        sizes = [word_count(w) for w in words]
        uids = [self.key(w, False) for w in words]
        return _Near(uids, sizes, query.distance, mask, query.term)

    def leaf(self, uid: int, mask: int, term: str) -> _Key:
        """One node per distinct leaf, so that an article computes its hits once."""
        return self.leaves.setdefault((uid, mask, term), _Key(uid, mask, term))

    def any_key(self, keys: list[_Key], mask: int) -> _AnyKey:
        """One node per distinct OR of keys: an alias used by many queries, say."""
        terms = tuple((key.uid, key.term) for key in keys)
        return self.ors.setdefault((terms, mask), _AnyKey(keys, mask))

    def key(self, words: str, prefix: bool) -> int:
        """Register the automaton key for normalised ``words``; returns its id."""
        if not words:
            words = "\x00"  # nothing to search for: a key no text contains
        left = "" if is_unspaced(words[0]) else " "
        right = "" if prefix or is_unspaced(words[-1]) else " "
        key = left + words + right
        uid = self.keys.setdefault(key, len(self.keys))
        if uid == len(self.ends):
            self.ends.append(len(key) - len(left))
            self.pads.append(len(right))
            self.prefix.append(prefix and not is_unspaced(words[-1]))
            self.rarity.append(_rarity(words, prefix))
        return uid

    def automaton(self) -> ahocorasick.Automaton | None:
        if not self.keys:
            return None
        automaton = ahocorasick.Automaton()
        for key, uid in self.keys.items():
            automaton.add_word(key, uid)
        automaton.make_automaton()
        return automaton


def _rarity(words: str, prefix: bool) -> float:
    """Roughly how often ``words`` occur: to index each query by its rarest part."""
    from ._features import zipf  # loads its table on first use

    spaced = [w for w in words.split() if not is_unspaced(w[0])]
    if len(spaced) < len(words.split()):  # CJK: the longer, the rarer
        return 10.0 ** -(2 + len(words.replace(" ", "")))
    guess: float = min(max(10.0 ** (zipf(w.casefold(), "en") - 9.0), 1e-8) for w in spaced)
    return guess * 20 + 1e-5 if prefix else guess


class Matcher:
    """Matches articles against many named queries at once.

    Build it once per config; :meth:`match` is then safe to call from several threads.
    """

    def __init__(self, queries: Mapping[str, Query]) -> None:
        """Compile ``queries`` (watchlist name -> parsed query) into one automaton.

        Args:
            queries: parsed queries by watchlist name; matches come back in this order.
        """
        compiler = _Compiler()
        self._names = list(queries)
        self._trees = [compiler.compile(query) for query in queries.values()]
        self._compiler = compiler
        self._always: list[int] = []  # queries without a cover: evaluated every time
        self._users: dict[int, list[int]] = {}  # key -> the queries it covers
        for index, (tree, query) in enumerate(zip(self._trees, queries.values(), strict=True)):
            cover = None if holds_without_terms(query) else tree.cover(compiler.rarity)
            for uid in cover[1] if cover else ():
                self._users.setdefault(uid, []).append(index)
            if cover is None:
                self._always.append(index)
        self._automaton = compiler.automaton()

    def match(self, title: str, body: str, source: str = "") -> list[Match]:
        """Match one article against every query.

        Args:
            title: the article title (plain text).
            body: the article body (plain text).
            source: the source (feed) name, searched only through ``source:``.

        Returns:
            One :class:`~monitor.types.Match` per matching query, in the order the
            queries were given, with the hits of the terms that made it match, in text
            order (offsets into the strings passed in; a ``deter*`` hit covers the whole
            word; terms under NOT, or in an OR branch that did not hold, give none).
        """
        art = self._scan({_BITS["title"]: title, _BITS["body"]: body, _BITS["source"]: source})
        candidates = set(self._always)
        for uid in self._users.keys() & art.masks.keys():
            candidates.update(self._users[uid])
        return [self._explain(i, art) for i in sorted(candidates) if self._trees[i].test(art)]

    def _scan(self, fields: dict[int, str]) -> _Article:
        texts = {bit: normalise(text) for bit, text in fields.items() if text}
        found: dict[int, dict[int, list[int]]] = {}
        automaton = self._automaton
        if automaton is None:
            return _Article(texts, found, self._compiler)
        for bit, text in texts.items():
            by_key = found[bit] = defaultdict(list)
            for end, uid in automaton.iter(text.norm):
                by_key[uid].append(end)
        return _Article(texts, found, self._compiler)

    def _explain(self, index: int, art: _Article) -> Match:
        raw: list[_RawHit] = []
        self._trees[index].collect(art, raw)
        # Normalised offsets keep the original order, so sorting the raw hits will do.
        return Match(self._names[index], tuple(art.hit(r) for r in sorted(set(raw))))
