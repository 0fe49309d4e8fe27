"""Story dedupe (monitor.dedupe): the three levels on small real-looking cases, properties.

The articles below are written for these tests after real events (the July 2024 US-Japan
"2+2" in Tokyo, the US-Philippines "2+2" two days later, the Hualien and New Jersey
earthquakes of April 2024); the seed articles come from storage/seeds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import string
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storage
from monitor import _features, _scoring, dedupe
from monitor.app import open_runtime
from monitor.backtest import explain_article
from monitor.cli import main
from monitor.config import Config, PollConfig, load_config
from monitor.pipeline import Pipeline
from monitor.types import Article, ArticleIntent, Candidate, Decision, DecisionKind, Fingerprint
from tests.conftest import write_config

SEED_DAY = datetime(2024, 7, 28, tzinfo=UTC)
QUAKE_DAY = datetime(2024, 4, 3, tzinfo=UTC)
UNDATED = datetime(2024, 1, 1, tzinfo=UTC)  # a fetch time, as in `monitor eval stories`

TOKYO_2PLUS2 = (
    "US to turn Japan command into joint force headquarters as allies eye China",
    """TOKYO, July 28 - The United States will upgrade U.S. Forces Japan into a joint force \
headquarters with expanded missions and operational responsibilities, Defense Secretary Lloyd \
Austin said on Sunday after security talks in Tokyo.

Austin and Secretary of State Antony Blinken met Japanese Foreign Minister Yoko Kamikawa and \
Defense Minister Minoru Kihara for the so-called "2+2" talks, where the four ministers called \
China the greatest strategic challenge facing the alliance and the region.

The overhaul of the command, which oversees about 54,000 American troops in Japan, will be the \
most significant change to U.S. Forces Japan since it was created, Austin said. The new \
headquarters is meant to work more closely with a joint operations command that Japan's \
Self-Defense Forces plan to set up by March 2025.

The ministers also held their first ministerial meeting on extended deterrence, the U.S. \
commitment to use its nuclear forces to defend its allies, amid concern over China's expanding \
nuclear arsenal and Russia's deepening military cooperation with North Korea.

They agreed to expand co-production of missiles, including air-to-air missiles, in Japan and to \
work on the repair of U.S. Navy ships and aircraft in Japanese shipyards.""",
)

# The same wire story as syndicated elsewhere: a word changed here and there, a credit line.
TOKYO_2PLUS2_COPY = (
    "Allies agree overhaul of US command in Japan",
    TOKYO_2PLUS2[1]
    .replace("the alliance and the region", "the alliance and the wider region")
    .replace("since it was created, Austin said", "since it was created, Austin told reporters")
    + "\n\n(Reporting by the Tokyo bureau; Editing by the Asia desk)",
)

NEXT_2PLUS2 = (
    "US, Japan ministers agree to speed missile co-production at 2+2 in Washington",
    """WASHINGTON, Aug 3 - Defense Secretary Pete Hegseth and Secretary of State Marco Rubio \
hosted Japan's Foreign Minister Takeshi Iwaya and Defense Minister Gen Nakatani on Tuesday for \
the allies' annual "2+2" security talks, the first under the new U.S. administration.

The ministers agreed to double the planned output of jointly produced SM-3 interceptors and \
AMRAAM air-to-air missiles by 2027 and to open a second repair yard for U.S. Navy destroyers at \
Sasebo. Japan said it would raise its host-nation support by 12% over five years.

Nakatani said Japan's joint operations command, stood up in March, now works daily with its \
U.S. counterpart. Hegseth pressed Tokyo to lift defense spending beyond 2% of gross domestic \
product, and the two sides set up a working group on a trilateral air-defense network with the \
Philippines.

China's foreign ministry called the meeting "bloc confrontation" and urged Washington and Tokyo \
to stop hyping the so-called China threat.""",
)

MANILA_2PLUS2 = (
    "Austin, Blinken pledge $500 million to bolster Philippine military",
    """MANILA, July 30 - The United States will provide $500 million in foreign military \
financing to the Philippines, Secretary of State Antony Blinken said on Tuesday after "2+2" \
talks in Manila with Defense Secretary Lloyd Austin and their Philippine counterparts, Enrique \
Manalo and Gilberto Teodoro.

The funding, the largest of its kind to Manila, will help modernise the Philippine armed forces \
and coast guard as they face increasingly aggressive Chinese ships around Second Thomas Shoal \
in the South China Sea.

Austin said Washington would spend more on the sites Philippine forces host under the Enhanced \
Defense Cooperation Agreement, and the two sides agreed to speed up a general security of \
military information agreement. Teodoro said the Philippines would not be intimidated.""",
)

QUAKE_HUALIEN = (
    "Strongest quake in 25 years hits Taiwan, killing nine",
    """A magnitude 7.4 earthquake struck off Hualien on Taiwan's east coast on Wednesday \
morning, killing at least nine people and injuring more than 900, the island's fire agency \
said.

The quake, the strongest to hit Taiwan in 25 years, struck at 7:58 a.m. about 18 kilometres \
south of Hualien City at a depth of 15.5 kilometres, according to the Central Weather \
Administration. Buildings leaned at sharp angles in Hualien, and rockslides buried cars on the \
coastal highway.

Rescuers were trying to reach about 70 workers trapped in two quarries, and more than 50 people \
were stranded on a bus on a mountain road near Taroko Gorge. Tsunami warnings issued in Japan's \
Okinawa and in the Philippines were later lifted.

Taiwan Semiconductor Manufacturing Co said it had evacuated some fabrication plants and that \
its safety systems were working normally.""",
)

QUAKE_HUALIEN_REWRITE = (
    "Hualien quake: 9 dead, hundreds hurt as Taiwan assesses damage",
    """HUALIEN, Taiwan - Nine people were killed and 934 injured when a magnitude 7.4 \
earthquake shook eastern Taiwan early on Wednesday, officials said, the most powerful tremor on \
the island since 1999.

The epicentre lay just off the coast south of Hualien City, where a five-storey building was \
left tilting over the street. Three hikers died in rockslides on a trail in Taroko National \
Park, and dozens of workers were cut off at quarries in the mountains.

Aftershocks of up to magnitude 6.5 rattled the island through the day. President Tsai Ing-wen \
urged people to stay away from the mountains, and chipmaker TSMC said most of its equipment had \
recovered.""",
)

QUAKE_HUALIEN_THIRD = (
    "Taiwan counts the cost of its strongest earthquake since 1999",
    """TAIPEI - Taiwan's death toll from Wednesday's magnitude 7.4 earthquake rose to nine, \
with more than 900 people injured, as rescuers in Hualien searched for dozens of workers cut \
off at quarries near Taroko Gorge.

The Central Weather Administration said the quake struck off the Hualien coast at a depth of \
15.5 kilometres. In Hualien City a tilted five-storey building was being shored up, and \
landslides closed the coastal highway.

Chipmaker TSMC said most of its production tools had recovered, and Japan lifted tsunami \
warnings for Okinawa hours after the quake.""",
)

