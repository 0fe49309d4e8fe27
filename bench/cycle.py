"""Poll-cycle benchmark (issue 9): ``monitor run --once`` against reader, whole processes.

Run by hand from the repository root::

    .venv/bin/python bench/cycle.py                      # 500 feeds, with reader
    .venv/bin/python bench/cycle.py --feeds 500 1000 2000 --reader-feeds 500

For each N it generates a deterministic corpus of N feeds (30-60 items each, RSS 2.0 and
Atom, HTML in descriptions, some ``content:encoded``; some items syndicated by several
feeds and some events reported by several outlets), serves it on 127.0.0.1 (a threaded
server with TCP_NODELAY, ETag and Last-Modified, 304 for a matching conditional request),
writes a config with every feed, 10 watchlists and one JSON webhook, and times three
cycles as whole processes:

1. all new (an empty database);
2. nothing changed (every feed answers 304);
3. 10% of the feeds gained one new entry.

Printed per cycle: wall and CPU seconds, entries/s, peak RSS of the largest process and
peak PSS of the whole process tree (sampled; it counts worker processes too), and for
the monitor the seconds per stage from its ``cycle.done`` and ``deliver.done`` lines.
Then how well the monitor's stories match the events the corpus was generated from
(pairs precision and recall), so a faster cycle is seen not to decide worse.

The same cycles run with reader's ``update_feeds(workers=4, scheduled=False)`` (every
feed, as ``run --once`` polls every source) when its benchmark venv exists
(``--reader-python``, default ``/tmp/readerbench/bin/python``)::

    python3 -m venv /tmp/readerbench
    /tmp/readerbench/bin/pip install reader sgmllib3k

reader is never a dependency of this project; without that venv the comparison is
skipped with a message. ``--postgres URL`` has the monitor store in a new schema of that
PostgreSQL database (dropped afterwards) instead of a SQLite file. The monitor runs as
this venv's ``monitor`` command; to measure
one commit while the tree is being edited, run from a ``git worktree`` with PYTHONPATH
set to it. ``--serve DIR`` only serves a corpus and writes its config (and
``events.json``, the event of each item's link), for profiling. ``--export FILE`` only
writes the corpus as labelled JSON lines, so ``monitor eval stories`` and
``bench/dedupe_tune.py`` can score story dedupe on it in memory: events that share
names by chance, as defence news shares its ministers and bases, check that a change
tuned on real labelled news does not merge more of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # corpus dates lie in the 3 weeks before
MONITOR = [str(Path(sys.executable).with_name("monitor"))]
WATCHLISTS = {
    "usfj-jfhq": '@usfj AND (@jfhq OR command OR upgrade*)',
    "deterrence": '@extended_deterrence AND (@japan OR "United States" OR US)',
    "two-plus-two": "@two_plus_two AND @japan",
    "axis-military": "((@china AND @russia) OR (@russia AND @dprk) OR (@china AND @dprk)) "
    'AND (military OR exercise* OR drill* OR "joint patrol" OR arms OR weapons)',
    "missiles": '(missile* OR ICBM OR "ballistic missile") AND (@dprk OR launch*)',
    "taiwan-strait": '"Taiwan Strait" OR (Taiwan AND (blockade OR incursion* OR drill*))',
    "shipbuilding": "title:(shipyard OR shipbuilding) OR (navy AND contract*)",
    "cyber": '(cyber* OR ransomware OR "state-sponsored") AND (attack* OR breach*)',
    "okinawa": "Okinawa OR Henoko OR Futenma OR Kadena",
    "sanctions": 'sanction* AND (@russia OR @dprk OR @china) -"lifted"',
}
ALIASES = {
    "usfj": ['"US Forces Japan"', '"U.S. Forces Japan"', "USFJ"],
    "jfhq": ['"joint force headquarters"', '"joint headquarters"', '"joint force HQ"'],
    "two_plus_two": ['"2+2"', '"two-plus-two"', '"Security Consultative Committee"'],
    "extended_deterrence": ['"extended deterrence"', '"nuclear umbrella"'],
    "japan": ["Japan", "Japanese", "Tokyo"],
    "china": ["China", "Chinese", "PLA", "Beijing"],
    "russia": ["Russia", "Russian", "Moscow", "Kremlin"],
    "dprk": ['"North Korea"', '"North Korean"', "DPRK", "Pyongyang"],
}
TOPICAL = [  # phrases some events carry, so watchlists match a few percent of items
    "US Forces Japan", "joint force headquarters", "extended deterrence", "Japan",
    "China", "Russia", "North Korea", "military exercise", "ballistic missile launch",
    "Taiwan Strait", "navy contract", "cyber attack", "Okinawa", "sanctions", "Tokyo",
    "2+2", "Pyongyang", "Kremlin", "drills", "shipbuilding",
]


# -- corpus ---------------------------------------------------------------------------


def _words() -> list[str]:
    from wordfreq import top_n_list  # the project's own dependency

    return [w for w in top_n_list("en", 12000)[150:] if w.isalpha() and len(w) > 2]


SYLLABLES = "ka to ri na mo se lu va den gar mir sol tan bre qui zor hel pax ul an".split()


@dataclass
class Event:
    names: list[str]
    numbers: list[str]
    words: list[str]
    topics: list[str]
    when: datetime


@dataclass
class Item:
    guid: str
    link: str
    title: str
    paragraphs: list[str]
    published: datetime
    long: bool  # has content:encoded / Atom content
    event: int  # the event it reports (an index into Corpus.events): its true story


@dataclass
class Feed:
    index: int
    atom: bool
    items: list[Item] = field(default_factory=list)
    extra: Item | None = None  # the new entry of cycle 3, when this feed gets one

    @property
    def path(self) -> str:
        return f"/feeds/{self.index}.xml"


class Corpus:
    """``n`` feeds, deterministic for a given ``seed``."""

    def __init__(self, n: int, seed: int = 9) -> None:
        self.rng = random.Random(seed)
        self.vocab = _words()
        # Names of 2-3 syllables: 8,400 of them, which n * 16 events of three weeks
        # share by chance past 500 feeds (each name in about 11 events at 2,000), so
        # larger corpora draw names of up to 4 (the corpus of 500 stays as it was).
        self.syllables = 3 if n <= 500 else 4
        self.events = [self._event() for _ in range(max(200, n * 16))]
        self.feeds = [Feed(i, atom=i % 3 == 2) for i in range(n)]
        for feed in self.feeds:
            for k in range(self.rng.randint(30, 60)):
                feed.items.append(self._item(feed, k))
        self._syndicate()
        for feed in self.rng.sample(self.feeds, max(1, n // 10)):
            self.events.append(self._event(fresh=True))
            feed.extra = self._item(feed, 10_000, event=len(self.events) - 1)
        self.changed = False

    def _name(self) -> str:
        return "".join(self.rng.choices(SYLLABLES, k=self.rng.randint(2, self.syllables))
                       ).capitalize()  # fmt: skip

    def _event(self, fresh: bool = False) -> Event:
        rng = self.rng
        topics = rng.sample(TOPICAL, rng.choice((0, 0, 0, 1, 2)))
        when = BASE - timedelta(hours=1 if fresh else rng.randint(2, 21 * 24))
        return Event(names=[self._name() for _ in range(rng.randint(2, 4))],
                     numbers=[str(rng.randint(2, 9000)) for _ in range(rng.randint(1, 3))],
                     words=rng.sample(self.vocab, 12), topics=topics, when=when)  # fmt: skip

    def _sentence(self, event: Event) -> str:
        rng = self.rng
        words = rng.sample(self.vocab, rng.randint(8, 18)) + rng.sample(event.words, 3)
        if rng.random() < 0.6:
            words.insert(rng.randrange(len(words)), rng.choice(event.names))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(event.numbers))
        if event.topics and rng.random() < 0.4:
            words.insert(rng.randrange(len(words)), rng.choice(event.topics))
        rng.shuffle(words)
        return _upper_first(" ".join(words)) + "."

    def _item(self, feed: Feed, k: int, event: int | None = None) -> Item:
        rng = self.rng
        # A few events get many reports (Zipf-like): other outlets' write-ups of one story.
        if event is None:
            event = (min(int(rng.paretovariate(1.2)) - 1, len(self.events) - 1)
                     if rng.random() < 0.15 else rng.randrange(len(self.events)))  # fmt: skip
        number, event = event, self.events[event]
        title = _upper_first(" ".join([rng.choice(event.names), *rng.sample(event.words, 3),
                                       *rng.sample(self.vocab, 4), *event.topics[:1]]))
        long = rng.random() < 0.25
        paragraphs = [" ".join(self._sentence(event) for _ in range(rng.randint(2, 4)))
                      for _ in range(rng.randint(4, 8) if long else rng.randint(1, 3))]
        return Item(guid=f"f{feed.index}-{k}", link=f"https://site{feed.index}.example/n/{k}",
                    title=title, paragraphs=paragraphs, long=long, event=number,
                    published=event.when + timedelta(minutes=rng.randint(0, 600)))  # fmt: skip

    def _syndicate(self) -> None:
        """Copy 3% of items into another feed, under that feed's own link and GUID."""
        for feed in self.feeds:
            for item in feed.items:
                if self.rng.random() < 0.03 and len(self.feeds) > 1:
                    other = self.rng.choice(self.feeds)
                    k = len(other.items)
                    other.items.append(Item(f"f{other.index}-{k}",
                                            f"https://site{other.index}.example/n/{k}",
                                            item.title, item.paragraphs, item.published,
                                            item.long, item.event))  # fmt: skip

    def events_by_link(self) -> dict[str, int]:
        """The event each item's link reports, new entries of cycle 3 included."""
        items = [it for f in self.feeds for it in [*f.items, *([f.extra] if f.extra else [])]]
        return {it.link: it.event for it in items}

    def labelled(self) -> list[dict[str, Any]]:
        """The items as ``monitor eval stories`` rows (the event as the story), feed by
        feed as an all-new cycle meets them; cycle 3's new entries left out."""
        return [{"id": it.guid, "story": it.event, "title": it.title,
                 "text": "\n\n".join(it.paragraphs), "published": it.published.isoformat(),
                 "url": it.link, "source": f"site{f.index}.example"}
                for f in self.feeds for it in f.items]  # fmt: skip

    def document(self, feed: Feed) -> bytes:
        items = ([feed.extra] if self.changed and feed.extra else []) + feed.items
        return (_atom if feed.atom else _rss)(feed, items)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _html(item: Item, short: bool) -> str:
    paras = item.paragraphs[:1] if short else item.paragraphs
    out = []
    for i, text in enumerate(paras):
        words = text.split(" ")
        if len(words) > 6:  # some inline markup and a link, as real descriptions have
            words[2] = f"<strong>{words[2]}</strong>"
            words[5] = f'<a href="{item.link}?ref=p{i}">{words[5]}</a>'
        out.append(f"<p>{' '.join(words)}</p>")
    if not short:
        out.insert(1, f'<figure><img src="{item.link}.jpg" alt="photo"/>'
                      f"<figcaption>{item.title[:40]}</figcaption></figure>")  # fmt: skip
    return "\n".join(out)


