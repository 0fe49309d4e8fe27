"""Story dedupe: is this article a copy, a re-report of a known story, or news?

Pure: values in, a ``Decision`` out; no database, clock or network. Storage indexes the
``Fingerprint`` and hands back ``Candidate``s by the retrieval contract below; this module
only derives fingerprints (``_fingerprint``) and decides.

Levels (DESIGN.md, "Dedupe levels"; issue #3):

1. **Same item**: a stored article shares an exact key: the feed GUID
   (``guid:{source}:{guid}``), the canonical URL (``url:{url}``) or the hash of the
   normalised title and body (``text:{hash}``). Any age.
2. **Same text**: a syndicated or lightly edited copy under another URL. The body's
   MinHash signature (one-permutation hashing over word 3-shingles) is cut into LSH bands;
   a stored article sharing a band is verified on the full stored signature. Any age.
3. **Same story**: another write-up of the same event. Candidates within ``WINDOW`` of
   the article's own time are scored on what tells two events of one kind apart: rare
   shared terms weighted by a background frequency table (so weights mean something from
   the first article on), shared names (one shared name word alone says little; rare
   names on both sides but none shared: items of one form, other events), numbers, years,
   months, weekdays and calendar days, and how far apart they were published (re-reports
   come within a day or two, follow-ups days later; the same day counts as far as the two
   share words, for many events happen each day). A logistic pair model turns these into
   log-odds of "same event"; a story's score mixes its closest member with the mean of
   its few closest members, so several reports must agree before an article joins
   (``monitor._scoring``), and they must share words besides names, not only a name and
   a day (``Thresholds.story_words``). A story splits into fragments when one report
   scores just under the bar; so when an article joins a story, each small fragment among
   its candidates (at most ``FRAGMENT_MEMBERS`` articles) is scored again as if its articles
   arrived now, against the story with the article in it, and those that would join are
   named in ``Decision.merge_story_ids`` (the pipeline has storage merge them once the
   article is stored; a story split off by hand is never merged back).

A NEW article names a ``related_story_id`` when a story shares its names without being
the same event: a follow-up (the joint force headquarters is stood up) rather than a
re-report (the 2+2 meeting announced it). Follow-ups often come weeks or months after the
story they follow, beyond ``WINDOW``: for a NEW article that no candidate story relates to,
the caller looks again over ``RELATED_WINDOW`` (the same retrieval contract with the wider
window) and ``follow_up`` names the story it follows, if any. Only names and terms count
there: an article that far from a story is never joined to it.

Retrieval contract (what storage implements, in SQL; ``bench/dedupe_tune.py`` does the
same in memory). For an article ``a`` with fingerprint ``fp``, the candidates are the union
of:

(a) every stored article with a key in ``fp.keys``, whatever its age;
(b) every stored article with a band in ``fp.bands``, whatever its age;
(c) for each of ``fp.terms``, its ``TERM_POSTINGS`` latest postings (stored articles
    indexed by the term whose ``when`` lies in ``[a.when - WINDOW, a.when + WINDOW]``,
    later ``when`` first, then higher article id); of the articles found, the
    ``CANDIDATE_LIMIT`` found by the most distinct terms, ties broken by later ``when``
    first, then higher article id.

Lookup terms are selective on purpose: names, specific numbers and words rare in the
language at large, never common words. A term's postings in the window grow with the
store, so a common one ("said", "month") would make each lookup grow with it; the
``TERM_POSTINGS`` cap bounds what a name in the news every day ("Trump") costs.

Each candidate carries its stored fingerprint's keys and ``data`` (loaded back from
JSON; the signature may come as any sequence of ints) and the story it belongs to now.
The order of candidates does not matter.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from monitor import _features, _scoring
from monitor._fingerprint import (
    BANDS,
    FINGERPRINT_VERSION,
    LOOKUP_MIN_TERMS,
    TERMS_PER_ARTICLE,
    fingerprint,
    text_similarity,
)
from monitor._scoring import PAIR_FEATURES, Model, Pair
from monitor._window import RELATED_WINDOW, WINDOW
from monitor.types import Article, Candidate, Decision, DecisionKind, Fingerprint

__all__ = [
    "BANDS",
    "CANDIDATE_LIMIT",
    "FINGERPRINT_VERSION",
    "FRAGMENT_CHECKS",
    "FRAGMENT_MEMBERS",
    "LOOKUP_MIN_TERMS",
    "PAIR_FEATURES",
    "RELATED_WINDOW",
    "RIVAL_REPORTS",
    "TERMS_PER_ARTICLE",
    "TERM_POSTINGS",
    "THRESHOLDS",
    "WINDOW",
    "Model",
    "Pair",
    "StoryMatch",
    "Thresholds",
    "compare",
    "decide",
    "fingerprint",
    "follow_up",
    "match_stories",
    "settle",
    "text_similarity",
]

CANDIDATE_LIMIT = 24

# Per lookup term, only its latest postings in the window count (retrieval contract (c)).
TERM_POSTINGS = 100
# A story with at most this many articles among the candidates is a fragment that a
# re-report may heal (module docstring): one or two reports that missed the bar. Larger
# stories are never merged automatically: two established stories that one article
# resembles are more often two events of one kind than one event.
FRAGMENT_MEMBERS = 2
# At most this many fragments, the most probable first, are scored again per re-report:
# it bounds the cost when many small stories resemble the article (no change on the dev
# set, where 2 would do).
FRAGMENT_CHECKS = 3
# ``settle`` weighs the best story against those with at least this many reports among
# the candidates (topic cross-validation F1 0.883 with 1, 0.890 with 2).
RIVAL_REPORTS = 2
# Level 2 compares this many signature rows first: most candidates share too few of them
# to reach ``Thresholds.same_text`` whatever the rest hold, and are passed over.
SIGNATURE_PREFIX = 32


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The tunable numbers of ``decide``, fitted and tuned by ``bench/dedupe_tune.py``.

    =============  ======  ==========================================================
    name           value   meaning
    =============  ======  ==========================================================
    same_text      0.70    level 2: estimated shingle Jaccard of the two bodies
    same_story     0.875   level 3: story probability needed to join the story (and
                           for a fragment's article to join it again, healing it)
    story_words    0.03    ... and the words it must share with the story's closest
                           members besides names (``_scoring.words_cosine``, their
                           mean): a shared name and the same day lift the score of
                           two items that share nothing else (one minister in two
                           stories of a day)
    best_share     0.50    level 3: weight of the closest member in the story score;
                           the mean over the closest ``STORY_MEMBERS`` takes the rest
    related        0.20    NEW, but names a related story at this probability ...
    related_names  0.30    ... or sharing this much (cosine) of the weighted names;
                           a re-report re-scores only fragments this related to it
    settle         0.70    a story still of one article once its window has passed
                           joins the candidate story it scores this high with ...
    settle_margin  0.20    ... when it scores that much above every other candidate
                           story (``settle``)
    model          fitted  the pair model (``monitor._scoring``), weights in
                           ``PAIR_FEATURES`` order
    =============  ======  ==========================================================
    """

    same_text: float = 0.70
    same_story: float = 0.875
    story_words: float = 0.03
    best_share: float = 0.50
    related: float = 0.20
    related_names: float = 0.30
    settle: float = 0.70
    settle_margin: float = 0.20
    model: Model = Model(
        bias=-3.76,
        weights=(6.487, 5.15, 5.256, 1.333,  # terms, names, numbers, title
                 -1.049, 1.393, 1.811,  # year_conflict, year_shared, date_shared
                 -0.816, -0.924, -2.978,  # month_conflict, weekday_conflict, names_disjoint
                 -0.512,  # one_name
                 1.486, 1.884, -1.989),  # dated, same_day, days_later
    )  # fmt: skip


THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """An article against one candidate story: the score, and the closest member."""

    story_id: int
    probability: float
    closest: Candidate
    members: tuple[Pair, ...]  # the article against the closest ``STORY_MEMBERS``, closest first

    @property
    def pair(self) -> Pair:
        """The article against ``closest``."""
        return self.members[0]


def decide(
    article: Article,
    fp: Fingerprint,
    candidates: Sequence[Candidate],
    *,
    thresholds: Thresholds = THRESHOLDS,
) -> Decision:
    """Decide whether ``article`` is a duplicate, a re-report or a new story.

    Args:
        article: The incoming article.
        fp: Its fingerprint (``fingerprint(article)``).
        candidates: Stored articles found by the retrieval contract (module docstring),
            in any order.
        thresholds: The decision thresholds (the defaults are the tuned ones).

    Returns:
        The decision with its score and a reason naming what decided it.
    """
    # Order and repeats (a candidate found by key and by terms) must not matter.
    ordered = sorted({c.article_id: c for c in candidates}.values(), key=lambda c: c.article_id)
    return (
        _same_item(fp, ordered)
        or _same_text(fp, ordered, thresholds)
        or _same_story(article, fp, ordered, thresholds)
    )


_KEY_KINDS = {"guid": "feed GUID", "url": "canonical URL", "text": "title and text"}


