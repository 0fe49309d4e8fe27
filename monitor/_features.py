"""Text features for story dedupe: tokens, term weights, entities, numbers, MinHash.

Pure functions of strings; the only data source is wordfreq's background frequency table,
loaded once per language. Everything here feeds ``monitor.dedupe``; nothing here decides.

- Terms are lowercased, accent-kept words (``U.S.`` reads ``us``); CJK runs become
  character bigrams, since Japanese word segmentation would need MeCab.
- A term's weight is how rare it is in the language at large (``Z0 - zipf``), so rare
  names and places weigh from the first article on, before the store knows anything.
- Entities are capitalised words found mid-sentence (or rare enough to be names at a
  sentence start); numbers, years and calendar dates are kept apart because they tell
  two events of one kind apart (two earthquakes share vocabulary, not magnitudes).
- The MinHash signature (``_minhash``) is one-permutation hashing over word 3-shingles,
  with rotation densification, so it costs one hash per shingle.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import wordfreq

from ._minhash import SIGNATURE_SIZE, signature, signature_similarity

__all__ = [
    "SIGNATURE_SIZE",
    "Features",
    "ZipfTable",
    "extract",
    "normalised_text",
    "signature_similarity",
    "zipf",
]

# Terms with a Zipf frequency at or above Z0 ("the", "of", "and") weigh nothing; a word
# never seen by wordfreq weighs Z0. Between, the weight falls linearly with log frequency.
Z0 = 7.0
# Unknown words are usually names or typos; cap their weight so one misspelling cannot
# outweigh a shared place name.
MAX_WEIGHT = 6.0
# The term vector keeps this many highest-weighted terms (bounds stored JSON and cost).
MAX_TERMS = 120
# A title term counts as this many extra occurrences: titles name the event.
TITLE_BOOST = 1
# Capitalised words this common ("The", "But", "New") are not names worth matching on.
NAME_MIN_WEIGHT = 1.0
# Features come from the first this many characters of title and body (bounds the cost;
# the exact-text key still hashes everything).
MAX_TEXT = 8_000
# Names kept as written, for the reasons a decision gives.
MAX_SHOWN = 40

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_TOKEN = re.compile(
    rf"[{_CJK}]+|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b|[^\W\d_]+(?:['’][^\W\d_]+)*",
)
_TOKEN_SPLIT = re.compile(f"({_TOKEN.pattern})")  # gap, token, gap, token, ..., gap
_ACRONYM = re.compile(r"\b[A-Z]\.(?: ?[A-Z]\.)+")
_BREAK = re.compile(r"[.!?:;\n\"“”«»(\[—–|]")
_JOINERS = frozenset((" ", "-", "‐", " - "))
_SCALES = {"thousand": 1e3, "million": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9}
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        )
    )
    for m in names
}
_ORDINALS = frozenset(("st", "nd", "rd", "th"))
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())


@dataclass(frozen=True, slots=True)
class Tokens:
    """The words of one text, as parallel lists with one item per token: the lowercased
    form, the surface form, whether its case tells nothing (at a sentence or title start,
    or in an all-caps run), and whether only a space or hyphen came since the previous
    token."""

    terms: list[str]
    surfaces: list[str]
    ambiguous: list[bool]
    joined: list[bool]

    def __len__(self) -> int:
        return len(self.terms)


@dataclass(frozen=True, slots=True)
class Features:
    """What scoring needs from one article (see ``monitor.dedupe`` for its JSON form)."""

    lang: str
    vector: dict[str, float]
    entities: dict[str, float]
    shown: tuple[str, ...]  # names as written, at most MAX_SHOWN
    numbers: tuple[str, ...]
    years: tuple[int, ...]
    dates: tuple[str, ...]
    months: tuple[int, ...]
    weekdays: tuple[str, ...]
    title_terms: tuple[str, ...]
    signature: tuple[int, ...]


def normalised_text(title: str, body: str) -> str:
    """Casefolded, NFKC, whitespace-collapsed ``title`` + ``body`` (the exact-text key)."""
    text = unicodedata.normalize("NFKC", f"{title}\n{body}").casefold()
    return " ".join(_TOKEN.findall(text))


def detect_lang(text: str) -> str:
    """A wordfreq language code guessed from the script (English for Latin text)."""
    if re.search("[\u3040-\u30ff]", text):
        return "ja"
    if re.search("[\uac00-\ud7af]", text):
        return "ko"
    if re.search("[\u4e00-\u9fff]", text):
        return "zh"
    if re.search("[\u0400-\u04ff]", text):
        return "ru"
    return "en"


class ZipfTable:
    """One language's wordfreq list in a few MB: its words sorted in one UTF-8 blob and
    found by binary search. wordfreq's own table, a dict of 320,000 strings for English,
    holds about 30 MB in every process that weighs a term; this one is looked up once per
    distinct term (``zipf`` caches the answer)."""

    def __init__(self, buckets: Sequence[Sequence[str]]) -> None:
        # Bucket i holds the words of frequency 10 ** (-i / 100) (wordfreq's cBpack); a
        # word listed twice keeps its last bucket, as wordfreq.get_frequency_dict does.
        where = {w: i for i, bucket in enumerate(buckets) for w in bucket}
        words = sorted(where)  # str order is code point order, the order of UTF-8 bytes
        self._blob = "".join(words).encode()
        self._ends = array("I", itertools.accumulate(map(len, map(str.encode, words))))
        self._index = array("H", map(where.__getitem__, words))
        self._zipfs = [math.log10(wordfreq.cB_to_freq(-i)) + 9.0 for i in range(len(buckets))]

    def __len__(self) -> int:
        return len(self._ends)

    def _word(self, n: int) -> bytes:
        return self._blob[self._ends[n - 1] if n else 0 : self._ends[n]]

    def get(self, term: str) -> float:
        """The Zipf frequency of ``term`` (log10 per billion words); 0 when unlisted."""
        key = term.encode("utf-8", "surrogatepass")  # a lone surrogate is no listed word
        n = bisect.bisect_left(range(len(self._ends)), key, key=self._word)
        if n < len(self._ends) and self._word(n) == key:
            return self._zipfs[self._index[n]]
        return 0.0


@lru_cache(maxsize=8)
def _table(lang: str) -> ZipfTable:
    # Read past wordfreq's own cache, which would keep the lists for the process's life.
    return ZipfTable(wordfreq.get_frequency_list.__wrapped__(lang, "best"))


@lru_cache(maxsize=100_000)
def zipf(term: str, lang: str) -> float:
    """The term's Zipf frequency (log10 per billion words); 0 when unknown."""
    return _table(lang).get(term)