def _rss(feed: Feed, items: list[Item]) -> bytes:
    parts = []
    for it in items:
        content = (f"<content:encoded><![CDATA[{_html(it, False)}]]></content:encoded>"
                   if it.long else "")  # fmt: skip
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{escape(it.link)}</link>"
            f"<description>{escape(_html(it, it.long))}</description>{content}"
            f'<guid isPermaLink="false">{it.guid}</guid>'
            f"<pubDate>{format_datetime(it.published)}</pubDate>"
            f"<category>world</category><dc:creator>Staff {feed.index}</dc:creator></item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Site {feed.index} news</title><link>https://site{feed.index}.example/</link>"
        f"<description>News from site {feed.index}</description><language>en</language>\n"
        + "".join(parts) + "</channel></rss>\n"
    ).encode()


def _atom(feed: Feed, items: list[Item]) -> bytes:
    parts = []
    for it in items:
        body = (f'<content type="html">{escape(_html(it, False))}</content>' if it.long
                else "")  # fmt: skip
        parts.append(
            f"<entry><title>{escape(it.title)}</title><link rel=\"alternate\" "
            f"href={quoteattr(it.link)}/><id>urn:site{feed.index}:{it.guid}</id>"
            f"<published>{it.published.isoformat()}</published>"
            f"<updated>{it.published.isoformat()}</updated>"
            f"<author><name>Staff {feed.index}</name></author>"
            f'<summary type="html">{escape(_html(it, True))}</summary>{body}</entry>\n'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Site {feed.index} news</title><id>urn:site{feed.index}</id>"
        f'<link href="https://site{feed.index}.example/"/>'
        f"<updated>{BASE.isoformat()}</updated>\n" + "".join(parts) + "</feed>\n"
    ).encode()