QUAKE_HUALIEN_FOURTH = (
    "Hualien rescuers reach trapped quarry workers after 7.4 quake",
    """HUALIEN, Taiwan - Rescue teams on Thursday reached most of the quarry workers trapped by \
landslides in Taroko National Park after Wednesday's magnitude 7.4 earthquake, Taiwan's fire \
agency said, as the death toll stood at nine and more than 1,000 people were hurt.

Aftershocks kept shaking Hualien, where the tilted building that became the image of the \
quake was being demolished. President Tsai Ing-wen visited the city and thanked rescuers.""",
)

QUAKE_NEW_JERSEY = (
    "Magnitude 4.8 earthquake rattles New Jersey and New York City",
    """A magnitude 4.8 earthquake centred in New Jersey shook buildings across New York City \
and the Northeast on Friday morning, startling millions of people in a region that rarely feels \
tremors. No serious injuries were reported.

The U.S. Geological Survey said the quake struck at 10:23 a.m. near Whitehouse Station in \
Hunterdon County, at a depth of about 5 kilometres. Shaking was felt from Baltimore to Boston, \
and an aftershock of magnitude 4.0 followed in the evening.

Flights at Newark airport were briefly halted while runways were inspected, and Amtrak slowed \
trains along the Northeast Corridor. New York Governor Kathy Hochul said state officials were \
checking bridges and tunnels for damage.""",
)


def make_article(
    text: tuple[str, str],
    when: datetime,
    *,
    url: str | None = None,
    guid: str | None = None,
    source: str = "wire",
    dated: bool = True,
) -> Article:
    title, body = text
    return Article(
        source=source,
        title=title,
        body=body,
        url=url,
        link=url,
        guid=guid,
        published=when if dated else None,
        fetched=when,
    )


def stored(fp: Fingerprint) -> Fingerprint:
    """The fingerprint as storage returns it: data through JSON."""
    return replace(fp, data=json.loads(json.dumps(fp.data)))


class Store:
    """A list of stored articles; candidates are all of them (dedupe filters by window)."""

    def __init__(self) -> None:
        self.candidates: list[Candidate] = []

    def ingest(self, article: Article) -> Decision:
        fp = dedupe.fingerprint(article)
        decision = dedupe.decide(article, fp, self.candidates)
        story = decision.story_id
        if story is None:
            story = 1 + max((c.story_id for c in self.candidates), default=0)
        article_id = len(self.candidates) + 1
        self.candidates.append(
            Candidate(article_id, story, article.when, article.title, stored(fp))
        )
        return decision


def seed_articles() -> list[Article]:
    """The seed documents, split into title and body as the pipeline does."""
    out = []
    for path in sorted((Path(storage.__file__).parent / "seeds").glob("*.txt")):
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        first = next(i for i, ln in enumerate(lines) if len(ln.split()) >= 4)
        if len(lines[first].split()) <= 25:
            title, rest = lines[first], lines[first + 1 :]
        else:
            title, rest = lines[first].split(". ")[0], lines[first:]
        body = "\n".join(ln for ln in rest if ln)
        out.append(Article("seed", title, body, None, None, path.name, SEED_DAY, SEED_DAY))
    return out


# -- the seed story ------------------------------------------------------------------------


def test_seed_articles_form_one_story() -> None:
    store = Store()
    first, second = (store.ingest(a) for a in seed_articles())
    assert first.kind is DecisionKind.NEW
    assert second.kind is DecisionKind.REREPORT and second.level == 3
    assert second.story_id == 1 and second.article_id == 1
    assert "Austin" in second.reason and "Tokyo" in second.reason


def test_seed_articles_form_one_story_without_dates() -> None:
    # Content alone carries it: no same-day evidence when the times are fetch times.
    store = Store()
    undated = [replace(a, published=None, fetched=UNDATED) for a in seed_articles()]
    decisions = [store.ingest(a) for a in undated]
    assert decisions[1].kind is DecisionKind.REREPORT and decisions[1].story_id == 1


# -- story decisions, table-driven ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Articles stored in order, then one more; what dedupe should say about it."""

    stored: Sequence[Article]
    incoming: Article
    kind: DecisionKind
    level: int
    story: int | None  # the story joined (1-based order of first appearance) or None
    related: int | None = None


def _seeds_then(*more: Article) -> list[Article]:
    return [*seed_articles(), *more]


_TOKYO = make_article(TOKYO_2PLUS2, SEED_DAY + timedelta(hours=3), url="https://a.example/1")
_HUALIEN = make_article(QUAKE_HUALIEN, QUAKE_DAY, url="https://b.example/quake")