def weight(term: str, lang: str) -> float:
    """How much sharing ``term`` says: rare terms weigh most (see ``Z0``)."""
    return weigher(lang)(term)


@lru_cache(maxsize=8)
def weigher(lang: str) -> Callable[[str], float]:
    """``weight`` in one language as a function of the term alone: cached by the term,
    the cheaper call in loops over terms."""

    @lru_cache(maxsize=100_000)
    def weigh(term: str) -> float:
        if _is_cjk(term):
            known = zipf(term, lang)
            if not known:
                known = sum(zipf(c, lang) for c in term) / len(term) - 1.0
            return max(0.0, min(MAX_WEIGHT, Z0 - known))
        return max(0.0, min(MAX_WEIGHT, Z0 - zipf(term, lang)))

    return weigh


def tokenize(text: str, *, headline: bool = False) -> Tokens:
    """Split ``text`` into tokens, marking those whose capital letter proves nothing."""
    text = _ACRONYM.sub(_acronym, text)
    parts = _TOKEN_SPLIT.split(text)
    surfaces, gaps = parts[1::2], parts[:-1:2]
    if not surfaces:
        return Tokens([], [], [], [])
    if headline or _is_shouting(text):
        ambiguous = [True] * len(gaps)
    else:
        ambiguous = list(map(_breaks, gaps))
        ambiguous[0] = True
    joined = list(map(_JOINERS.__contains__, gaps))
    terms = list(map(_term, surfaces))
    if _CJK_CHAR.search(text) is None:
        return Tokens(terms, surfaces, ambiguous, joined)
    out = Tokens([], [], [], [])
    for term, surface, amb, join in zip(terms, surfaces, ambiguous, joined, strict=True):
        if _is_cjk(term):
            grams = _bigrams(term)
            out.terms.extend(grams)
            out.surfaces.extend(grams)
            out.ambiguous.extend([True] * len(grams))
            out.joined.extend([False] * len(grams))
        else:
            out.terms.append(term)
            out.surfaces.append(surface)
            out.ambiguous.append(amb)
            out.joined.append(join)
    return out