# -- server ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Without TCP_NODELAY every keep-alive answer stalls ~40 ms (Nagle, delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class FeedServer:
    """Serves a corpus with validators; counts 200s, 304s and webhook posts."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.cache: dict[str, tuple[bytes, str, str]] = {}
        self.counts = {"200": 0, "304": 0, "hook": 0}
        self.lock = threading.Lock()
        self.render()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # the webhook notifier
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.counts["hook"] += 1
                self._send(200, b"{}", {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                found = outer.cache.get(self.path)
                if found is None:
                    self._send(404, b"not found", {})
                    return
                body, etag, modified = found
                inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                fresh = inm == etag if inm is not None else ims == modified
                with outer.lock:
                    outer.counts["304" if fresh else "200"] += 1
                headers = {"ETag": etag, "Last-Modified": modified}
                if fresh:
                    self._send(304, b"", headers)
                    return
                ctype = "application/atom+xml" if b"<feed" in body[:200] else "application/rss+xml"
                self._send(200, body, {**headers, "Content-Type": f"{ctype}; charset=utf-8"})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self) -> None:
        version = 1 if self.corpus.changed else 0
        modified = format_datetime(BASE + timedelta(hours=version), usegmt=True)
        for feed in self.corpus.feeds:
            body = self.corpus.document(feed)
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            self.cache[feed.path] = (body, etag, modified)

    def set_changed(self, changed: bool) -> None:
        self.corpus.changed = changed
        self.render()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def take_counts(self) -> dict[str, int]:
        with self.lock:
            out, self.counts = self.counts, {"200": 0, "304": 0, "hook": 0}
        return out

    def size(self) -> int:
        return sum(len(body) for body, _, _ in self.cache.values())


# -- running --------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_mb: float
    pss_mb: float
    entries: int
    stages: dict[str, float]
    counts: dict[str, int]
    output: str


def _tree_pss(root: int) -> float:
    """PSS in MB of ``root`` and its descendants (shared pages counted once overall)."""
    pids, total = [root], 0
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    while pids:
        pid = pids.pop()
        pids.extend(children.get(pid, ()))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float,
                                                                             float, str, str]:
    """Run ``cmd``; return wall, CPU (user+sys, children included), max RSS (MB) of its
    largest process, peak PSS (MB) of its process tree, stdout and stderr."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    # /usr/bin/time reports the child's own peak: a child forked from this process would
    # start from this process's (the corpus's) resident size.
    maxrss = Path(tempfile.mkstemp(suffix=".maxrss")[1])
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(maxrss), *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    rss = int(maxrss.read_text().split()[-1]) / 1024
    maxrss.unlink()
    return wall, usage.ru_utime + usage.ru_stime, rss, peak, stdout, stderr