CASES = {
    "a differently worded report of the 2+2 joins the seed story": Case(
        _seeds_then(), _TOKYO, DecisionKind.REREPORT, 3, 1
    ),
    "the same report undated still joins": Case(
        [replace(a, published=None, fetched=UNDATED) for a in seed_articles()],
        make_article(TOKYO_2PLUS2, UNDATED, dated=False),
        DecisionKind.REREPORT,
        3,
        1,
    ),
    "a syndicated copy under another URL is the same text": Case(
        _seeds_then(_TOKYO),
        make_article(TOKYO_2PLUS2_COPY, SEED_DAY + timedelta(hours=5), url="https://c.example/9"),
        DecisionKind.DUPLICATE,
        2,
        1,
    ),
    "the same feed GUID is the same item": Case(
        [make_article(TOKYO_2PLUS2, SEED_DAY, guid="tag:wire,2024:1", source="wire")],
        make_article(
            ("US command in Japan to be upgraded (updated)", "Updated text."),
            SEED_DAY + timedelta(hours=2),
            guid="tag:wire,2024:1",
            source="wire",
        ),
        DecisionKind.DUPLICATE,
        1,
        1,
    ),
    "the same canonical URL is the same item, whatever its age": Case(
        [make_article(TOKYO_2PLUS2, SEED_DAY, url="https://a.example/1")],
        make_article(
            ("Different title", "A later edit of the page."),
            SEED_DAY + timedelta(days=400),
            url="https://a.example/1",
        ),
        DecisionKind.DUPLICATE,
        1,
        1,
    ),
    "the same title and text under another URL is the same item": Case(
        [make_article(TOKYO_2PLUS2, SEED_DAY, url="https://a.example/1")],
        make_article(TOKYO_2PLUS2, SEED_DAY + timedelta(days=30), url="https://mirror.example/x"),
        DecisionKind.DUPLICATE,
        1,
        1,
    ),
    "another 2+2 a year later is a new story": Case(
        _seeds_then(_TOKYO),
        make_article(NEXT_2PLUS2, SEED_DAY + timedelta(days=371)),
        DecisionKind.NEW,
        0,
        None,
    ),
    "another 2+2 with other ministers and outcomes is new even at the same time": Case(
        [replace(a, published=None, fetched=UNDATED) for a in seed_articles()],
        make_article(NEXT_2PLUS2, UNDATED, dated=False),
        DecisionKind.NEW,
        0,
        None,
    ),
    "the US-Philippines 2+2 two days later is new, following the Tokyo story": Case(
        _seeds_then(_TOKYO),
        make_article(MANILA_2PLUS2, SEED_DAY + timedelta(days=2)),
        DecisionKind.NEW,
        0,
        None,
        related=1,
    ),
    "a second write-up of the Hualien earthquake joins it": Case(
        [_HUALIEN],
        make_article(QUAKE_HUALIEN_REWRITE, QUAKE_DAY + timedelta(hours=5)),
        DecisionKind.REREPORT,
        3,
        1,
    ),
    "the New Jersey earthquake two days later is another story": Case(
        [_HUALIEN, make_article(QUAKE_HUALIEN_REWRITE, QUAKE_DAY + timedelta(hours=5))],
        make_article(QUAKE_NEW_JERSEY, QUAKE_DAY + timedelta(days=2)),
        DecisionKind.NEW,
        0,
        None,
    ),
    "two earthquakes stay apart without dates too": Case(
        [make_article(QUAKE_HUALIEN, UNDATED, dated=False)],
        make_article(QUAKE_NEW_JERSEY, UNDATED, dated=False),
        DecisionKind.NEW,
        0,
        None,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_story_decision(case: Case) -> None:
    store = Store()
    for article in case.stored:
        store.ingest(article)
    decision = store.ingest(case.incoming)
    assert (decision.kind, decision.level) == (case.kind, case.level), decision.reason
    assert decision.story_id == case.story
    assert decision.related_story_id == case.related
    if decision.kind is DecisionKind.NEW:
        assert decision.article_id is None
    else:
        assert decision.article_id is not None
        joined = store.candidates[decision.article_id - 1]
        assert joined.story_id == decision.story_id
    assert decision.reason


def test_reason_names_what_decided() -> None:
    store = Store()
    for article in _seeds_then():
        store.ingest(article)
    decision = store.ingest(_TOKYO)
    assert decision.reason.startswith("same event: shared names ")
    for name in ("Austin", "Tokyo", "Blinken"):
        assert name in decision.reason
    assert f">= {dedupe.THRESHOLDS.same_story:.2f}" in decision.reason


def test_level_three_ignores_candidates_outside_the_window() -> None:
    old = make_article(QUAKE_HUALIEN, QUAKE_DAY)
    fp = dedupe.fingerprint(old)
    late = make_article(QUAKE_HUALIEN_REWRITE, QUAKE_DAY + dedupe.WINDOW + timedelta(hours=1))
    cand = Candidate(1, 1, old.when, old.title, stored(fp))
    decision = dedupe.decide(late, dedupe.fingerprint(late), [cand])
    assert decision.kind is DecisionKind.NEW and decision.related_story_id is None


def test_other_fingerprint_versions_match_by_keys_only() -> None:
    article = make_article(TOKYO_2PLUS2, SEED_DAY, url="https://a.example/1")
    old = replace(stored(dedupe.fingerprint(article)), version=dedupe.FINGERPRINT_VERSION - 1)
    copy = make_article(TOKYO_2PLUS2_COPY, SEED_DAY, url="https://b.example/2")
    decision = dedupe.decide(copy, dedupe.fingerprint(copy), [Candidate(1, 1, SEED_DAY, "", old)])
    assert decision.kind is DecisionKind.NEW
    same_url = make_article(TOKYO_2PLUS2_COPY, SEED_DAY, url="https://a.example/1")
    decision = dedupe.decide(
        same_url, dedupe.fingerprint(same_url), [Candidate(1, 1, SEED_DAY, "", old)]
    )
    assert (decision.kind, decision.level) == (DecisionKind.DUPLICATE, 1)


def test_repeated_candidates_count_once() -> None:
    store = Store()
    for article in _seeds_then():
        store.ingest(article)
    fp = dedupe.fingerprint(_TOKYO)
    once = dedupe.decide(_TOKYO, fp, store.candidates)
    assert dedupe.decide(_TOKYO, fp, store.candidates * 3) == once


def _template_item(n: int) -> Article:
    """One item of a form: the same wording every time, all names and numbers its own."""
    rng = random.Random(n)
    names = ["".join(rng.choices(string.ascii_lowercase, k=9)).capitalize() for _ in range(8)]
    body = (
        f"Drone sighting near {names[0]} base reported by {names[1]} officials. "
        f"{names[2]} and {names[3]} said {rng.randint(10, 99)} aircraft from "
        f"{names[4]} squadron were involved on day {n}. {names[5]} {names[6]} "
        f"{names[7]} confirmed the figure of {rng.randint(1000, 9999)}."
    )
    return make_article((f"{names[0]} drone sighting #{n}", body), SEED_DAY, source=f"o{n % 3}")


def test_items_of_one_form_with_disjoint_names_stay_apart() -> None:
    # Same day, same wording, now and then a number in common: without one name in common
    # they are other events (an earlier model joined such items at 0.90).
    store = Store()
    decisions = [store.ingest(_template_item(n)) for n in range(30)]
    assert [d.kind for d in decisions] == [DecisionKind.NEW] * 30
    assert max(d.score for d in decisions) < dedupe.THRESHOLDS.same_story


def test_sharing_one_name_is_not_disjoint() -> None:
    a, b = _template_item(1), _template_item(2)
    b = replace(b, body=b.body.replace(b.title.split()[0], a.title.split()[0]))
    fa, fb = dedupe.fingerprint(a).data, dedupe.fingerprint(b).data
    disjoint = dedupe.PAIR_FEATURES.index("names_disjoint")
    model = dedupe.THRESHOLDS.model
    assert (
        _scoring.pair(fa, dedupe.fingerprint(_template_item(3)).data, 0.0, model).features[disjoint]
        == 1.0
    )
    assert _scoring.pair(fa, fb, 0.0, model).features[disjoint] == 0.0


def test_one_shared_name_is_told_from_several() -> None:
    # One surname or base named in two reports says less than several names in common.
    a, other = _template_item(1), _template_item(2)
    a_names, other_names = a.title.split()[0], other.title.split()[0]
    one = replace(other, body=other.body.replace(other_names, a_names))
    fa = dedupe.fingerprint(a).data
    feature = dedupe.PAIR_FEATURES.index("one_name")
    model = dedupe.THRESHOLDS.model

    def shared(b: Article) -> tuple[tuple[str, ...], float]:
        p = _scoring.pair(fa, dedupe.fingerprint(b).data, 0.0, model)
        return p.shared_names, p.features[feature]

    assert shared(other) == ((), 0.0)
    assert shared(one) == ((a_names.casefold(),), 1.0)
    names, value = shared(a)
    assert len(names) > 1 and value == 0.0
    assert model.weights[feature] < 0


def test_the_same_day_counts_as_far_as_two_reports_share_words() -> None:
    # Many events happen each day: publication on the same day backs up shared words, it
    # does not stand in for them.
    fa, fb = (dedupe.fingerprint(a).data for a in (_H1, _H2))
    unrelated = dedupe.fingerprint(_template_item(3)).data
    model = dedupe.THRESHOLDS.model
    terms, same_day = (dedupe.PAIR_FEATURES.index(n) for n in ("terms", "same_day"))
    alike, apart = (_scoring.pair(fa, b, 5.0, model).features for b in (fb, unrelated))
    for f in (alike, apart):
        assert f[same_day] == min(1.0, f[terms] / _scoring.SAME_DAY_TERMS)
    assert apart[same_day] < alike[same_day]
    assert _scoring.pair(fa, fb, None, model).features[same_day] == 0.0  # not both dated


def test_a_report_days_later_counts_less_than_one_the_same_day() -> None:
    # Re-reports of an event come within a day or two; a follow-up comes days later.
    fa, fb = (dedupe.fingerprint(a).data for a in (_H1, _H2))
    model = dedupe.THRESHOLDS.model
    same_day, days_later = (_scoring.pair(fa, fb, hours, model).logit for hours in (5.0, 96.0))
    assert same_day > days_later


# Two items of one day that name one minister: a visit to a base, and a hearing.
VISIT_DAY = datetime(2025, 3, 12, 9, tzinfo=UTC)
VISIT = [
    make_article((
        "Hegseth backs ship repair deal on visit to Yokosuka",
        "Defense Secretary Pete Hegseth on Wednesday toured the dry docks at Yokosuka and "
        "backed a plan for Japanese yards to repair destroyers of the Seventh Fleet, saying "
        "the work would keep more warships at sea. The repair deal covers hull and engine "
        "maintenance and could start within months, officials said.",
    ), VISIT_DAY),
    make_article((
        "Hegseth tours Yokosuka dry docks, endorses repair plan",
        "Pete Hegseth visited the Yokosuka naval base on Wednesday, inspecting dry docks "
        "where Japanese shipbuilders are to repair Seventh Fleet destroyers. He endorsed the "
        "repair plan, which officials said would cut the time warships spend away from the "
        "fleet for maintenance.",
    ), VISIT_DAY + timedelta(hours=3)),
]
VISIT_AGAIN = make_article((
    "Hegseth tours Yokosuka shipyard where Japanese yards will repair US destroyers",
    "Defense Secretary Pete Hegseth visited Yokosuka on Wednesday and inspected the dry "
    "docks where Japanese shipbuilders will repair Seventh Fleet destroyers under a new "
    "maintenance deal.",
), VISIT_DAY + timedelta(hours=4))
HEARING = make_article((
    "Hegseth faces Senate questions over Signal chat",
    "Pete Hegseth was questioned by senators on Wednesday about messages on the Signal app "
    "that discussed strike plans. Senators asked whether classified details were shared.",
), VISIT_DAY + timedelta(hours=5))


def test_a_name_and_a_day_without_other_words_in_common_are_another_event() -> None:
    # The one rare name weighs in the names, the terms and the title at once: the pair
    # model alone would join the hearing to the visit.
    without = replace(dedupe.THRESHOLDS, story_words=0.0)
    candidates = _wide_candidates([VISIT])
    fp = dedupe.fingerprint(HEARING)
    assert dedupe.decide(HEARING, fp, candidates, thresholds=without).kind \
        is DecisionKind.REREPORT  # fmt: skip
    decision = dedupe.decide(HEARING, fp, candidates)
    assert (decision.kind, decision.related_story_id) == (DecisionKind.NEW, 1)
    assert decision.score >= dedupe.THRESHOLDS.same_story
    assert "words besides names" in decision.reason and "Hegseth" in decision.reason
    # A third report of the visit shares its words, and joins.
    again = _decide_against(VISIT_AGAIN, [VISIT])
    assert (again.kind, again.story_id) == (DecisionKind.REREPORT, 1)


def test_a_fragment_sharing_only_a_name_is_not_healed() -> None:
    without = replace(dedupe.THRESHOLDS, story_words=0.0)
    candidates = _wide_candidates([VISIT, [HEARING]])
    fp = dedupe.fingerprint(VISIT_AGAIN)
    assert dedupe.decide(VISIT_AGAIN, fp, candidates, thresholds=without).merge_story_ids \
        == (2,)  # fmt: skip
    decision = dedupe.decide(VISIT_AGAIN, fp, candidates)
    assert (decision.kind, decision.story_id, decision.merge_story_ids) == (
        DecisionKind.REREPORT, 1, ())  # fmt: skip


def test_words_cosine_leaves_out_the_names_of_either_side() -> None:
    model = dedupe.THRESHOLDS.model
    data = [stored(dedupe.fingerprint(a)).data for a in (*VISIT, VISIT_AGAIN, HEARING, _H1)]

    def without_names(a: dict[str, Any], b: dict[str, Any]) -> float:
        names = a["names"].keys() | b["names"].keys()
        rest_a, rest_b = ({t: w for t, w in d["vec"].items() if t not in names} for d in (a, b))
        return _scoring._cosine(rest_a, rest_b) if rest_a and rest_b else 0.0

    for a in data:
        for b in data:
            words = _scoring.words_cosine(_scoring.pair(a, b, None, model))
            assert words == _scoring.words_cosine(_scoring.pair(b, a, None, model))
            assert words == pytest.approx(without_names(a, b), abs=1e-12)
    visit, hearing = data[0], data[3]
    p = _scoring.pair(visit, hearing, None, model)
    # "hegseth" is most of what the terms share
    assert _scoring.words_cosine(p) < dedupe.THRESHOLDS.story_words < 0.2 < p.features[0]
    assert _scoring.words_cosine(_scoring.pair(visit, visit, None, model)) == pytest.approx(1.0)
    names_only = {**visit, "vec": {t: w for t, w in visit["vec"].items() if t in visit["names"]}}
    names_only["vec_norm"] = _scoring.norm(names_only["vec"])
    assert _scoring.words_cosine(_scoring.pair(names_only, visit, None, model)) == 0.0


# -- follow-ups beyond the window -----------------------------------------------------------

# Seven months after the seed 2+2: the headquarters the ministers announced is stood up.
JFHQ_STOOD_UP = (
    "U.S. Forces Japan begins transition to joint force headquarters",
    """YOKOTA AIR BASE, Japan - U.S. Forces Japan on Tuesday began its transition to a joint \
force headquarters, the upgrade Defense Secretary Lloyd Austin and Secretary of State Antony \
Blinken announced with Foreign Minister Yoko Kamikawa and Defense Minister Minoru Kihara at \
the "2+2" talks in Tokyo last July. The new headquarters will take on operational \
responsibilities for the roughly 54,000 American troops in Japan and work alongside the \
Joint Operations Command of the Self-Defense Forces, which opened in March. A three-star \
general will lead it during the first phase, officials at Yokota said.""",
)


def _wide_candidates(stories: Sequence[Sequence[Article]]) -> list[Candidate]:
    out: list[Candidate] = []
    for story_id, members in enumerate(stories, 1):
        for member in members:
            fp = stored(dedupe.fingerprint(member))
            out.append(Candidate(len(out) + 1, story_id, member.when, member.title, fp))
    return out


def test_a_follow_up_months_later_names_the_story_it_follows() -> None:
    later = make_article(JFHQ_STOOD_UP, SEED_DAY + timedelta(days=210))
    fp = dedupe.fingerprint(later)
    candidates = _wide_candidates([seed_articles(), [_H1]])
    decision = dedupe.decide(later, fp, candidates)
    # Outside WINDOW nothing is compared: a new story, that on its own relates to nothing.
    assert decision.kind is DecisionKind.NEW and decision.related_story_id is None

    follows = dedupe.follow_up(later, fp, decision, candidates)
    assert follows.kind is DecisionKind.NEW and follows.story_id is None
    assert follows.related_story_id == 1
    assert "follows story 1 (reported 210 days earlier)" in follows.reason
    assert "Kamikawa" in follows.reason


def test_a_story_beyond_the_window_is_named_however_alike() -> None:
    # The visit reported again a month on: never joined, and the reason says why.
    month = timedelta(days=30)
    later = replace(VISIT_AGAIN, published=VISIT_DAY + month, fetched=VISIT_DAY + month)
    fp = dedupe.fingerprint(later)
    candidates = _wide_candidates([VISIT])
    follows = dedupe.follow_up(later, fp, dedupe.decide(later, fp, candidates), candidates)
    assert (follows.kind, follows.related_story_id) == (DecisionKind.NEW, 1)
    assert follows.score < dedupe.THRESHOLDS.same_story  # the decision's own: nothing near
    assert "beyond the 7-day window" in follows.reason and " < " not in follows.reason


def test_follow_up_leaves_unrelated_and_distant_stories_alone() -> None:
    later = make_article(JFHQ_STOOD_UP, SEED_DAY + timedelta(days=210))
    fp = dedupe.fingerprint(later)
    new = dedupe.decide(later, fp, [])
    # Another event's story within the wide window relates to nothing ...
    assert dedupe.follow_up(later, fp, new, _wide_candidates([[_H1]])) == new
    # ... and the seed story beyond RELATED_WINDOW is out of reach.
    too_late = replace(later, published=SEED_DAY + dedupe.RELATED_WINDOW + timedelta(days=2))
    assert dedupe.follow_up(too_late, fp, new, _wide_candidates([seed_articles()])) == new
    # A decision that is not NEW, or names a story already, is returned as it is.
    joined = replace(new, kind=DecisionKind.REREPORT, level=3, story_id=1)
    assert dedupe.follow_up(later, fp, joined, _wide_candidates([seed_articles()])) is joined


# -- fragments ---------------------------------------------------------------------------

_H1 = make_article(QUAKE_HUALIEN, QUAKE_DAY, url="https://b.example/h1")
_H2 = make_article(
    QUAKE_HUALIEN_REWRITE, QUAKE_DAY + timedelta(hours=5), url="https://c.example/h2"
)
_H3 = make_article(QUAKE_HUALIEN_THIRD, QUAKE_DAY + timedelta(hours=8), url="https://d.example/h3")
_H4 = make_article(
    QUAKE_HUALIEN_FOURTH, QUAKE_DAY + timedelta(hours=20), url="https://e.example/h4"
)
_NJ = make_article(QUAKE_NEW_JERSEY, QUAKE_DAY + timedelta(days=2), url="https://f.example/nj")


def _decide_against(article: Article, stories: Sequence[Sequence[Article]]) -> Decision:
    """Decide ``article`` against stored stories 1, 2, ... holding the given articles."""
    candidates: list[Candidate] = []
    for story_id, members in enumerate(stories, 1):
        for member in members:
            fp = stored(dedupe.fingerprint(member))
            candidates.append(Candidate(len(candidates) + 1, story_id, member.when, "", fp))
    return dedupe.decide(article, dedupe.fingerprint(article), candidates)


def test_a_rereport_heals_a_fragment_of_its_story() -> None:
    # The rewrite once missed the bar and started a story of its own; the next report of
    # the quake joins one of the two and names the other as a fragment to merge.
    decision = _decide_against(_H3, [[_H1], [_H2]])
    assert decision.kind is DecisionKind.REREPORT
    assert {decision.story_id, *decision.merge_story_ids} == {1, 2}
    assert "merges fragments" in decision.reason


def test_another_event_of_one_kind_is_no_fragment() -> None:
    decision = _decide_against(_H3, [[_H1], [_NJ]])
    assert (decision.kind, decision.story_id) == (DecisionKind.REREPORT, 1)
    assert decision.merge_story_ids == ()


@pytest.mark.parametrize(("members", "merged"), [(2, (2,)), (3, ())])
def test_only_small_stories_are_fragments(members: int, merged: tuple[int, ...]) -> None:
    # Story 2 holds copies of story 1's reports: with more than FRAGMENT_MEMBERS of them
    # it is an established story, which an article resembling both never merges.
    assert dedupe.FRAGMENT_MEMBERS == 2
    reports = [_H1, _H2, _H3][:members]
    copies = [replace(a, url=f"https://copy.example/{i}") for i, a in enumerate(reports)]
    decision = _decide_against(_H4, [reports, copies])
    assert (decision.kind, decision.story_id) == (DecisionKind.REREPORT, 1)
    assert decision.merge_story_ids == merged


class _Pipeline:
    """The pipeline on a real database, storing articles as of the quake's day."""

    def __init__(self, url: str) -> None:
        config = Config(database="", poll=PollConfig(), notifiers={}, aliases={}, feeds=(),
                        watchlists=())  # fmt: skip
        self.repo = storage.make_repository(url)
        self.pipeline = Pipeline(config, self.repo, clock=lambda: QUAKE_DAY)

    def ingest(self, article: Article) -> int:
        article_id = self.pipeline.ingest(article, backlog=True, now=QUAKE_DAY, watch=False)
        assert article_id is not None
        return article_id

    def story(self, article_id: int) -> int:
        return int(self.repo.get_article(article_id)["story_id"])  # type: ignore[index]


def test_the_pipeline_merges_a_healed_fragment_and_keeps_a_hand_split(tmp_path: Path) -> None:
    p = _Pipeline(f"sqlite:///{tmp_path}/stories.db")
    repo, ingest, story = p.repo, p.ingest, p.story
    try:
        first = ingest(_H1)
        # A fragment, as an earlier decision (or earlier thresholds) may have left one.
        fragment = repo.add_article(ArticleIntent(
            article=_H2, item_key="u:h2", fingerprint=dedupe.fingerprint(_H2),
            decision=Decision(DecisionKind.NEW, 0, 0.7, "new story")), QUAKE_DAY)  # fmt: skip
        assert fragment is not None and story(fragment) != story(first)
        third = ingest(_H3)
        assert story(first) == story(fragment) == story(third)
        # A hand split is a correction: later reports do not merge it back.
        split = repo.split_article(fragment, QUAKE_DAY)
        fourth = ingest(_H4)
        assert story(fragment) == split != story(first) == story(third)
        assert story(fourth) in (split, story(first))
    finally:
        repo.close()


# -- settling lone stories ---------------------------------------------------------------

# A report of the Hualien quake told from the chipmakers' side: it shares the event's words
# only in part, so it misses the bar to join as it arrives, and starts a story of its own.
_CHIPS = make_article((
    "Chipmakers check their plants after the quake",
    """Taiwan Semiconductor Manufacturing Co and United Microelectronics inspected \
production lines on Wednesday after the earthquake in eastern Taiwan. TSMC said its safety \
systems worked and that most of its tools were running again within ten hours, while some \
wafers in process would be scrapped. Analysts at TrendForce said the effect on chip supply \
would be limited.""",
), QUAKE_DAY + timedelta(hours=10), url="https://g.example/chips")
_QUAKE = [_H1, _H2, _H3, _H4]


def _settle(article: Article, stories: Sequence[Sequence[Article]]) -> Decision | None:
    """Settle ``article``, alone in the story after ``stories`` 1, 2, ...; it is among
    the candidates too, as a lookup finds it."""
    candidates = _wide_candidates([*stories, [article]])
    return dedupe.settle(article, dedupe.fingerprint(article), len(stories) + 1, candidates)


def test_a_lone_report_settles_into_the_story_it_clearly_belongs_to() -> None:
    arriving = _decide_against(_CHIPS, [_QUAKE, [_NJ]])
    assert arriving.kind is DecisionKind.NEW  # short of the bar as it came
    assert dedupe.THRESHOLDS.settle <= arriving.score < dedupe.THRESHOLDS.same_story

    settled = _settle(_CHIPS, [_QUAKE, [_NJ]])
    assert settled is not None
    assert (settled.kind, settled.level, settled.story_id) == (DecisionKind.REREPORT, 3, 1)
    assert settled.article_id in range(1, len(_QUAKE) + 1)
    assert settled.reason.startswith("joined story 1 once its window had passed: ")
    assert f">= {dedupe.THRESHOLDS.settle:.2f}" in settled.reason and "Taiwan" in settled.reason


def test_a_lone_report_as_like_two_stories_stays_alone() -> None:
    # Story 2 is as alike as story 1 (copies of its reports): neither stands out.
    copies = [replace(a, url=f"https://copy.example/{i}") for i, a in enumerate(_QUAKE)]
    assert _settle(_CHIPS, [_QUAKE, copies]) is None


def test_another_lone_report_of_the_event_does_not_hold_one_back() -> None:
    # The rewrite is alone too, and about as like the chipmakers' report as the quake's
    # story is: two reports its story left out are each other's closest other story.
    rest = [_H1, _H3, _H4]
    found = dedupe.match_stories(_CHIPS, dedupe.fingerprint(_CHIPS),
                                 _wide_candidates([rest, [_H2]]))  # fmt: skip
    assert found[0].story_id == 1 and found[0].probability - found[1].probability < 0.05
    settled = _settle(_CHIPS, [rest, [_H2]])
    assert settled is not None and settled.story_id == 1
    assert "above any other story of 2 or more reports" in settled.reason


def test_a_lone_report_short_of_the_settle_bar_stays_alone() -> None:
    vaguer = make_article((
        "Chipmakers check their plants",
        _CHIPS.body.replace("the earthquake in eastern Taiwan", "Wednesday's earthquake"),
    ), _CHIPS.when, url="https://g.example/chips-2")  # fmt: skip
    assert dedupe.match_stories(vaguer, dedupe.fingerprint(vaguer),
                                _wide_candidates([_QUAKE]))[0].probability < 0.5  # fmt: skip
    assert _settle(vaguer, [_QUAKE, [_NJ]]) is None
    # Another event of the kind, alone, settles into nothing either.
    assert _settle(_NJ, [_QUAKE]) is None


def test_the_pipeline_settles_lone_stories_once_their_window_has_passed(db_url: str) -> None:
    p = _Pipeline(db_url)
    repo, pipeline, ingest, story = p.repo, p.pipeline, p.ingest, p.story
    try:
        quake = [ingest(a) for a in _QUAKE]
        chips, nj = ingest(_CHIPS), ingest(_NJ)
        split = ingest(replace(_NJ, url="https://copy.example/nj", source="copy"))
        assert len({story(i) for i in quake}) == 1 and story(chips) != story(quake[0])
        assert story(split) == story(nj)  # a copy
        repo.split_article(split, QUAKE_DAY)  # a correction, kept whatever settles
        # Within the window, re-reports may still come: nothing settles yet.
        assert pipeline.settle(QUAKE_DAY + dedupe.WINDOW - timedelta(hours=1)) == 0
        assert story(chips) != story(quake[0])

        assert pipeline.settle(QUAKE_DAY + dedupe.WINDOW) == 1
        assert story(chips) == story(quake[0])
        assert story(nj) not in (story(quake[0]), story(split))
        reason = repo.get_article(chips)["reason"]  # type: ignore[index]
        first, later = reason.splitlines()
        assert first.startswith("new story")  # as it was decided when it came ...
        assert later.startswith(f"joined story {story(quake[0])} once its window had passed: ")
        explained = explain_article(repo, chips).splitlines()  # `monitor explain`
        at = next(n for n, line in enumerate(explained) if line.startswith("  reason: new story"))
        assert explained[at + 1] == " " * 10 + later
        assert repo.get_story(story(quake[0]))["articles"] == 5  # type: ignore[index]
        # Each story is looked at once: the next run starts after the last one.
        assert repo.get_meta("settled_story_id") == str(story(split))
        assert pipeline.settle(QUAKE_DAY + dedupe.WINDOW * 2) == 0
    finally:
        repo.close()


def _stored_a_week_ago(path: Path) -> list[int]:
    """The quake's reports and the chipmakers' one, stored a week and a bit ago."""
    config = load_config(path)
    came = datetime.now(UTC) - dedupe.WINDOW - timedelta(minutes=5)
    with ExitStack() as stack:
        pipeline = Pipeline(config, open_runtime(config, stack).repo, clock=lambda: came)
        ids = [pipeline.ingest(a, backlog=True, now=came, watch=False) for a in [*_QUAKE, _CHIPS]]
    assert None not in ids
    return ids  # type: ignore[return-value]


def _stories_of(path: Path, ids: list[int]) -> set[int]:
    with ExitStack() as stack:
        repo = open_runtime(load_config(path), stack).repo
        return {repo.get_article(i)["story_id"] for i in ids}  # type: ignore[index]


def test_run_once_settles_the_lone_stories_of_a_week_ago(tmp_path: Path) -> None:
    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[])
    ids = _stored_a_week_ago(path)
    assert len(_stories_of(path, ids)) == 2
    assert main(["run", "--once", "--config", str(path)]) == 0
    assert len(_stories_of(path, ids)) == 1


def test_the_daemon_settles_at_start_and_counts_it(tmp_path: Path) -> None:
    from monitor.daemon import Daemon
    from monitor.scheduler import run_daemon

    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[])
    ids = _stored_a_week_ago(path)
    stop = threading.Event()
    with ExitStack() as stack:
        daemon = Daemon(open_runtime(load_config(path), stack), stack)

        def settled() -> float | None:
            return daemon.metrics.registry.get_sample_value("monitor_stories_settled_total")

        thread = threading.Thread(target=run_daemon, args=(daemon,), kwargs={"stop": stop})
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while settled() != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=60)
    assert settled() == 1
    assert len(_stories_of(path, ids)) == 1


