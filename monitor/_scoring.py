"""Level-3 scoring for story dedupe: pair features, the pair model, the story score.

- The **pair model** is a logistic regression over symmetric pair features
  (``PAIR_FEATURES``), fitted on labelled news by ``bench/dedupe_tune.py``: the log-odds that
  two articles report the same event.
- The **story score** of an article against a story mixes the pair log-odds of the story's
  closest member with the mean over its ``STORY_MEMBERS`` closest members. The mean asks
  several reports of the event to agree, so one member that drifted towards a similar
  event (another earthquake, another 2+2 meeting) cannot pull the article into its story.

Everything here is a pure function of fingerprint data (``monitor.dedupe``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PAIR_FEATURES",
    "STORY_MEMBERS",
    "Model",
    "Pair",
    "describe",
    "norm",
    "pair",
    "story_probability",
    "words_cosine",
]

PAIR_FEATURES = (
    "terms",  # cosine of the rarity-weighted term vectors
    "names",  # cosine of the rarity-weighted name vectors
    "numbers",  # Jaccard of the significant numbers (13 and up, or with decimals)
    "title",  # cosine of the weighted title terms
    "year_conflict",  # both mention years, none in common
    "year_shared",  # a mentioned year in common
    "date_shared",  # a calendar day ("July 28") in common
    "month_conflict",  # both name months, none in common
    "weekday_conflict",  # both name weekdays, none in common
    "names_disjoint",  # both name two or more rare names, and share no name at all
    "one_name",  # they share exactly one name word
    "dated",  # both have a publication time (not just a fetch time)
    "same_day",  # ... at most 36 hours apart, as far as they share words
    "days_later",  # ... or how far beyond that, as a share of the rest of the week
)
_TERMS = PAIR_FEATURES.index("terms")
# How many of a story's closest members the story score averages over.
STORY_MEMBERS = 4
# How many shared terms a pair keeps, heaviest first, for reasons.
SHARED_SHOWN = 12
# Two publication times this close count as the same news day (time zones, late editions).
SAME_DAY_HOURS = 36.0
# "same_day" counts in full from this terms cosine up, and in proportion below it. Many
# events happen each day: being published the same day says two reports are of one event
# only when they also share words. The dev file's only dated articles are three reports
# of each of 50 events years apart, so the model would learn any same-day pair as one
# event; scaled, topic cross-validation is unchanged (F1 0.867) and the benchmark
# corpus's different events merged far less (pairs precision 0.980 -> 0.997).
SAME_DAY_TERMS = 0.3
# "days_later" grows from 0 at SAME_DAY_HOURS to 1 this much later (the rest of a week):
# re-reports of an event come within a day or two, follow-ups days later.
LATER_HOURS = 132.0
# A rare name for "names_disjoint": background weight 3 or more (Zipf frequency 4 or less).
# Two reports of one event name some of the same people and places; two items written
# from one template (a press-release form, a daily brief) share words but no names.
RARE_NAME_WEIGHT = 3.0
# "one_name": a single shared name word (a surname, a base, a capital) is weak evidence of
# one event however alike it makes two short name lists; reports of one event mostly
# share several. Topic cross-validation on the dev file kept F1 at 0.867 with it, while the
# benchmark corpus, whose events share names by chance, merged fewer of them (pairs
# precision 0.954 -> 0.980).


@dataclass(frozen=True, slots=True)
class Model:
    """The pair model: log-odds = bias + sum(weight * feature), in PAIR_FEATURES order."""

    bias: float
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Pair:
    """Two articles compared: the features and the log-odds; what they share on demand."""

    features: tuple[float, ...]
    logit: float
    a: Mapping[str, Any] = field(repr=False, compare=False)
    b: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def shared_names(self) -> tuple[str, ...]:
        """The names both mention, heaviest first."""
        return _shared(self.a["names"], self.b["names"])

    @property
    def shared_terms(self) -> tuple[str, ...]:
        """The terms both mention, heaviest first, names left out."""
        names = set(self.a["names"]) & set(self.b["names"])
        return tuple(t for t in _shared(self.a["vec"], self.b["vec"], names) if t not in names)


def pair(
    a: Mapping[str, Any], b: Mapping[str, Any], hours_apart: float | None, model: Model
) -> Pair:
    """Compare two fingerprints' data (symmetric in ``a`` and ``b``).

    Args:
        a: ``Fingerprint.data`` of one article.
        b: ``Fingerprint.data`` of the other.
        hours_apart: Time between them when both times are publication times, else None.
        model: The weights.

    Returns:
        The pair features and their log-odds under the pair model.
    """
    later = 0.0
    if hours_apart is not None:
        later = max(0.0, min(1.0, (hours_apart - SAME_DAY_HOURS) / LATER_HOURS))
    dated = hours_apart is not None
    content = _pair_features(a, b)
    same_day = 0.0
    if dated and later == 0.0:  # as far as they share words
        same_day = min(1.0, content[_TERMS] / SAME_DAY_TERMS)
    features = (*content, float(dated), same_day, later)
    logit = model.bias + _dot(model.weights, features)
    return Pair(features, logit, a, b)


def _pair_features(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, ...]:
    shared_names = a["names"].keys() & b["names"].keys()
    names = _cosine(a["names"], b["names"], a.get("names_norm"), b.get("names_norm"),
                    shared=shared_names)  # fmt: skip
    years_a, years_b = a["years"], b["years"]
    year_shared = _overlap(years_a, years_b)
    return (
        _cosine(a["vec"], b["vec"], a.get("vec_norm"), b.get("vec_norm")),
        names,
        _jaccard(a["numbers"], b["numbers"]),
        _title_cosine(a, b),
        float(bool(years_a and years_b) and not year_shared),
        float(year_shared),
        float(_overlap(a["dates"], b["dates"])),
        _conflict(a["months"], b["months"]),
        _conflict(a["weekdays"], b["weekdays"]),
        float(not names and _rare_names(a) >= 2 and _rare_names(b) >= 2),
        float(len(shared_names) == 1),
    )


def words_cosine(p: Pair) -> float:
    """The cosine of the pair's term vectors without the names either mentions: what two
    items share besides names (symmetric; 0.0 when they share no other term). Worked out
    from the terms cosine less the names' products, for names are few and terms many."""
    a, b = p.a, p.b
    vec_a, vec_b = a["vec"], b["vec"]
    names = a["names"].keys() | b["names"].keys()
    length_a, length_b = a.get("vec_norm") or norm(vec_a), b.get("vec_norm") or norm(vec_b)
    named = [vec_a[t] * vec_b[t] for t in names & vec_a.keys() & vec_b.keys()]
    products = p.features[_TERMS] * (length_a * length_b) - math.fsum(named)
    rest = _rest_length(vec_a, length_a, names) * _rest_length(vec_b, length_b, names)
    if products <= 0.0 or rest <= 0.0:
        return 0.0
    return min(1.0, products / rest)


