"""Fingerprints for story dedupe (``monitor.dedupe``): an article's exact keys, the LSH
bands of its text signature, its level-3 lookup terms, and the data its pairs are
scored on. Pure: an ``Article`` in, a ``Fingerprint`` out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from monitor import _features, _scoring
from monitor.types import Article, Fingerprint

# Bump whenever tokens, weights, keys or the signature change: stored fingerprints of
# another version are compared by their keys only (level 1), never scored.
FINGERPRINT_VERSION = 1
# LSH banding of the 64-value signature: 16 bands of 4 rows. A pair with shingle Jaccard J
# shares a band with probability 1 - (1 - J**4) ** 16: 0.99 at J = 0.7, 0.64 at J = 0.5,
# 0.025 at J = 0.2 and 0.0016 at J = 0.1.
BANDS = 16
ROWS = _features.SIGNATURE_SIZE // BANDS
# The text key needs this many words: short title-only items ("Daily briefing") repeat
# with different news behind them.
MIN_TEXT_KEY_WORDS = 20
# Level-3 lookup terms per article (storage indexes them): names first, then specific
# numbers, then rare words (see the retrieval contract above).
TERMS_PER_ARTICLE = 32
# Background weights (``_features.weight``, 7 - Zipf frequency) a lookup term needs: a name
# rarer than "China" (Zipf 5.1), a word rarer than "reporters" (Zipf 4.0) ...
LOOKUP_NAME_WEIGHT = 2.0
LOOKUP_WORD_WEIGHT = 3.0
# ... and an article with fewer than LOOKUP_MIN_TERMS of those (a short item) fills up with
# its heaviest words rarer than Zipf 5 ("arrested" 4.6 is one, "police" 5.3 is not):
# never stopwords.
LOOKUP_MIN_TERMS = 8
LOOKUP_FILL_WEIGHT = 2.0
# Numbers precise enough to tell events apart ("7.4", "934", "$184M"), not round ones.
LOOKUP_NUMBERS = 4

def fingerprint(article: Article) -> Fingerprint:
    """Derive the keys, LSH bands, lookup terms and scoring data of ``article``.

    Args:
        article: A normalised article.

    Returns:
        The fingerprint; ``data`` is JSON-serialisable and survives a round trip.
    """
    feats = _features.extract(article.title, article.body)
    vec, names = _rounded(feats.vector), _rounded(feats.entities)
    data: dict[str, Any] = {
        "lang": feats.lang,
        "dated": article.published is not None,
        "title": article.title,
        "vec": vec,
        "vec_norm": _scoring.norm(vec),
        "names": names,
        "names_norm": _scoring.norm(names),
        "shown": list(feats.shown),
        "numbers": list(feats.numbers),
        "years": list(feats.years),
        "dates": list(feats.dates),
        "months": list(feats.months),
        "weekdays": list(feats.weekdays),
        "title_terms": list(feats.title_terms),
        "sig": list(feats.signature),
    }
    return Fingerprint(
        keys=_keys(article),
        bands=_bands(feats.signature),
        terms=_lookup_terms(feats),
        data=data,
        version=FINGERPRINT_VERSION,
    )


def _rounded(weights: Mapping[str, float]) -> dict[str, float]:
    return {term: round(w, 3) for term, w in weights.items()}


def _keys(article: Article) -> tuple[str, ...]:
    keys: list[str] = []
    if article.guid:
        keys.append(f"guid:{article.source}:{article.guid}")
    if article.url:
        keys.append(f"url:{article.url}")
    text = _features.normalised_text(article.title, article.body)
    if text.count(" ") + 1 >= MIN_TEXT_KEY_WORDS:
        keys.append(f"text:{_stable_hash(text)}")
    return tuple(keys)


def _stable_hash(text: str) -> str:
    # The version is hashed in, so a changed normalisation cannot collide with old keys.
    salted = f"{FINGERPRINT_VERSION}\n{text}".encode()
    return hashlib.blake2b(salted, digest_size=16).hexdigest()


def _bands(signature: Sequence[int]) -> tuple[str, ...]:
    if not signature:
        return ()
    bands = []
    for i in range(BANDS):
        rows = ",".join(map(str, signature[i * ROWS : (i + 1) * ROWS]))
        digest = hashlib.blake2b(rows.encode(), digest_size=8).hexdigest()
        bands.append(f"m{FINGERPRINT_VERSION}.{i}:{digest}")
    return tuple(bands)


def _lookup_terms(feats: _features.Features) -> tuple[str, ...]:
    # Names weigh what weight() says; the vector is ranked already (term_vector).
    names = [t for t in _features.top_terms(feats.entities, len(feats.entities))
             if feats.entities[t] > LOOKUP_NAME_WEIGHT]  # fmt: skip
    weigh = _features.weigher(feats.lang)
    vector = [(t, weigh(t)) for t in feats.vector]
    words = [t for t, w in vector if w > LOOKUP_WORD_WEIGHT and t not in feats.entities]
    half = TERMS_PER_ARTICLE // 2
    terms = [*names[:half], *_lookup_numbers(feats.numbers), *words, *names[half:]]
    if len(terms) < LOOKUP_MIN_TERMS:
        terms += [t for t, w in vector if w > LOOKUP_FILL_WEIGHT]
    return tuple(dict.fromkeys(terms))[:TERMS_PER_ARTICLE]


def _lookup_numbers(numbers: Sequence[str]) -> list[str]:
    """Numbers with a fraction or three significant digits, as ``#7.4`` terms."""
    precise = [n for n in numbers if "." in n or len(n.strip("0")) >= 3]
    precise.sort(key=lambda n: (-len(n.replace(".", "").strip("0")), n))
    return [f"#{n}" for n in precise[:LOOKUP_NUMBERS]]


def text_similarity(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Level 2: the estimated shingle Jaccard of two fingerprints' bodies (symmetric)."""
    return _features.signature_similarity(a.get("sig") or (), b.get("sig") or ())