# -- fingerprints --------------------------------------------------------------------------


def test_fingerprint_keys() -> None:
    article = make_article(TOKYO_2PLUS2, SEED_DAY, url="https://a.example/1", guid="g-1")
    fp = dedupe.fingerprint(article)
    assert fp.keys[0] == "guid:wire:g-1"
    assert fp.keys[1] == "url:https://a.example/1"
    assert fp.keys[2].startswith("text:") and len(fp.keys[2]) == len("text:") + 32
    assert fp.version == dedupe.FINGERPRINT_VERSION


def test_text_key_ignores_case_and_spacing_but_not_words() -> None:
    a = dedupe.fingerprint(make_article(TOKYO_2PLUS2, SEED_DAY))
    shouty = (TOKYO_2PLUS2[0].upper(), "  " + TOKYO_2PLUS2[1].replace(" ", "   "))
    b = dedupe.fingerprint(make_article(shouty, SEED_DAY))
    c = dedupe.fingerprint(make_article(TOKYO_2PLUS2_COPY, SEED_DAY))
    assert a.keys == b.keys
    assert a.keys != c.keys


def test_keys_and_bands_are_stable_across_processes() -> None:
    # Stored keys and bands must keep matching after a restart or on another machine: a
    # change here needs a new FINGERPRINT_VERSION.
    text = (
        "US to upgrade command in Japan",
        "The United States will upgrade U.S. Forces Japan into a joint force headquarters, "
        "Defense Secretary Lloyd Austin said on Sunday after security talks in Tokyo with "
        "Japanese ministers.",
    )
    fp = dedupe.fingerprint(make_article(text, SEED_DAY))
    assert dedupe.FINGERPRINT_VERSION == 1
    assert fp.keys == ("text:1a5f15d9f3776acbd176052707526078",)
    assert fp.bands[:2] == ("m1.0:5f22f8b8149b6c04", "m1.1:24ae7336ef0d4680")