def write_config(path: Path, server: FeedServer, database: str, workers: int | None) -> None:
    import yaml

    config: dict[str, Any] = {
        "database": database,
        # Real feeds live on hundreds of hosts; here all are on 127.0.0.1.
        "poll": {"interval": "15m", "timeout": "30s", "concurrency": 16, "per_host": 16},
        "notifiers": {"desk-hook": "json://" + server.url("/hook").split("://", 1)[1]},
        "aliases": ALIASES,
        "feeds": [{"name": f"site {f.index}", "url": server.url(f.path)}
                  for f in server.corpus.feeds],
        "watchlists": [{"name": k, "query": q, "notify": ["desk-hook"]}
                       for k, q in WATCHLISTS.items()],
    }  # fmt: skip
    if workers is not None:
        config["poll"]["parse_workers"] = workers
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def run_monitor(config: Path, server: FeedServer) -> Run:
    cmd = [*MONITOR, "run", "--once", "--config", str(config), "--log-format", "json",
           "--log-level", "info"]  # fmt: skip
    wall, cpu, rss, pss, stdout, stderr = run_process(cmd, {**os.environ, "NO_COLOR": "1"})
    stages: dict[str, float] = {}
    entries = 0
    for line in stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "cycle.done":
            entries = int(rec.get("entries", 0))
            stages.update({k[:-2]: float(v) for k, v in rec.items() if k.endswith("_s")})
        elif rec.get("event") == "deliver.done":
            stages["notify"] = float(rec["notify_s"])
    return Run(wall, cpu, rss, pss, entries, stages, server.take_counts(), stdout.strip())