def _rest_length(vec: Mapping[str, float], length: float, names: Set[str]) -> float:
    """The length of ``vec`` without ``names``, from its whole ``length``."""
    dropped = [vec[t] for t in names & vec.keys()]
    return math.sqrt(max(0.0, length * length - math.fsum(map(operator.mul, dropped, dropped))))


def _rare_names(data: Mapping[str, Any]) -> int:
    return len([w for w in data["names"].values() if w >= RARE_NAME_WEIGHT])


def story_probability(logits: Sequence[float], best_share: float) -> float:
    """The probability that an article joins a story, from its pair log-odds.

    Args:
        logits: Pair log-odds against the story's closest members, closest first (only
            the first ``STORY_MEMBERS`` count).
        best_share: Weight of the closest member; the mean takes the rest.

    Returns:
        ``sigmoid(best_share * closest + (1 - best_share) * mean)``.
    """
    top = logits[:STORY_MEMBERS]
    mean = math.fsum(top) / len(top)
    return _sigmoid(best_share * top[0] + (1.0 - best_share) * mean)


def describe(p: Pair, data: Mapping[str, Any]) -> str:
    """What a pair shares and where it disagrees, for a decision's reason.

    Args:
        p: The pair.
        data: ``Fingerprint.data`` of the article the reason is about (names as written).

    Returns:
        E.g. ``shared names Lloyd Austin, Tokyo; terms headquarters, joint``.
    """
    parts = []
    names, terms = p.shared_names, p.shared_terms
    if names:
        parts.append("shared names " + ", ".join(_as_written(names, data)))
    if terms:
        parts.append("terms " + ", ".join(terms[:4]))
    for feature, words in _TIME_CONFLICTS.items():
        if p.features[PAIR_FEATURES.index(feature)]:
            parts.append(words)
    return "; ".join(parts) or "nothing specific shared"