def _acronym(match: re.Match[str]) -> str:
    return match.group().replace(".", "").replace(" ", "")


@lru_cache(maxsize=1024)
def _breaks(gap: str) -> bool:
    """Whether the text between two tokens ends a sentence or a clause."""
    return gap != " " and bool(_BREAK.search(gap))


@lru_cache(maxsize=100_000)
def _term(surface: str) -> str:
    """A token's term: casefolded, without a possessive 's or an ordinal suffix."""
    term = surface.casefold()
    if term.endswith(("'s", "’s")):
        return term[:-2]
    if term[:1].isdigit() and term[-2:] in _ORDINALS:
        return term[:-2]
    return term


def _is_cjk(term: str) -> bool:
    return term[:1] >= "\u3040" and bool(_CJK_RUN.fullmatch(term))


def _is_shouting(text: str) -> bool:
    head = text[:400]
    if head.isascii():  # the same counts, by bytes.translate
        raw = head.encode("ascii")
        letters, upper = len(raw.translate(None, _NOT_ALPHA)), len(raw.translate(None, _NOT_UPPER))
    else:
        alpha = "".join(filter(str.isalpha, head))
        letters, upper = len(alpha), sum(map(str.isupper, alpha))
    return letters > 8 and upper > 0.6 * letters


_NOT_ALPHA = bytes(c for c in range(128) if not chr(c).isalpha())
_NOT_UPPER = bytes(c for c in range(128) if not (chr(c).isalpha() and chr(c).isupper()))


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def entity_terms(parts: Sequence[Tokens], lang: str) -> tuple[dict[str, float], list[str]]:
    """Capitalised names in the parts (title, body): weights, and the names as written."""
    # Only a capitalised token can be a name: the rest are skipped (they end a run).
    capitals = [[i for i, s in enumerate(part.surfaces) if s[:1].isupper()] for part in parts]
    mid_caps = {
        part.terms[i]
        for part, indexes in zip(parts, capitals, strict=True)
        for i in indexes
        if not part.ambiguous[i] and _capitalised(part.surfaces[i])
    }
    weigh = weigher(lang)
    weights: dict[str, float] = {}
    shown: list[str] = []
    for part, indexes in zip(parts, capitals, strict=True):
        run: list[str] = []
        last = -2
        for i in indexes:
            term, surface = part.terms[i], part.surfaces[i]
            if not _is_entity(term, surface, part.ambiguous[i], mid_caps, lang):
                continue
            if run and (i != last + 1 or not part.joined[i]):
                shown.append(" ".join(run))
                run = []
            weights[term] = weigh(term)
            run.append(surface)
            last = i
        if run:
            shown.append(" ".join(run))
    return weights, shown


def _capitalised(surface: str) -> bool:
    return surface[:1].isupper() and not surface.isdigit()


def _is_entity(term: str, surface: str, ambiguous: bool, mid_caps: set[str], lang: str) -> bool:
    if not surface[:1].isupper() or term in _MONTHS or term in _WEEKDAYS:
        return False
    if len(term) < 2 or weight(term, lang) < NAME_MIN_WEIGHT:
        return False
    if surface.isupper() and len(surface) > 1:
        # Acronyms (NYPD, USFJ) are names; shouted common words (LARGE) are not.
        return zipf(term, lang) < 4.0
    if not ambiguous:
        return True
    return term in mid_caps or zipf(term, lang) < 3.5


