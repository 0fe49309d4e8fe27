"""Benchmark: watchlist matching throughput against the number of watchlists (issue 4).

Run by hand (not part of the test run)::

    .venv/bin/python bench/match.py [--articles 10000] [--naive-articles 300]

Everything is generated from a fixed seed: 10,000 news-like articles (a title and about
400 words, with country, city, organisation and person names drawn on a Zipf curve) and
10 / 100 / 1,000 watchlists shaped like real ones (an entity or @alias AND a context
group; phrases, ORs, NOTs, trailing wildcards, proximity, title: restrictions). For each
count it prints the matcher's articles/s over all articles, a naive loop's articles/s
(every query's leaves compiled to ``\\bword\\b`` regexes, each tree evaluated with
short-circuits on every article; over the first --naive-articles, as it is slow), their
ratio, the matches per article, and on how many sampled articles the two found the
same watchlists. Rates are per second of this process's CPU time, so other load on the
machine does not count against them (it still slows the caches). Target (issue 4): at
1,000 watchlists, >= 2,000 articles/s on one core and >= 20x the naive loop.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    parse_query,
)

COMMON = """the of and to in a is that for on it with as was by at be this from have or are
not but an they which one you were all we her she there would their will when who him been
has more if no out do so can what up said about other into than its time only could new them
these some may then two first any like now my such make over our even most me state after
also made many did must before back see through way where get much go well your know should
down work year because come people just take day each those how good very three however
being government week officials told statement plan plans report country countries region
regional talks meeting visit visits leaders leader minister ministry president press agency
security policy policies program programs support response concerns concern issue issues
public official local national international economic trade cooperation agreement agreements
announced announce expected including during while since against between under later earlier
month months today tuesday wednesday thursday friday monday weekend spokesman spokeswoman
according added noted stressed called calls call urged warned""".split()

DOMAIN = """military exercise exercises drill drills deterrence deterrent missile missiles
alliance treaty navy naval army air force forces command commander headquarters joint patrol
patrols bomber bombers destroyer destroyers carrier carriers submarine submarines nuclear
umbrella defense defence sanctions troops base bases deployment deployed radar satellite
launch launched ballistic hypersonic warship warships coast guard strait border airspace
intercept intercepted surveillance reconnaissance drone drones fighter fighters jets
ammunition weapons arms artillery readiness posture upgrade upgraded operations operational
capability capabilities interoperability logistics maritime amphibious marines garrison
escalation tension tensions provocation provocative""".split()

COUNTRIES = """Japan China Russia Korea Taiwan Philippines Australia India Vietnam Indonesia
Malaysia Thailand Singapore Mongolia Canada Mexico Brazil Germany France Britain Italy Spain
Poland Ukraine Turkey Iran Iraq Israel Egypt Pakistan Bangladesh Myanmar Cambodia Laos Nepal
Sweden Finland Norway Denmark Netherlands""".split()

CITIES = """Tokyo Beijing Moscow Seoul Pyongyang Taipei Manila Canberra Hanoi Jakarta Okinawa
Yokosuka Sasebo Misawa Iwakuni Yokota Guam Hawaii Honolulu Busan Osaka Nagasaki Kadena Naha
Shanghai Vladivostok Sakhalin Kyushu Hokkaido Darwin Sydney Delhi Mumbai Bangkok Kabul Tehran
Ankara Berlin Paris London Rome Madrid Warsaw Kyiv Washington Brussels Geneva Vienna Oslo
Helsinki Stockholm Ottawa Ankara""".split()

FIRST = """Hiro Kenji Takeshi Yuki Akira Ivan Sergei Dmitri Wei Li Chen Kim Park Lee John
Michael David James Robert Maria Anna Elena Sofia Laura Carlos Pedro Ahmed Omar Ravi Arjun
Nguyen Tran Budi Siti Lars Erik Olga Irina""".split()

LAST = """Tanaka Suzuki Sato Watanabe Yamamoto Petrov Ivanov Smirnov Zhang Wang Liu Huang
Kim Choi Jung Smith Johnson Williams Brown Jones Garcia Miller Davis Martinez Lopez Gonzalez
Wilson Anderson Thomas Taylor Moore Jackson Martin Nakamura Kobayashi Kato Yoshida Yamada""".split()

SUFFIX = ["Industries", "Systems", "Dynamics", "Aerospace", "Heavy Industries", "Group"]
SYLLABLES = "ka ri to mo na sa vel dor an tek lum or zar qui bel fin gar hol".split()

NEGATABLE = [w for w in COMMON + DOMAIN if w not in ("and", "or", "not")]
JAPANESE = ["在日米軍", "統合軍司令部", "拡大抑止", "日米", "中国軍", "ロシア軍", "北朝鮮"]


def make_entities(rng: random.Random) -> list[str]:
    """About 1,400 names: countries, cities, acronyms, companies and people."""
    acronyms = {"".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(rng.randint(3, 5)))
                for _ in range(300)}  # fmt: skip
    companies = {"".join(rng.sample(SYLLABLES, 2)).title() + " " + rng.choice(SUFFIX)
                 for _ in range(300)}  # fmt: skip
    people = {f"{f} {last}" for f in FIRST for last in LAST}
    names = [*COUNTRIES, *CITIES, *sorted(acronyms), *sorted(companies),
             *rng.sample(sorted(people), 700)]  # fmt: skip
    rng.shuffle(names)
    return names


def zipf_picker(rng: random.Random, items: Sequence[str], s: float = 1.1) -> Callable[[], str]:
    weights = [1 / (i + 1) ** s for i in range(len(items))]
    return lambda: rng.choices(items, weights)[0]


def make_articles(rng: random.Random, count: int, entities: list[str]) -> list[tuple[str, str]]:
    common, domain = zipf_picker(rng, COMMON), zipf_picker(rng, DOMAIN, 0.9)
    entity = zipf_picker(rng, entities, 0.9)

    def word() -> str:
        roll = rng.random()
        return common() if roll < 0.74 else domain() if roll < 0.96 else entity()

    def sentence(length: int) -> str:
        words = [word() for _ in range(length)]
        words[0] = words[0][:1].upper() + words[0][1:]
        if length > 10:
            words[length // 2] += ","
        return " ".join(words) + "."

    articles = []
    for _ in range(count):
        title = " ".join([entity(), *(word() for _ in range(rng.randint(5, 9)))])
        body, words = [], 0
        while words < 400:
            length = rng.randint(8, 22)
            body.append(sentence(length))
            words += length
        articles.append((title, " ".join(body)))
    return articles


def make_aliases(rng: random.Random, entities: list[str]) -> dict[str, list[str]]:
    aliases = {}
    for i in range(60):
        entries = [_quoted(e) for e in rng.sample(entities, rng.randint(2, 5))]
        aliases[f"topic{i}"] = [*entries, rng.choice(JAPANESE)]
    return aliases


def _quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text


def make_watchlists(rng: random.Random, count: int, entities: list[str],
                    aliases: dict[str, list[str]]) -> list[str]:  # fmt: skip
    def topic() -> str:
        roll = rng.random()
        if roll < 0.3:
            return "@" + rng.choice(list(aliases))
        if roll < 0.55:
            return "(" + " OR ".join(_quoted(e) for e in rng.sample(entities, 3)) + ")"
        return _quoted(rng.choice(entities))

    def context() -> str:
        items = []
        for _ in range(rng.randint(2, 5)):
            roll, word = rng.random(), rng.choice(DOMAIN)
            items.append(word[: max(4, len(word) - 3)] + "*" if roll < 0.25 else
                         f'"{word} {rng.choice(DOMAIN)}"' if roll < 0.45 else word)  # fmt: skip
        return "(" + " OR ".join(items) + ")"

    templates = [
        lambda: f"{topic()} AND {context()}",
        lambda: f"{topic()} {context()} -{rng.choice(NEGATABLE)}",
        lambda: f'{topic()} AND "{rng.choice(COUNTRIES)} {rng.choice(DOMAIN)}"~10',
        lambda: f"title:{topic()} AND {context()}",
        lambda: (
            f"({topic()} OR {topic()}) AND NOT ({rng.choice(DOMAIN)} OR {rng.choice(NEGATABLE)})"
        ),
    ]
    return [rng.choice(templates)() for _ in range(count)]


# --- the naive loop: one regex per leaf, every tree on every article ------------------------


def _word_rx(word: str) -> str:
    return r"[\W_]+".join(re.escape(w) for w in re.findall(r"[^\W_]+", word))


def compile_naive(query: Query) -> Callable[[str, str], bool]:
    """A predicate over (title, body) evaluating ``query`` with plain regexes."""
    return _naive(query, ("title", "body"))


def _naive(query: Query, fields: tuple[str, ...]) -> Callable[[str, str], bool]:
    if isinstance(query, And | Or):
        parts = [_naive(q, fields) for q in query.items]
        if isinstance(query, And):
            return lambda t, b: all(p(t, b) for p in parts)
        return lambda t, b: any(p(t, b) for p in parts)
    if isinstance(query, Not):
        inner = _naive(query.item, fields)
        return lambda t, b: not inner(t, b)
    if isinstance(query, Field):
        return _naive(query.item, (query.name,))
    rx = re.compile(_leaf_rx(query), re.IGNORECASE)
    if fields == ("title",):
        return lambda t, b: rx.search(t) is not None
    return lambda t, b: rx.search(t) is not None or rx.search(b) is not None


def _leaf_rx(leaf: Term | Prefix | Phrase | Proximity) -> str:
    """The usual hand-written form: ``\\bword\\b``, case-insensitive, on the raw text."""
    if isinstance(leaf, Prefix):
        return rf"\b{_word_rx(leaf.text[:-1])}"
    if isinstance(leaf, Proximity):
        a, b = (_word_rx(w) for w in leaf.text.split())
        gap = rf"(?:[\W_]+[^\W_]+){{0,{leaf.distance}}}[\W_]+"
        return rf"\b(?:{a}{gap}{b}|{b}{gap}{a})\b"
    return rf"\b{_word_rx(leaf.text)}\b"


# --- the run --------------------------------------------------------------------------------


def rate(
    run: Callable[[str, str], list[str]], articles: list[tuple[str, str]]
) -> tuple[float, list[list[str]]]:
    """Articles per second of CPU time (this process only), and the names matched."""
    start = time.process_time()
    results = [run(title, body) for title, body in articles]
    return len(articles) / (time.process_time() - start), results


def bench(count: int, articles: list[tuple[str, str]], naive_n: int, rng: random.Random,
          entities: list[str], aliases: dict[str, list[str]]) -> None:  # fmt: skip
    texts = make_watchlists(rng, count, entities, aliases)
    queries = {f"w{i}": parse_query(t, aliases) for i, t in enumerate(texts)}
    start = time.process_time()
    matcher = Matcher(queries)
    built = time.process_time() - start
    ours, found = rate(lambda t, b: [m.watchlist for m in matcher.match(t, b)], articles)
    preds = [(name, compile_naive(q)) for name, q in queries.items()]
    sample = articles[:naive_n]
    naive, expected = rate(lambda t, b: [n for n, p in preds if p(t, b)], sample)
    agree = sum(f == e for f, e in zip(found, expected, strict=False))
    per = sum(map(len, found)) / len(found)
    line = (
        f"{count:>5} watchlists: {ours:8.0f} articles/s   naive {naive:7.1f} articles/s "
        f"({len(sample)} articles)   x{ours / naive:6.1f}   matches/article {per:5.2f}   "
        f"agree {agree}/{len(sample)}   build {built * 1000:.0f} ms"
    )
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--naive-articles", type=int, default=300)
    parser.add_argument("--counts", default="10,100,1000")
    args = parser.parse_args()
    rng = random.Random(20240728)
    entities = make_entities(rng)
    articles = make_articles(rng, args.articles, entities)
    aliases = make_aliases(rng, entities)
    words = sum(len(b.split()) for _, b in articles) / len(articles)
    print(f"{len(articles)} articles, {words:.0f} body words on average")
    for count in (int(c) for c in args.counts.split(",")):
        bench(count, articles, args.naive_articles, rng, entities, aliases)


if __name__ == "__main__":
    main()