_TIME_CONFLICTS = {
    "year_conflict": "different years",
    "month_conflict": "different months",
    "weekday_conflict": "different weekdays",
}


def _as_written(shared: Sequence[str], data: Mapping[str, Any], n: int = 5) -> list[str]:
    """Shared names among the heaviest, as the article writes them ("Lloyd Austin")."""
    wanted = set(shared[: n * 2])
    out: list[str] = []
    used: set[str] = set()
    for name in data.get("shown", ()):
        words = name.casefold().split()
        if words and set(words) <= wanted and not set(words) <= used:
            out.append(name)
            used.update(words)
    out.extend(t.capitalize() for t in shared[: n * 2] if t not in used)
    return out[:n]


def _dot(weights: Sequence[float], features: Sequence[float]) -> float:
    if len(weights) != len(features):
        raise ValueError(f"{len(weights)} weights for {len(features)} features")
    return math.fsum(map(operator.mul, weights, features))


def _sigmoid(z: float) -> float:
    if z < -60.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def norm(v: Mapping[str, float]) -> float:
    """The Euclidean length of a weight vector (stored with it, to save time per pair)."""
    return _length(list(v.values()))


def _length(weights: Sequence[float]) -> float:
    return math.sqrt(math.fsum(map(operator.mul, weights, weights)))


def _cosine(
    a: Mapping[str, float],
    b: Mapping[str, float],
    norm_a: float | None = None,
    norm_b: float | None = None,
    *,
    shared: Set[str] | None = None,
) -> float:
    """The cosine of two weight vectors; ``shared`` is their common keys when the caller
    has them already."""
    if shared is None:
        shared = a.keys() & b.keys()
    if not shared:
        return 0.0
    # fsum is exact, so the result depends on neither the order of the terms nor the sides.
    products = math.fsum([a[t] * b[t] for t in shared])
    return min(1.0, products / ((norm_a or norm(a)) * (norm_b or norm(b))))


def _shared(
    a: Mapping[str, float], b: Mapping[str, float], skip: set[str] | frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """Terms in both, heaviest product first (ties by name), at most ``SHARED_SHOWN``
    besides those in ``skip``."""
    products = {t: a[t] * b[t] for t in a.keys() & b.keys()}
    ranked = sorted(products, key=lambda t: (-products[t], t))
    return tuple(t for t in ranked if t not in skip)[:SHARED_SHOWN]


def _overlap(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether the two share a value."""
    return bool(a and b) and not set(a).isdisjoint(b)


def _conflict(a: Sequence[Any], b: Sequence[Any]) -> float:
    """1.0 when both mention some, and none in common."""
    return float(bool(a and b) and set(a).isdisjoint(b))


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    if not (a and b):
        return 0.0
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb)


def _title_cosine(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """The cosine of the two titles' terms, weighted as in the texts' vectors."""
    shared = set(a["title_terms"]).intersection(b["title_terms"])
    if not shared:
        return 0.0
    vec_a, vec_b = a["vec"], b["vec"]
    products = [wa * wb for t in shared
                if (wa := vec_a.get(t, 0.0)) and (wb := vec_b.get(t, 0.0))]  # fmt: skip
    if not products:
        return 0.0
    return min(1.0, math.fsum(products) / (_title_norm(a) * _title_norm(b)))


def _title_norm(data: Mapping[str, Any]) -> float:
    vec = data["vec"]
    return _length([w for t in data["title_terms"] if (w := vec.get(t, 0.0))])