def numbers_in(terms: Sequence[str]) -> tuple[list[str], list[int], list[str]]:
    """Significant numbers, years and month-day dates mentioned in the terms."""
    numbers: list[str] = []
    years: list[int] = []
    dates: list[str] = []
    # Only numbers and month names start a mention: find them among the distinct terms.
    wanted = {t for t in set(terms) if t[:1].isdigit() or t in _MONTHS}
    if not wanted:
        return numbers, years, dates
    last = len(terms) - 1
    for i in [i for i, term in enumerate(terms) if term in wanted]:
        term = terms[i]
        following = terms[i + 1] if i < last else ""
        if term in _MONTHS and _day(following):
            dates.append(f"{_MONTHS[term]:02d}-{int(following):02d}")
        elif _day(term) and following in _MONTHS:
            dates.append(f"{_MONTHS[following]:02d}-{int(term):02d}")
        if not term[:1].isdigit():
            continue
        value = _number(term, following)
        if value is None:
            continue
        if value.is_integer() and 1900 <= value <= 2100 and len(term) == 4:
            years.append(int(value))
        elif value >= 13 or not value.is_integer():
            numbers.append(str(int(value)) if value.is_integer() else f"{value:.6g}")
    return numbers, years, dates


def _is_month(term: str, surface: str, ambiguous: bool) -> bool:
    # "may" and "march" are verbs too; only the capitalised word away from a sentence
    # start, or a long month name, is taken as a month.
    if term not in _MONTHS or not surface[:1].isupper():
        return False
    return len(term) > 5 or not ambiguous


def _day(term: str) -> bool:
    return term.isdigit() and 1 <= int(term) <= 31 and len(term) <= 2


def _number(term: str, following: str) -> float | None:
    try:
        value = float(term.replace(",", ""))
    except ValueError:
        return None
    return value * _SCALES.get(following, 1.0)


def term_vector(title: Sequence[str], body: Sequence[str], lang: str) -> dict[str, float]:
    """Sublinear tf × background rarity, title terms boosted, top ``MAX_TERMS`` kept.

    Args:
        title: The title's terms.
        body: The body's terms.
        lang: The language of the weights.

    Returns:
        Term weights, heaviest first (``top_terms`` order).
    """
    counts = Counter(body)
    for term in [t for t in counts if t[:1].isdigit() or t in _WEEKDAYS]:
        del counts[term]
    for term in set(title):
        if _vector_term(term):
            counts[term] += TITLE_BOOST
    weigh = weigher(lang)
    weighted = {
        term: (1.0 + math.log(n)) * w
        for term, n in counts.items()
        if (w := weigh(term)) > 0.0
        if len(term) > 1 or _is_cjk(term)
    }
    return {term: weighted[term] for term in top_terms(weighted, MAX_TERMS)}


def _vector_term(term: str) -> bool:
    return not term[:1].isdigit() and term not in _WEEKDAYS


def extract(title: str, body: str) -> Features:
    """All scoring features of one article's title and body."""
    title = unicodedata.normalize("NFKC", title[:MAX_TEXT])
    body = unicodedata.normalize("NFKC", body[:MAX_TEXT])
    lang = detect_lang(f"{title} {body[:2000]}")
    title_tokens = tokenize(title, headline=True)
    body_tokens = tokenize(body)
    entities, shown = entity_terms([title_tokens, body_tokens], lang)
    terms = title_tokens.terms + body_tokens.terms
    numbers, years, dates = numbers_in(terms)
    months = {
        _MONTHS[term]
        for part in (title_tokens, body_tokens)
        for term, surface, ambiguous in zip(part.terms, part.surfaces, part.ambiguous, strict=True)
        if term in _MONTHS and _is_month(term, surface, ambiguous)
    }
    return Features(
        lang=lang,
        vector=term_vector(title_tokens.terms, body_tokens.terms, lang),
        entities=entities,
        shown=_distinct(shown, MAX_SHOWN),
        numbers=tuple(sorted(set(numbers))),
        years=tuple(sorted(set(years))),
        dates=tuple(sorted(set(dates))),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(_WEEKDAYS.intersection(terms))),
        title_terms=tuple(dict.fromkeys(title_tokens.terms)),
        signature=signature(body_tokens.terms if len(body_tokens) >= 20 else terms),
    )


def _distinct(names: Sequence[str], n: int) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        if name.count(" ") < 4:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())[:n]


def top_terms(weights: dict[str, float], n: int) -> list[str]:
    """The ``n`` highest-weighted terms, ties by name (deterministic)."""
    # Two stable sorts (by name, then by weight) cost less than one by (weight, name).
    return sorted(sorted(weights), key=weights.__getitem__, reverse=True)[:n]
