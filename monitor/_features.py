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
- The MinHash signature is one-permutation hashing over word 3-shingles, with rotation
  densification, so it costs one hash per shingle.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import wordfreq

__all__ = [
    "SIGNATURE_SIZE",
    "Features",
    "extract",
    "normalised_text",
    "signature_similarity",
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
SHINGLE = 3
SIGNATURE_SIZE = 64

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_TOKEN = re.compile(
    rf"[{_CJK}]+|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b|[^\W\d_]+(?:['’][^\W\d_]+)*",
)
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
class Token:
    """One word of the text: lowercased form, surface form, and whether its case tells."""

    term: str
    surface: str
    ambiguous: bool  # at a sentence or title start, or in an all-caps run
    joined: bool = False  # only a space or hyphen since the previous token


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


@lru_cache(maxsize=8)
def _frequencies(lang: str) -> dict[str, float]:
    return wordfreq.get_frequency_dict(lang)


@lru_cache(maxsize=100_000)
def zipf(term: str, lang: str) -> float:
    """The term's Zipf frequency (log10 per billion words); 0 when unknown."""
    freq = _frequencies(lang).get(term)
    return math.log10(freq) + 9.0 if freq else 0.0


@lru_cache(maxsize=100_000)
def weight(term: str, lang: str) -> float:
    """How much sharing ``term`` says: rare terms weigh most (see ``Z0``)."""
    if _is_cjk(term):
        known = zipf(term, lang)
        if not known:
            known = sum(zipf(c, lang) for c in term) / len(term) - 1.0
        return max(0.0, min(MAX_WEIGHT, Z0 - known))
    return max(0.0, min(MAX_WEIGHT, Z0 - zipf(term, lang)))


def tokenize(text: str, *, headline: bool = False) -> list[Token]:
    """Split ``text`` into tokens, marking those whose capital letter proves nothing."""
    text = _ACRONYM.sub(lambda m: m.group().replace(".", "").replace(" ", ""), text)
    shouting = _is_shouting(text)
    out: list[Token] = []
    last = 0
    for match in _TOKEN.finditer(text):
        surface = match.group()
        gap = text[last : match.start()]
        ambiguous = headline or shouting or not out or (gap != " " and bool(_BREAK.search(gap)))
        last = match.end()
        term = surface.casefold()
        if term.endswith(("'s", "’s")):
            term = term[:-2]
        elif term[:1].isdigit() and term[-2:] in _ORDINALS:
            term = term[:-2]
        if _is_cjk(term):
            out.extend(Token(g, g, True) for g in _bigrams(term))
        else:
            out.append(Token(term, surface, ambiguous, gap in _JOINERS))
    return out


def _is_cjk(term: str) -> bool:
    return term[:1] >= "\u3040" and bool(_CJK_RUN.fullmatch(term))


def _is_shouting(text: str) -> bool:
    letters = [c for c in text[:400] if c.isalpha()]
    return len(letters) > 8 and sum(c.isupper() for c in letters) > 0.6 * len(letters)


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def entity_terms(parts: Sequence[Sequence[Token]], lang: str) -> tuple[dict[str, float], list[str]]:
    """Capitalised names in the parts (title, body): weights, and the names as written."""
    mid_caps = {
        t.term for part in parts for t in part if not t.ambiguous and _capitalised(t.surface)
    }
    weights: dict[str, float] = {}
    shown: list[str] = []
    for part in parts:
        run: list[str] = []
        for tok in (*part, None):
            if run and (tok is None or not tok.joined or not _is_entity(tok, mid_caps, lang)):
                shown.append(" ".join(run))
                run = []
            if tok is not None and _is_entity(tok, mid_caps, lang):
                weights[tok.term] = weight(tok.term, lang)
                run.append(tok.surface)
    return weights, shown


def _capitalised(surface: str) -> bool:
    return surface[:1].isupper() and not surface.isdigit()


def _is_entity(tok: Token, mid_caps: set[str], lang: str) -> bool:
    if not tok.surface[:1].isupper() or tok.term in _MONTHS or tok.term in _WEEKDAYS:
        return False
    if len(tok.term) < 2 or weight(tok.term, lang) < NAME_MIN_WEIGHT:
        return False
    if tok.surface.isupper() and len(tok.surface) > 1:
        # Acronyms (NYPD, USFJ) are names; shouted common words (LARGE) are not.
        return zipf(tok.term, lang) < 4.0
    if not tok.ambiguous:
        return True
    return tok.term in mid_caps or zipf(tok.term, lang) < 3.5


def numbers_in(tokens: Sequence[Token]) -> tuple[list[str], list[int], list[str]]:
    """Significant numbers, years and month-day dates mentioned in the tokens."""
    numbers: list[str] = []
    years: list[int] = []
    dates: list[str] = []
    terms = [t.term for t in tokens]
    for i, term in enumerate(terms):
        if term in _MONTHS and i + 1 < len(terms) and _day(terms[i + 1]):
            dates.append(f"{_MONTHS[term]:02d}-{int(terms[i + 1]):02d}")
        elif _day(term) and i + 1 < len(terms) and terms[i + 1] in _MONTHS:
            dates.append(f"{_MONTHS[terms[i + 1]]:02d}-{int(term):02d}")
        if not term[:1].isdigit():
            continue
        value = _number(term, terms[i + 1] if i + 1 < len(terms) else "")
        if value is None:
            continue
        if value.is_integer() and 1900 <= value <= 2100 and len(term) == 4:
            years.append(int(value))
        elif value >= 13 or not value.is_integer():
            numbers.append(str(int(value)) if value.is_integer() else f"{value:.6g}")
    return numbers, years, dates


def _is_month(tok: Token) -> bool:
    # "may" and "march" are verbs too; only the capitalised word away from a sentence
    # start, or a long month name, is taken as a month.
    if tok.term not in _MONTHS or not tok.surface[:1].isupper():
        return False
    return len(tok.term) > 5 or not tok.ambiguous


def _day(term: str) -> bool:
    return term.isdigit() and 1 <= int(term) <= 31 and len(term) <= 2


def _number(term: str, following: str) -> float | None:
    try:
        value = float(term.replace(",", ""))
    except ValueError:
        return None
    return value * _SCALES.get(following, 1.0)


def term_vector(title: Sequence[Token], body: Sequence[Token], lang: str) -> dict[str, float]:
    """Sublinear tf × background rarity, title terms boosted, top ``MAX_TERMS`` kept."""
    counts = Counter(t.term for t in body if _vector_term(t.term))
    for term in {t.term for t in title if _vector_term(t.term)}:
        counts[term] += TITLE_BOOST
    weighted = {
        term: (1.0 + math.log(n)) * w
        for term, n in counts.items()
        if len(term) > 1 or _is_cjk(term)
        if (w := weight(term, lang)) > 0.0
    }
    top = sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS]
    return dict(top)