READER_SCRIPT = """
import sys, time
from reader import make_reader
db, urls = sys.argv[1], sys.argv[2]
r = make_reader(db)
for url in open(urls).read().split():
    r.add_feed(url, exist_ok=True)
before = r.get_entry_counts().total
r.update_feeds(workers=4, scheduled=False)
print(r.get_entry_counts().total - before)
"""


def run_reader(python: str, workdir: Path, server: FeedServer) -> Run:
    script = workdir / "reader_cycle.py"
    script.write_text(READER_SCRIPT)
    urls = workdir / "urls.txt"
    urls.write_text("\n".join(server.url(f.path) for f in server.corpus.feeds))
    env = {**os.environ, "READER_NO_VENDORED_FEEDPARSER": "1"}
    wall, cpu, rss, pss, stdout, _ = run_process(
        [python, str(script), str(workdir / "reader.sqlite"), str(urls)], env)
    counts = server.take_counts()
    return Run(wall, cpu, rss, pss, counts["200"] and int(stdout.split()[-1]), {}, counts, "")


# -- report ---------------------------------------------------------------------------


def story_scores(database: str, events: dict[str, int]) -> str:
    """Pairs precision and recall of the stored stories against the corpus's events: what
    a speed-up must not trade away (an article and a syndicated copy of it are one pair of
    the same event, as two outlets' write-ups are), scored as ``monitor eval stories``
    scores them."""
    from sqlalchemy import create_engine, text

    from monitor.evaluate import pair_scores

    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT link, story_id FROM articles "
                                     "WHERE link IS NOT NULL")).all()  # fmt: skip
    finally:
        engine.dispose()
    labelled = [(str(events[link]), story) for link, story in rows if link in events]
    scores = pair_scores([e for e, _ in labelled], [s for _, s in labelled],
                         [None] * len(labelled))  # fmt: skip
    return (f"stories vs the corpus's events ({len(labelled)} articles): pairs precision "
            f"{scores['pairs_precision']:.3f} recall {scores['pairs_recall']:.3f} "
            f"F1 {scores['pairs_f1']:.3f}")


CYCLES = ("all new", "unchanged", "10% changed")
STAGES = ("fetch", "parse", "normalize", "dedupe", "match", "store", "notify")


def cycles(run_one: Any, server: FeedServer, count: int = 3) -> list[Run]:
    """The first ``count`` of the three cycles (all new, unchanged, 10% changed)."""
    server.set_changed(False)
    server.take_counts()
    runs = [run_one() for _ in range(min(count, 2))]
    if count > 2:
        server.set_changed(True)
        runs.append(run_one())
        server.set_changed(False)
    return runs


def say(text: str = "", **kwargs: Any) -> None:
    print(text, **kwargs)


def show(name: str, runs: list[Run], entries_total: int) -> None:
    say(f"  {name}")
    for label, r in zip(CYCLES, runs, strict=False):
        rate = entries_total / r.wall if label == "all new" else float("nan")
        say(f"    {label:12s} wall {r.wall:6.2f}s  cpu {r.cpu:6.2f}s  "
              f"maxrss {r.maxrss_mb:5.0f} MB  tree pss {r.pss_mb:5.0f} MB  "
              f"200/304 {r.counts['200']}/{r.counts['304']}"
              + (f"  {rate:6.0f} entries/s" if label == "all new" else "")
              + (f"  hooks {r.counts['hook']}" if r.counts.get("hook") else ""))  # fmt: skip
        if r.stages:
            say("      stages: " + "  ".join(f"{s} {r.stages.get(s, 0):.2f}s" for s in STAGES))
        if r.output:
            say(f"      {r.output.splitlines()[-1]}")