def test_short_items_get_no_text_key() -> None:
    # "Daily briefing" repeats every day with other news behind it.
    fp = dedupe.fingerprint(make_article(("Daily briefing", "Read more inside."), SEED_DAY))
    assert not [k for k in fp.keys if k.startswith("text:")]


def test_near_identical_copies_share_a_band_and_unrelated_texts_none() -> None:
    tokyo = dedupe.fingerprint(make_article(TOKYO_2PLUS2, SEED_DAY))
    copy = dedupe.fingerprint(make_article(TOKYO_2PLUS2_COPY, SEED_DAY))
    quake = dedupe.fingerprint(make_article(QUAKE_HUALIEN, SEED_DAY))
    rewrite = dedupe.fingerprint(make_article(QUAKE_HUALIEN_REWRITE, SEED_DAY))
    assert len(tokyo.bands) == dedupe.BANDS
    assert set(tokyo.bands) & set(copy.bands)
    assert not set(tokyo.bands) & set(quake.bands)
    assert not set(quake.bands) & set(rewrite.bands)  # same event, other words: level 3
    assert dedupe.text_similarity(tokyo.data, copy.data) >= dedupe.THRESHOLDS.same_text
    assert dedupe.text_similarity(quake.data, rewrite.data) < 0.2


def test_lookup_terms_are_few_and_name_the_event() -> None:
    fp = dedupe.fingerprint(make_article(TOKYO_2PLUS2, SEED_DAY))
    assert 10 <= len(fp.terms) <= dedupe.TERMS_PER_ARTICLE
    assert len(set(fp.terms)) == len(fp.terms)
    assert {"kamikawa", "kihara", "blinken", "austin"} <= set(fp.terms)