def _vector_term(term: str) -> bool:
    return not term[:1].isdigit() and term not in _WEEKDAYS


def signature(terms: Sequence[str]) -> tuple[int, ...]:
    """One-permutation MinHash of word 3-shingles (empty when the text is too short)."""
    if len(terms) < SHINGLE + 2:
        return ()
    bins: list[int | None] = [None] * SIGNATURE_SIZE
    for i in range(len(terms) - SHINGLE + 1):
        shingle = " ".join(terms[i : i + SHINGLE]).encode()
        h = int.from_bytes(hashlib.blake2b(shingle, digest_size=8).digest(), "big")
        slot, value = h % SIGNATURE_SIZE, (h >> 8) & 0xFFFFFFFF
        current = bins[slot]
        if current is None or value < current:
            bins[slot] = value
    return _densify(bins)


def _densify(bins: list[int | None]) -> tuple[int, ...]:
    # Rotation densification: an empty bin borrows the next filled bin's value, marked by
    # the distance, so two texts agree on it exactly when they agree on the lender.
    size = len(bins)
    out: list[int] = []
    for i in range(size):
        for step in range(size):
            value = bins[(i + step) % size]
            if value is not None:
                out.append((value + step * 0x9E3779B1) & 0xFFFFFFFF)
                break
    return tuple(out)


def signature_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures' shingle sets (0 if either is empty)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return int(sum(map(operator.eq, a, b))) / len(a)


def extract(title: str, body: str) -> Features:
    """All scoring features of one article's title and body."""
    title = unicodedata.normalize("NFKC", title[:MAX_TEXT])
    body = unicodedata.normalize("NFKC", body[:MAX_TEXT])
    lang = detect_lang(f"{title} {body[:2000]}")
    title_tokens = tokenize(title, headline=True)
    body_tokens = tokenize(body)
    entities, shown = entity_terms([title_tokens, body_tokens], lang)
    tokens = [*title_tokens, *body_tokens]
    numbers, years, dates = numbers_in(tokens)
    shingled = [
        t.term for t in (body_tokens if len(body_tokens) >= 20 else [*title_tokens, *body_tokens])
    ]
    return Features(
        lang=lang,
        vector=term_vector(title_tokens, body_tokens, lang),
        entities=entities,
        shown=_distinct(shown, MAX_SHOWN),
        numbers=tuple(sorted(set(numbers))),
        years=tuple(sorted(set(years))),
        dates=tuple(sorted(set(dates))),
        months=tuple(sorted({_MONTHS[t.term] for t in tokens if _is_month(t)})),
        weekdays=tuple(sorted({t.term for t in tokens if t.term in _WEEKDAYS})),
        title_terms=tuple(dict.fromkeys(t.term for t in title_tokens)),
        signature=signature(shingled),
    )


def _distinct(names: Sequence[str], n: int) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        if name.count(" ") < 4:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())[:n]


def top_terms(weights: dict[str, float], n: int) -> list[str]:
    """The ``n`` highest-weighted terms, ties by name (deterministic)."""
    return [t for t, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