def _same_item(fp: Fingerprint, candidates: Sequence[Candidate]) -> Decision | None:
    kinds = list(_KEY_KINDS)
    keys = set(fp.keys)
    best: tuple[int, int, str, Candidate] | None = None
    for cand in candidates:
        for key in keys.intersection(cand.fingerprint.keys):
            kind = key.split(":", 1)[0]
            entry = (kinds.index(kind) if kind in kinds else len(kinds), cand.article_id, kind)
            if best is None or entry < best[:3]:
                best = (*entry, cand)
    if best is None:
        return None
    kind, cand = best[2], best[3]
    return Decision(
        kind=DecisionKind.DUPLICATE,
        level=1,
        score=1.0,
        reason=f"same item: same {_KEY_KINDS.get(kind, kind)} as article {cand.article_id}",
        article_id=cand.article_id,
        story_id=cand.story_id,
    )


def _comparable(fp: Fingerprint, cand: Candidate) -> bool:
    return cand.fingerprint.version == fp.version and bool(cand.fingerprint.data)


def _same_text(fp: Fingerprint, candidates: Sequence[Candidate], t: Thresholds) -> Decision | None:
    best: tuple[float, Candidate] | None = None
    signature = fp.data.get("sig") or ()
    for cand in candidates:
        if not _comparable(fp, cand):
            continue
        other = cand.fingerprint.data.get("sig") or ()
        if not _may_share(signature, other, t.same_text):
            continue
        sim = _features.signature_similarity(signature, other)  # text_similarity
        if sim >= t.same_text and (best is None or sim > best[0]):
            best = (sim, cand)
    if best is None:
        return None
    sim, cand = best
    return Decision(
        kind=DecisionKind.DUPLICATE,
        level=2,
        score=round(sim, 4),
        reason=(
            f"same text as article {cand.article_id}: {sim:.0%} of word shingles "
            f"shared >= {t.same_text:.0%}"
        ),
        article_id=cand.article_id,
        story_id=cand.story_id,
    )


def _may_share(a: Sequence[int], b: Sequence[int], least: float) -> bool:
    """False when the two signatures cannot reach ``least`` similarity: judged on their
    first ``SIGNATURE_PREFIX`` rows, as if every later row were equal."""
    n = len(a)
    if not n or len(b) != n:
        return True  # signature_similarity says 0.0
    prefix = min(SIGNATURE_PREFIX, n)
    equal = int(sum(map(operator.eq, itertools.islice(a, prefix), b)))
    return (n - (prefix - equal)) / n >= least


def compare(
    article: Article,
    fp: Fingerprint,
    candidates: Sequence[Candidate],
    thresholds: Thresholds = THRESHOLDS,
    *,
    window: timedelta = WINDOW,
) -> list[tuple[Candidate, Pair]]:
    """Level 3: the article against each comparable candidate within ``window``.

    Args:
        article: The incoming article.
        fp: Its fingerprint.
        candidates: Stored articles from the retrieval contract, in any order.
        thresholds: The models.
        window: How far from the article's time a candidate may be (``WINDOW`` for the
            same story, ``RELATED_WINDOW`` for the story a new one follows).

    Returns:
        ``(candidate, pair)`` for each candidate of the same fingerprint version whose time
        is within ``window`` of the article's, by article id.
    """
    out = []
    when, data, model = article.when, fp.data, thresholds.model
    for cand in sorted(candidates, key=lambda c: c.article_id):
        if not _comparable(fp, cand) or abs(cand.when - when) > window:
            continue
        hours = _hours_apart(when, data, cand.when, cand.fingerprint.data)
        out.append((cand, _scoring.pair(data, cand.fingerprint.data, hours, model)))
    return out


def match_stories(
    article: Article,
    fp: Fingerprint,
    candidates: Sequence[Candidate],
    thresholds: Thresholds = THRESHOLDS,
) -> list[StoryMatch]:
    """Level 3: score ``article`` against the stories of its candidates, best first.

    Only candidates of the same fingerprint version within ``WINDOW`` count (``compare``).

    Args:
        article: The incoming article.
        fp: Its fingerprint.
        candidates: Stored articles from the retrieval contract, in any order.
        thresholds: The pair model and the story score's ``best_share``.

    Returns:
        The candidates' stories, most probable first (ties: lower story id).
    """
    return _stories(compare(article, fp, candidates, thresholds), thresholds)