@pytest.mark.parametrize("text", [TOKYO_2PLUS2, NEXT_2PLUS2, QUAKE_HUALIEN, QUAKE_NEW_JERSEY])
def test_lookup_terms_are_selective(text: tuple[str, str]) -> None:
    # Storage reads the postings of every lookup term within the window: a common word
    # ("said", "more") would make each lookup grow with the store.
    terms = set(dedupe.fingerprint(make_article(text, SEED_DAY)).terms)
    common = {"said", "more", "how", "between", "since", "told", "after", "new", "first"}
    assert len(terms) >= dedupe.LOOKUP_MIN_TERMS
    assert not terms & common


def test_lookup_terms_carry_precise_numbers_not_round_ones() -> None:
    terms = dedupe.fingerprint(make_article(QUAKE_HUALIEN, QUAKE_DAY)).terms
    assert {"hualien", "#7.4", "#15.5"} <= set(terms)
    assert not {"#25", "#900", "#70"} & set(terms)


def test_a_short_item_still_gets_lookup_terms_but_no_stopwords() -> None:
    short = ("Deputy shot dead", "Two gang members were arrested in the killing of a deputy.")
    terms = set(dedupe.fingerprint(make_article(short, SEED_DAY)).terms)
    assert {"deputy", "gang"} <= terms
    assert not terms & {"two", "were", "in", "the", "of", "a"}