def serve(n: int, folder: Path, workers: int | None) -> None:
    server = FeedServer(Corpus(n))
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder / "monitor.yaml", server, f"sqlite:///{folder / 'monitor.db'}", workers)
    (folder / "events.json").write_text(json.dumps(server.corpus.events_by_link()))
    say(f"serving {n} feeds; config {folder / 'monitor.yaml'}; 'changed' on stdin "
          "toggles the new entries", flush=True)  # fmt: skip
    try:
        for line in sys.stdin:
            if line.strip() == "changed":
                server.set_changed(not server.corpus.changed)
                say(f"changed={server.corpus.changed}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, nargs="+", default=[500])
    parser.add_argument("--reader-feeds", type=int, nargs="*", default=[500],
                        help="corpus sizes also run with reader")  # fmt: skip
    parser.add_argument("--reader-python", default="/tmp/readerbench/bin/python")
    parser.add_argument("--workers", type=int, default=None,
                        help="poll.parse_workers for the monitor (default: its own)")  # fmt: skip
    parser.add_argument("--cycles", type=int, choices=(1, 2, 3), default=3,
                        help="run only the first 1 or 2 cycles (1: the all-new one, "
                        "whose peak RSS --feeds 500 1000 2000 compares)")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folders (and PostgreSQL schemas)")  # fmt: skip
    parser.add_argument("--postgres", metavar="URL",
                        help="store in a new schema of this PostgreSQL database instead of "
                        "a SQLite file, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/"
                        "test (reader keeps its SQLite file)")  # fmt: skip
    parser.add_argument("--serve", metavar="DIR", type=Path,
                        help="only serve the first corpus size and write DIR/monitor.yaml "
                        "(for profiling by hand); Ctrl-C stops")  # fmt: skip
    parser.add_argument("--export", metavar="FILE", type=Path,
                        help="only write the first corpus size's items as labelled JSON "
                        "lines (the event as the story) for 'monitor eval stories' and "
                        "bench/dedupe_tune.py")  # fmt: skip
    args = parser.parse_args()
    if args.export:
        rows = Corpus(args.feeds[0]).labelled()
        with args.export.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
        say(f"{len(rows)} labelled items of {args.feeds[0]} feeds -> {args.export}")
        return
    if args.serve:
        serve(args.feeds[0], args.serve, args.workers)
        return
    have_reader = Path(args.reader_python).exists()
    if not have_reader:
        say(f"reader comparison skipped: no {args.reader_python} (see the docstring)")
    for n in args.feeds:
        started = time.perf_counter()
        corpus = Corpus(n)
        server = FeedServer(corpus)
        total = sum(len(f.items) for f in corpus.feeds)
        say(f"N={n}: {total} entries, {server.size() / 1e6:.1f} MB, corpus built in "
              f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        workdir = Path(tempfile.mkdtemp(prefix=f"cycle{n}-"))
        database, schema = f"sqlite:///{workdir / 'monitor.db'}", None
        if args.postgres:
            from daemons import fresh_schema  # beside this script

            database, schema = fresh_schema(args.postgres)
        try:
            config = workdir / "monitor.yaml"
            write_config(config, server, database, args.workers)
            results = {"monitor": cycles(partial(run_monitor, config, server), server,
                                         args.cycles)}  # fmt: skip
            if have_reader and n in args.reader_feeds:
                results["reader"] = cycles(
                    partial(run_reader, args.reader_python, workdir, server), server,
                    args.cycles)  # fmt: skip
            for name, runs in results.items():
                show(name, runs, total)
            say(f"  {story_scores(database, corpus.events_by_link())}")
            if "reader" in results and args.cycles == 3:
                m, r = results["monitor"], results["reader"]
                say(f"  monitor/reader: all-new entries/s x{r[0].wall / m[0].wall:.2f}, "
                      f"unchanged wall x{m[1].wall / r[1].wall:.2f}, "
                      f"10% changed / all new {m[2].wall / m[0].wall:.1%} "
                      f"(reader {r[2].wall / r[0].wall:.1%})")  # fmt: skip
        finally:
            server.server.shutdown()
            if schema is not None and not args.keep:
                from daemons import drop_schema

                drop_schema(args.postgres, schema)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                say(f"  kept {workdir}" + (f" and schema {schema}" if schema else ""))


if __name__ == "__main__":
    main()
