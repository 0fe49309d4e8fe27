"""Benchmark: one poll cycle over 2,000 local sources with 1, 2 and 3 daemons (issue 7).

Run by hand (not part of the test run)::

    .venv/bin/python bench/daemons.py [--sources 2000] [--entries 2] [--daemons 1,2,3]
                                      [--postgres URL] [--no-sqlite]

One threaded HTTP server on 127.0.0.1 (TCP_NODELAY) serves a generated small RSS feed per
source (``--entries`` items each, unrelated stories, one item in ten matching the
watchlist). For each setup (1, 2, 3 daemons on PostgreSQL, then 1 on SQLite) the
database starts empty (a fresh PostgreSQL schema, a fresh SQLite file), every source is
due, and N daemon processes, started beforehand and released together, each run the
daemon's poll job (``Pipeline.run_cycle``: claim a batch, fetch, parse, dedupe, match,
store; again until nothing is due). A cold cycle, then ``--warm`` warm ones, per setup:

- cold: every entry is new (dedupe, match and one transaction per article);
- warm: every source is made due again and polled with unchanged feeds (every entry is
  recognised as seen: fetch, parse, one lookup per source).

Printed per cycle: seconds from the release to the last daemon's end, sources/s and
entries/s over all daemons, the CPU seconds of the daemons' main processes (their parse
workers and PostgreSQL are not counted), the machine's load average at the end (other
work on the machine slows the daemons: interleave setups, ``--daemons 1,2,1,2``, and
compare runs made at a similar load), and the sources each daemon polled.
Targets (issue 7): two daemons >= 0.9x one, the sources split evenly.
``poll.per_host`` is raised to ``poll.concurrency`` (all sources share one host here; the
default of 2 is politeness towards real sites).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES = os.environ.get("MONITOR_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")  # fmt: skip
PHRASE = "joint force headquarters"


def _out(line: str) -> None:
    print(line, flush=True)


# -- the feed server -------------------------------------------------------------------


def make_feeds(sources: int, entries: int, seed: int = 7) -> list[bytes]:
    """One small RSS document per source; every item a story of its own."""
    from datetime import UTC, datetime, timedelta

    from wordfreq import top_n_list

    words = [w for w in top_n_list("en", 6000)[400:] if w.isalpha() and len(w) > 3]
    rng = random.Random(seed)
    now = datetime.now(UTC)
    feeds = []
    for s in range(sources):
        items = []
        for e in range(entries):
            picked = rng.sample(words, 45)
            body = " ".join(picked[6:])
            if (s * entries + e) % 10 == 0:
                body += f" {PHRASE}"
            when = format_datetime(now - timedelta(minutes=s * entries + e))
            items.append(f"<item><title>{escape(' '.join(picked[:6]).capitalize())}</title>"
                         f"<link>https://src{s}.example.org/{e}</link>"
                         f"<guid isPermaLink='false'>s{s}-e{e}</guid>"
                         f"<description>{escape(body)}</description>"
                         f"<pubDate>{when}</pubDate></item>")  # fmt: skip
        feeds.append(("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                      f"<title>Source {s}</title><link>https://src{s}.example.org/</link>"
                      f"<description>bench</description>{''.join(items)}</channel></rss>"
                      ).encode())  # fmt: skip
    return feeds


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, feeds: Sequence[bytes]) -> None:
        self.feeds = feeds
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stalls
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FeedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.feeds[int(self.path.rsplit("/", 1)[-1])]
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# -- one daemon (a worker process) -----------------------------------------------------


def worker(config_path: str) -> None:
    """Open the daemon's runtime, say ready, run the poll job at each 'go', report."""
    from contextlib import ExitStack

    from monitor.app import open_runtime
    from monitor.config import load_config

    with ExitStack() as stack:
        rt = open_runtime(load_config(config_path), stack)
        _out("ready")
        for line in sys.stdin:
            if line.strip() != "go":
                break
            started, cpu = time.perf_counter(), time.process_time()
            stats = rt.pipeline.run_cycle()
            _out(json.dumps({"sources": stats.sources, "entries": stats.entries,
                             "new": stats.new, "failed": stats.failed,
                             "seconds": time.perf_counter() - started,
                             "cpu": time.process_time() - cpu}))  # fmt: skip


# -- one setup -------------------------------------------------------------------------


def _config(folder: Path, database: str, port: int, sources: int,
            parse_workers: int | None = None) -> Path:  # fmt: skip
    import yaml

    poll: dict[str, Any] = {"interval": "1h", "concurrency": 16, "per_host": 16}
    if parse_workers is not None:
        poll["parse_workers"] = parse_workers
    path = folder / "monitor.yaml"
    path.write_text(yaml.safe_dump({
        "database": database, "allow_private": ["127.0.0.1"], "alert_backlog": True,
        "poll": poll,
        "feeds": [{"name": f"source-{n:04d}", "url": f"http://127.0.0.1:{port}/f/{n}"}
                  for n in range(sources)],
        "watchlists": [{"name": "jfhq", "query": f'"{PHRASE}"'}],
    }))  # fmt: skip
    return path