def test_fingerprint_data_survives_json() -> None:
    fp = dedupe.fingerprint(make_article(TOKYO_2PLUS2, SEED_DAY))
    assert json.loads(json.dumps(fp.data)) == fp.data


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_zipf_table_reads_what_wordfreq_reads(lang: str) -> None:
    import wordfreq

    table = {w: math.log10(f) + 9.0 for w, f in wordfreq.get_frequency_dict(lang).items()}
    words = sorted(table)[:: max(1, len(table) // 3000)]
    assert len(words) > 1000
    assert [_features.zipf(w, lang) for w in words] == [table[w] for w in words]
    assert _features.zipf("qzxvkw", lang) == 0.0
    assert _features.zipf("", lang) == 0.0


def test_a_zipf_table_keeps_a_words_last_bucket_as_wordfreq_does() -> None:
    table = _features.ZipfTable([["of", "the"], ["tokyo"], ["kihara", "the"]])
    assert len(table) == 4
    assert table.get("the") == table.get("kihara") < table.get("tokyo") < table.get("of")
    assert table.get("tokyo") == pytest.approx(9.0 - 0.01)
    assert [table.get(w) for w in ("a", "zz", "tok", "tokyoo", "\udcff")] == [0.0] * 5


def test_japanese_text_is_fingerprinted_by_character_bigrams() -> None:
    body = "在日米軍を統合軍司令部に改編する方針を日米両政府が東京での2プラス2で確認した。" * 3
    fp = dedupe.fingerprint(make_article(("在日米軍、統合軍司令部に", body), SEED_DAY))
    assert fp.data["lang"] == "ja"
    assert "在日" in fp.data["vec"] and "米軍" in fp.data["vec"]
    assert fp.bands and fp.terms


def test_tokens_mark_what_a_capital_letter_proves() -> None:
    tokens = _features.tokenize(
        "Officials met Lloyd Austin. The U.S. Forces Japan's chief-of-staff"
    )
    assert tokens.terms == [
        "officials", "met", "lloyd", "austin", "the", "us", "forces", "japan", "chief", "of",
        "staff",
    ]  # fmt: skip
    # ambiguous: the first token and each one after a sentence break
    ambiguous = [t for t, a in zip(tokens.terms, tokens.ambiguous, strict=True) if a]
    assert ambiguous == ["officials", "the"]
    assert tokens.joined == [False, True, True, True, False, *[True] * 6]  # not after "."
    assert all(_features.tokenize("Lloyd Austin met", headline=True).ambiguous)
    assert all(_features.tokenize("LLOYD AUSTIN MET IN TOKYO").ambiguous)


def test_cjk_runs_become_bigram_tokens_among_words() -> None:
    tokens = _features.tokenize("Tokyo 在日米軍 Austin")
    assert tokens.terms == ["tokyo", "在日", "日米", "米軍", "austin"]
    assert tokens.ambiguous == [True, True, True, True, False]
    assert tokens.joined == [False, False, False, False, True]


@pytest.mark.parametrize(
    ("text", "shouting"),
    [
        ("BREAKING: QUAKE HITS TOKYO", True),
        ("BREAKING: QUAKE HITS TÔKYÔ", True),  # counted by characters beyond ASCII too
        ("Breaking: quake hits Tokyo", False),
        ("Breaking: quake hits Tôkyô", False),
        ("USFJ JFHQ", False),  # too few letters to tell
    ],
)
def test_all_caps_text_is_shouting(text: str, shouting: bool) -> None:
    assert _features._is_shouting(text) is shouting


def test_top_terms_ties_go_by_name() -> None:
    weights = {"beta": 1.5, "alpha": 1.5, "gamma": 3.0, "delta": 0.5}
    assert _features.top_terms(weights, 3) == ["gamma", "alpha", "beta"]


def test_a_short_text_still_fills_every_signature_bin() -> None:
    signature = _features.signature("quake hits tokyo at dawn".split())
    assert len(signature) == _features.SIGNATURE_SIZE
    assert signature == _features.signature("quake hits tokyo at dawn".split())
    assert _features.signature("too short".split()) == ()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 2**32 - 1), min_size=64, max_size=64),
    st.lists(st.booleans() | st.just(True), min_size=64, max_size=64),
    st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.75, 0.9, 1.0]),
)
def test_the_signature_prefix_never_passes_over_a_copy(
    a: list[int], kept: list[bool], least: float
) -> None:
    b = [v if keep else v + 1 for v, keep in zip(a, kept, strict=True)]
    assert dedupe._may_share(a, b, least) or _features.signature_similarity(a, b) < least