def _stories(compared: Sequence[tuple[Candidate, Pair]], t: Thresholds) -> list[StoryMatch]:
    members: dict[int, list[tuple[Pair, Candidate]]] = {}
    for cand, p in compared:
        members.setdefault(cand.story_id, []).append((p, cand))
    matches = []
    for story_id, story in members.items():
        story.sort(key=lambda m: (-m[0].logit, m[1].article_id))
        logits = [p.logit for p, _ in story]
        probability = _scoring.story_probability(logits, t.best_share)
        closest = tuple(p for p, _ in story[: _scoring.STORY_MEMBERS])
        matches.append(StoryMatch(story_id, probability, story[0][1], closest))
    matches.sort(key=lambda m: (-m.probability, m.story_id))
    return matches


def _hours_apart(
    when_a: Any, data_a: Mapping[str, Any], when_b: Any, data_b: Mapping[str, Any]
) -> float | None:
    if not (data_a.get("dated") and data_b.get("dated")):
        return None
    return float(abs((when_a - when_b).total_seconds()) / 3600.0)


def _same_story(
    article: Article, fp: Fingerprint, candidates: Sequence[Candidate], t: Thresholds
) -> Decision:
    compared = compare(article, fp, candidates, t)
    matches = _stories(compared, t)
    if not matches:
        return Decision(DecisionKind.NEW, 0, 0.0, "new story: nothing stored to compare")
    joined = next((m for m in matches if _joins(m, t)), None)
    if joined is not None:
        p = joined.probability
        healed = _fragments(article, fp, compared, matches, joined, t)
        merges = f"; merges fragments {', '.join(map(str, healed))}" if healed else ""
        return Decision(
            kind=DecisionKind.REREPORT,
            level=3,
            score=round(p, 4),
            reason=(
                f"same event: {_scoring.describe(joined.pair, fp.data)}; "
                f"score {p:.2f} >= {t.same_story:.2f}{merges}"
            ),
            article_id=joined.closest.article_id,
            story_id=joined.story_id,
            merge_story_ids=healed,
        )
    top = matches[0]
    related = next((m for m in matches if _related(m, t)), None)
    if related is None:
        return Decision(
            DecisionKind.NEW,
            0,
            round(top.probability, 4),
            f"new story: closest story {top.story_id} scores {_short_of(top, t)}",
        )
    return Decision(
        kind=DecisionKind.NEW,
        level=0,
        score=round(top.probability, 4),
        reason=(
            f"new story, follows story {related.story_id}: "
            f"{_scoring.describe(related.pair, fp.data)}; score {_short_of(related, t)}"
        ),
        related_story_id=related.story_id,
    )


def _joins(match: StoryMatch, t: Thresholds) -> bool:
    """Whether the article joins the story: its score reaches ``same_story`` and it shares
    ``story_words`` besides names with the story's closest members."""
    return match.probability >= t.same_story and _words(match.members) >= t.story_words


def _words(pairs: Sequence[Pair]) -> float:
    """The mean ``words_cosine`` of ``pairs``. One rare name (a minister, a base) weighs
    in the names, the terms and the title at once: two items of one day naming it can
    score high while sharing no other word."""
    return math.fsum(map(_scoring.words_cosine, pairs)) / len(pairs)


def _short_of(match: StoryMatch, t: Thresholds) -> str:
    """Why ``match`` does not join: its score is short of the bar, or it shares too few
    words besides names."""
    p = match.probability
    if p < t.same_story:
        return f"{p:.2f} < {t.same_story:.2f}"
    return (
        f"{p:.2f}, but shares {_words(match.members):.1%} of its words besides names with "
        f"the story's closest reports < {t.story_words:.1%}"
    )


def follow_up(
    article: Article,
    fp: Fingerprint,
    decision: Decision,
    candidates: Sequence[Candidate],
    *,
    thresholds: Thresholds = THRESHOLDS,
) -> Decision:
    """Name the story a NEW article follows, looking beyond ``WINDOW``.

    Args:
        article: The incoming article.
        fp: Its fingerprint.
        decision: ``decide``'s decision for it.
        candidates: Stored articles found by the retrieval contract with ``RELATED_WINDOW``
            in place of ``WINDOW``, in any order.
        thresholds: The pair model and the ``related`` bars.

    Returns:
        ``decision`` itself unless it is NEW without a related story and a candidate story
        within ``RELATED_WINDOW`` shares enough with the article (``Thresholds.related``,
        ``Thresholds.related_names``); then the same decision naming that story.
    """
    if decision.kind is not DecisionKind.NEW or decision.related_story_id is not None:
        return decision
    once = {c.article_id: c for c in candidates}.values()
    compared = compare(article, fp, list(once), thresholds, window=RELATED_WINDOW)
    related = next((m for m in _stories(compared, thresholds) if _related(m, thresholds)), None)
    if related is None:
        return decision
    gap = article.when - related.closest.when
    when = f"{abs(gap).days} days {'earlier' if gap >= timedelta(0) else 'later'}"
    p, bar = related.probability, thresholds.same_story
    # Beyond WINDOW nothing is joined, however alike.
    short = f"< {bar:.2f}" if p < bar else f"beyond the {WINDOW.days}-day window"
    return dataclasses.replace(
        decision,
        related_story_id=related.story_id,
        reason=(
            f"new story, follows story {related.story_id} (reported {when}): "
            f"{_scoring.describe(related.pair, fp.data)}; "
            f"score {p:.2f} {short}"
        ),
    )