def _make_due(database: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(text("UPDATE sources SET next_poll_at = :t"),
                      {"t": "2000-01-01 00:00:00+00" if "postgresql" in database
                       else "2000-01-01 00:00:00.000000"})  # fmt: skip
    engine.dispose()


def run_setup(label: str, database: str, daemons: int, port: int, sources: int,
              folder: Path, warm: int,
              parse_workers: int | None) -> list[dict[str, Any]]:  # fmt: skip
    """Start ``daemons`` workers on a fresh ``database``; time a cold and ``warm`` warm
    cycles."""
    from contextlib import ExitStack

    from monitor.app import open_runtime
    from monitor.config import load_config

    config = _config(folder, database, port, sources, parse_workers)
    with ExitStack() as stack:  # schema, sources, seeds: before any worker starts
        open_runtime(load_config(config), stack)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(config)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
             for _ in range(daemons)]  # fmt: skip
    results = []
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for cycle in ["cold"] + ["warm"] * warm:
            if cycle == "warm":
                _make_due(database)
            started = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            reports = [json.loads(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
            wall = time.perf_counter() - started
            results.append(_summary(label, cycle, daemons, wall, reports))
            results[-1]["load"] = round(os.getloadavg()[0], 1)
            _out(_line(results[-1]))
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in procs:
            proc.wait(60)
    return results


def _summary(label: str, cycle: str, daemons: int, wall: float,
             reports: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    sources = sum(r["sources"] for r in reports)
    entries = sum(r["entries"] for r in reports)
    return {"setup": label, "cycle": cycle, "daemons": daemons, "seconds": round(wall, 2),
            "sources": sources, "entries": entries, "new": sum(r["new"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "sources_per_s": round(sources / wall, 1), "entries_per_s": round(entries / wall, 1),
            "daemon_cpu_s": round(sum(r["cpu"] for r in reports), 1),
            "split": [r["sources"] for r in reports]}  # fmt: skip


def _line(r: dict[str, Any]) -> str:
    return (f"{r['setup']:<14} {r['cycle']:<5} {r['seconds']:7.1f} s  "
            f"{r['sources_per_s']:7.1f} sources/s  {r['entries_per_s']:8.1f} entries/s  "
            f"new={r['new']:<5} failed={r['failed']:<2} cpu={r['daemon_cpu_s']:<6} "
            f"load={r['load']:<4} split={r['split']}")


def fresh_schema(url: str) -> tuple[str, str]:
    """A new empty schema in the PostgreSQL database ``url``: a URL that uses it, and its
    name (``drop_schema`` removes it)."""
    from sqlalchemy import create_engine, text

    name = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    from sqlalchemy.engine import make_url

    u = make_url(url)
    options = " ".join(filter(None, [u.query.get("options"), f"-csearch_path={name}"]))
    schema_url = u.update_query_dict({"options": options}).render_as_string(hide_password=False)
    return schema_url, name


def drop_schema(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=2)
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--warm", type=int, default=3, help="warm cycles per setup")
    parser.add_argument("--parse-workers", type=int, default=None,
                        help="poll.parse_workers of each daemon (default: the config's)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    server = FeedServer(make_feeds(args.sources, args.entries))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _out(f"{args.sources} sources x {args.entries} entries, {os.cpu_count()} CPUs; "
         f"feed server on 127.0.0.1:{server.server_address[1]}")
    results: list[dict[str, Any]] = []
    for n in (int(x) for x in args.daemons.split(",")):
        url, schema = fresh_schema(args.postgres)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                results += run_setup(f"postgres x{n}", url, n, server.server_address[1],
                                     args.sources, Path(tmp), args.warm,
                                     args.parse_workers)  # fmt: skip
        finally:
            drop_schema(args.postgres, schema)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            results += run_setup("sqlite x1", f"sqlite:///{tmp}/monitor.db", 1,
                                 server.server_address[1], args.sources, Path(tmp),
                                 args.warm, args.parse_workers)  # fmt: skip
    _ratios(results)
    if args.json:
        _out(json.dumps(results, indent=1))
    server.shutdown()
    return 0


def _ratios(results: list[dict[str, Any]]) -> None:
    """Each PostgreSQL setup against one daemon (warm: the median of the warm cycles)."""
    for cycle in ("cold", "warm"):
        runs: dict[int, list[dict[str, Any]]] = {}
        for r in results:
            if r["cycle"] == cycle and r["setup"].startswith("postgres"):
                runs.setdefault(r["daemons"], []).append(r)
        by_n = {n: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
                for n, rs in runs.items()}  # fmt: skip
        if 1 not in by_n:
            continue
        for n, r in sorted(by_n.items()):
            if n > 1:
                spread = max(r["split"]) / max(1, min(r["split"]))
                ratio = r["sources_per_s"] / by_n[1]["sources_per_s"]
                _out(f"{cycle}: {n} daemons = {ratio:.2f}x one daemon; "
                     f"busiest/idlest daemon = {spread:.2f}")


if __name__ == "__main__":
    sys.exit(main())