# -- properties ----------------------------------------------------------------------------

_words = st.sampled_from(
    "Tokyo Austin Blinken joint force headquarters earthquake Hualien magnitude 7.4 2024 "
    "July 28 the of and said on Monday Friday 54,000 U.S. Japan's 東京 地震 missile talks "
    "ministers NYPD , . ; \n".split(" ")
)
_text = st.lists(_words, max_size=120).map(" ".join)
_titles = st.lists(_words, max_size=12).map(" ".join)


@st.composite
def articles(draw: st.DrawFn) -> Article:
    when = SEED_DAY + timedelta(hours=draw(st.integers(-200, 200)))
    return Article(
        source=draw(st.sampled_from(["wire", "blog"])),
        title=draw(_titles),
        body=draw(_text),
        url=draw(st.none() | st.sampled_from(["https://a.example/1", "https://b.example/2"])),
        link=None,
        guid=draw(st.none() | st.sampled_from(["g1", "g2"])),
        published=draw(st.none() | st.just(when)),
        fetched=when,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(articles())
def test_fingerprint_is_deterministic_and_json_safe(article: Article) -> None:
    fp = dedupe.fingerprint(article)
    assert dedupe.fingerprint(article) == fp
    assert json.loads(json.dumps(fp.data)) == fp.data
    assert len(fp.terms) <= dedupe.TERMS_PER_ARTICLE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(articles(), articles())
def test_similarities_are_symmetric(a: Article, b: Article) -> None:
    fa, fb = dedupe.fingerprint(a), dedupe.fingerprint(b)
    assert dedupe.text_similarity(fa.data, fb.data) == dedupe.text_similarity(fb.data, fa.data)
    a_to_b = dedupe.compare(a, fa, [Candidate(2, 2, b.when, b.title, stored(fb))])
    b_to_a = dedupe.compare(b, fb, [Candidate(1, 1, a.when, a.title, stored(fa))])
    assert [p.logit for _, p in a_to_b] == [p.logit for _, p in b_to_a]


_CORPUS = [
    *seed_articles(),
    _TOKYO,
    make_article(MANILA_2PLUS2, SEED_DAY + timedelta(days=2)),
    make_article(TOKYO_2PLUS2_COPY, SEED_DAY + timedelta(hours=5), url="https://c.example/9"),
    make_article(NEXT_2PLUS2, SEED_DAY + timedelta(days=1)),
    make_article(QUAKE_HUALIEN, SEED_DAY),
    make_article(QUAKE_NEW_JERSEY, SEED_DAY),
]
_CANDIDATES = [
    Candidate(i + 1, story, a.when, a.title, stored(dedupe.fingerprint(a)))
    for i, (a, story) in enumerate(zip(_CORPUS, (1, 1, 1, 2, 1, 3, 4, 5), strict=True))
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(_CANDIDATES), st.sampled_from(_CORPUS[2:]), st.integers(1, 8))
def test_decide_does_not_depend_on_candidate_order(
    candidates: list[Candidate], article: Article, keep: int
) -> None:
    fp = dedupe.fingerprint(replace(article, url="https://new.example/1"))
    subset = sorted(candidates[:keep], key=lambda c: c.article_id)
    expected = dedupe.decide(article, fp, subset)
    assert dedupe.decide(article, fp, candidates[:keep]) == expected


# -- the bench scripts that tune dedupe ----------------------------------------------------


def _bench_script(name: str, file: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A script of bench/ imported as module ``name`` (dataclasses look it up by name)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "bench" / file
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_tuning_reads_texts_cut_to_a_summary(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    tune = _bench_script("dedupe_tune", "dedupe_tune.py", monkeypatch)
    path = tmp_path / "labelled.jsonl"
    row = {"id": "a1", "story": "s1", "title": "Quake strikes off Sumatra coast",
           "text": "A magnitude 7.4 earthquake\nstruck off the coast of Sumatra on Monday."}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (cut,) = tune.load(path, words=4)
    assert cut.article.body == "A magnitude 7.4 earthquake"
    assert cut.article.title == row["title"]
    (whole,) = tune.load(path)
    assert whole.article.body == row["text"]


# -- the labelled dev set, when it is there ------------------------------------------------

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "stories_dev.jsonl"


@pytest.mark.slow
@pytest.mark.skipif(not DEV.exists(), reason="../shared/eval/stories_dev.jsonl not present")
def test_dev_set_does_not_regress(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = _bench_script("dedupe_tune", "dedupe_tune.py", monkeypatch)
    corpus = tune.Corpus.of(tune.load(DEV))
    scores = tune.score(corpus.rows, tune.stream(corpus).stories)
    assert scores.hard_negative_merge_rate <= 0.03
    assert scores.f1 >= 0.89


def test_benchmark_corpus_exports_rows_eval_stories_groups_by_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.evaluate import run_eval

    cycle = _bench_script("bench_cycle", "cycle.py", monkeypatch)
    rows = cycle.Corpus(8, seed=3).labelled()
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    scores = run_eval(path)
    assert scores["articles"] == len(rows)
    assert scores["gold_stories"] == len({row["story"] for row in rows}) < len(rows)
    # Its events share names by chance; their reports must still be told apart.
    assert scores["pairs_precision"] >= 0.95
    assert scores["pairs_recall"] >= 0.95