def settle(
    article: Article,
    fp: Fingerprint,
    story_id: int,
    candidates: Sequence[Candidate],
    *,
    thresholds: Thresholds = THRESHOLDS,
) -> Decision | None:
    """The story a lone article joins once its window has passed, if one stands out.

    An article that starts a story and is still its only one when no more re-reports
    can join it (``WINDOW`` after it) is most often a report the others were not alike
    enough to take in as it arrived: it came first, or tells the event its own way. The
    stories around it are complete by then, so it is scored against each of them again
    and joins the best one when that scores ``Thresholds.settle`` or more and stands
    ``Thresholds.settle_margin`` above every other story of ``RIVAL_REPORTS`` reports
    or more among the candidates. The margin keeps apart an article of the other event
    of a kind (the other earthquake), which scores alike against the two stories of that
    kind; a single report does not hold it back, for two reports the event's story left
    out are each other's closest other story.

    Args:
        article: The lone article.
        fp: Its fingerprint.
        story_id: Its story.
        candidates: Stored articles found by the retrieval contract, in any order (the
            article itself and its story are passed over).
        thresholds: The pair model and the ``settle`` bars.

    Returns:
        None, or a level-3 REREPORT decision naming the story and the closest article
        it joins, and why.
    """
    others = [c for c in candidates if c.story_id != story_id]
    matches = match_stories(article, fp, others, thresholds)
    if not matches:
        return None
    best = matches[0]
    runner_up = max((m.probability for m in matches[1:] if len(m.members) >= RIVAL_REPORTS),
                    default=0.0)  # fmt: skip
    p, t = best.probability, thresholds
    if p < t.settle or p - runner_up < t.settle_margin or _words(best.members) < t.story_words:
        return None
    return Decision(
        kind=DecisionKind.REREPORT,
        level=3,
        score=round(p, 4),
        reason=(
            f"joined story {best.story_id} once its window had passed: "
            f"{_scoring.describe(best.pair, fp.data)}; score {p:.2f} >= {t.settle:.2f}, "
            f"{p - runner_up:.2f} above any other story of {RIVAL_REPORTS} or more reports"
        ),
        article_id=best.closest.article_id,
        story_id=best.story_id,
    )


def _fragments(
    article: Article,
    fp: Fingerprint,
    compared: Sequence[tuple[Candidate, Pair]],
    matches: Sequence[StoryMatch],
    joined: StoryMatch,
    t: Thresholds,
) -> tuple[int, ...]:
    """The fragments the joined story heals: small related stories whose every article,
    scored again against the joined story's candidates plus this article, would join."""
    members: dict[int, list[Candidate]] = {}
    for cand, _ in compared:
        members.setdefault(cand.story_id, []).append(cand)
    story = [(c.when, c.fingerprint.data) for c in members[joined.story_id]]
    story.append((article.when, fp.data))
    fragments = [
        m.story_id
        for m in matches
        if m is not joined and _related(m, t) and len(members[m.story_id]) <= FRAGMENT_MEMBERS
    ]
    return tuple(sorted(
        story_id for story_id in fragments[:FRAGMENT_CHECKS]
        if all(_would_join(c, story, t) for c in members[story_id])
    ))  # fmt: skip


def _would_join(cand: Candidate, story: Sequence[tuple[Any, Mapping[str, Any]]],
                t: Thresholds) -> bool:  # fmt: skip
    data = cand.fingerprint.data
    pairs = sorted(
        (
            _scoring.pair(data, other, _hours_apart(cand.when, data, when, other), t.model)
            for when, other in story
        ),
        key=operator.attrgetter("logit"),
        reverse=True,
    )
    probability = _scoring.story_probability([p.logit for p in pairs], t.best_share)
    return (probability >= t.same_story
            and _words(pairs[: _scoring.STORY_MEMBERS]) >= t.story_words)  # fmt: skip


def _related(match: StoryMatch, t: Thresholds) -> bool:
    names = match.pair.features[PAIR_FEATURES.index("names")]
    return match.probability >= t.related or names >= t.related_names
