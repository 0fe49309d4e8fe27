"""The ``monitor`` command line.

::

    monitor run [--once]
    monitor config check
    monitor status [--json]
    monitor alerts [--since 7d]
    monitor check (WATCHLIST | --query Q) [--since 30d]
    monitor explain ARTICLE_ID
    monitor eval stories FILE.jsonl
    monitor story merge A B | story split ARTICLE_ID
    monitor outbox retry
    monitor notify test NAME
    monitor prune [--older-than 180d]
    monitor db upgrade
    monitor sources import FILE.opml [--dry-run] | sources export [FILE.opml]

``--config PATH``, ``--log-level`` and ``--log-format text|json`` are accepted before or
after the verb (else ``$MONITOR_CONFIG``, else ``config/monitor.yaml``). Errors print one
clear message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .config import Config, default_config_path, load_config, parse_duration
from .errors import MonitorError

__all__ = ["main"]

log = logging.getLogger("monitor")

def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="config file path")
    common.add_argument("--log-level", default=argparse.SUPPRESS,
                        choices=["debug", "info", "warning", "error"])  # fmt: skip
    common.add_argument("--log-format", default=argparse.SUPPRESS, choices=["text", "json"],
                        help="json: one JSON object per log line, for log collectors")  # fmt: skip
    parser = argparse.ArgumentParser(prog="monitor", parents=[common],
                                     description="News monitoring and alerting daemon.")
    sub = parser.add_subparsers(dest="verb", required=True)

    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--once", action="store_true", help="poll every source once and exit")

    cfg = sub.add_parser("config", parents=[common], help="config tools")
    cfg.add_argument("action", choices=["check"])

    status = sub.add_parser("status", parents=[common], help="sources, watchlists, outbox")
    status.add_argument("--json", action="store_true")

    alerts = sub.add_parser("alerts", parents=[common], help="alerts sent")
    alerts.add_argument("--since", default="7d")

    check = sub.add_parser("check", parents=[common], help="backtest a watchlist or query")
    check.add_argument("watchlist", nargs="?")
    check.add_argument("--query")
    check.add_argument("--since", default="30d")
    check.add_argument("--limit", type=int, default=50)

    explain = sub.add_parser("explain", parents=[common], help="why an article was new or not")
    explain.add_argument("article_id", type=int)

    ev = sub.add_parser("eval", parents=[common], help="measure story dedupe")
    ev.add_argument("what", choices=["stories"])
    ev.add_argument("file", type=Path)

    story = sub.add_parser("story", parents=[common], help="correct story grouping")
    story.add_argument("action", choices=["merge", "split"])
    story.add_argument("ids", type=int, nargs="+")

    outbox = sub.add_parser("outbox", parents=[common], help="the alert queue")
    outbox.add_argument("action", choices=["retry"])

    prune = sub.add_parser("prune", parents=[common], help="drop old article bodies now")
    prune.add_argument("--older-than", help="override retention.articles, e.g. 180d")

    sources = sub.add_parser("sources", parents=[common], help="OPML import and export")
    sources.add_argument("action", choices=["import", "export"])
    sources.add_argument("file", type=Path, nargs="?")
    sources.add_argument("--dry-run", action="store_true", help="import: only count")

    db = sub.add_parser("db", parents=[common], help="database schema")
    db.add_argument("action", choices=["upgrade"])

    notify = sub.add_parser("notify", parents=[common], help="notifier tools")
    notify.add_argument("action", choices=["test"])
    notify.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``monitor`` command. Returns the exit code."""
    from .logs import setup_logging

    args = _parser().parse_args(argv)
    log_format = getattr(args, "log_format", "text")
    setup_logging(getattr(args, "log_level", "info"), log_format)
    try:
        return int(_dispatch(args) or 0)
    except MonitorError as exc:
        if log_format == "json":  # a collector reads stderr: keep every line JSON
            log.error("cli.failed verb=%s error=%s", args.verb, exc)
        else:
            print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _config(args: argparse.Namespace) -> Config:
    return load_config(default_config_path(getattr(args, "config", None)))


def _dispatch(args: argparse.Namespace) -> int:
    if args.verb == "eval":
        return _eval(args)
    config = _config(args)
    if args.verb == "config":
        print(f"{config.path}: valid ({len(config.feeds)} feeds, "
              f"{len(config.watchlists)} watchlists, {len(config.notifiers)} notifiers)")
        return 0
    handlers = {"run": _run, "status": _status, "alerts": _alerts, "check": _check,
                "explain": _explain, "story": _story, "outbox": _outbox, "notify": _notify,
                "db": _db, "prune": _prune, "sources": _sources}  # fmt: skip
    return handlers[args.verb](args, config)


def _open(config: Config, stack: ExitStack) -> Any:
    from .app import open_repository

    return open_repository(config, stack)


def _run(args: argparse.Namespace, config: Config) -> int:
    from ._prepare import tune_gc
    from .app import open_runtime
    from .progress import due_sources, track_polls

    if not config.notifiers:
        log.warning("notify.console_only reason=%s",
                    "No notifier configured: alerts are printed to the console.")  # fmt: skip
    with ExitStack() as stack:
        rt = open_runtime(config, stack)
        tune_gc()
        if args.once:
            with track_polls(due_sources(rt.repo, rt.clock(), all_enabled=True)):
                stats = rt.pipeline.run_cycle(all_enabled=True)
            started = time.perf_counter()
            sent = rt.deliverer.deliver_due()
            log.info("deliver.done sent=%d retrying=%d dead=%d notify_s=%.3f", sent.sent,
                     sent.retrying, sent.dead, time.perf_counter() - started)  # fmt: skip
            rt.pipeline.settle()  # what a daemon's settle job does, for runs from cron
            print(f"polled {stats.sources} sources ({stats.failed} failed, "
                  f"{stats.not_modified} unchanged): {stats.entries} entries, {stats.new} new "
                  f"stories, {stats.rereports} re-reports, {stats.duplicates} duplicates; "
                  f"alerts sent {sent.sent}, retrying {sent.retrying}, dead {sent.dead}")
            return 0
        # The daemon's modules (scheduler, metrics) are not loaded for --once (issue 9).
        from .daemon import Daemon
        from .scheduler import run_daemon

        run_daemon(Daemon(rt, stack))
    return 0


def _status(args: argparse.Namespace, config: Config) -> int:
    from .status import collect_status, print_status

    with ExitStack() as stack:
        repo = _open(config, stack)
        status = collect_status(config, repo, datetime.now(UTC))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print_status(status)
    return 0


def _alerts(args: argparse.Namespace, config: Config) -> int:
    since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
    with ExitStack() as stack:
        rows = _open(config, stack).get_sent_alerts(since)
    for r in rows:
        print(f"{r['sent_at']:%Y-%m-%d %H:%M}  {r['watchlist']} -> {r['target']}  "
              f"{r['payload'].get('title', '')}")  # fmt: skip
    print(f"{len(rows)} alerts sent since {since:%Y-%m-%d %H:%M} UTC")
    return 0


def _check(args: argparse.Namespace, config: Config) -> int:
    from .backtest import run_check

    return run_check(config, args, _open)


def _explain(args: argparse.Namespace, config: Config) -> int:
    from .backtest import explain_article

    with ExitStack() as stack:
        print(explain_article(_open(config, stack), args.article_id))
    return 0


def _story(args: argparse.Namespace, config: Config) -> int:
    with ExitStack() as stack:
        repo = _open(config, stack)
        if args.action == "merge":
            if len(args.ids) != 2:
                raise MonitorError("story merge takes two story ids: KEEP OTHER")
            moved = repo.merge_stories(args.ids[0], args.ids[1])
            print(f"merged story {args.ids[1]} into {args.ids[0]} ({moved} articles moved)")
        else:
            if len(args.ids) != 1:
                raise MonitorError("story split takes one article id")
            new = repo.split_article(args.ids[0], datetime.now(UTC))
            print(f"article {args.ids[0]} is now story {new}")
    return 0


def _outbox(args: argparse.Namespace, config: Config) -> int:
    with ExitStack() as stack:
        n = _open(config, stack).requeue_dead(datetime.now(UTC))
    print(f"{n} dead letters queued again")
    return 0


def _prune(args: argparse.Namespace, config: Config) -> int:
    from .retention import prune

    keep = config.retention.articles
    if args.older_than is not None:
        keep = parse_duration(args.older_than) if _is_duration(args.older_than) else None
        if keep is None or keep < 86400:
            raise MonitorError("--older-than must be a duration of 1d or more, such as 180d")
    if keep is None:
        raise MonitorError("no retention set: add retention: {articles: 180d} to the config, "
                           "or give --older-than")  # fmt: skip
    with ExitStack() as stack:
        n = prune(_open(config, stack), keep, datetime.now(UTC), batch=config.retention.batch)
    print(f"{n} article bodies pruned (fetched more than {args.older_than or _days(keep)} ago)")
    return 0


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}d"


def _sources(args: argparse.Namespace, config: Config) -> int:
    from .opml import export_opml, import_into_config

    if args.action == "export":
        text = export_opml(config.feeds)
        if args.file is None:
            sys.stdout.write(text)
        else:
            args.file.write_text(text, encoding="utf-8")
            print(f"wrote {len(config.feeds)} sources to {args.file}")
        return 0
    if args.file is None or config.path is None:
        raise MonitorError("sources import needs an OPML file")
    added = import_into_config(config.path, args.file, dry_run=args.dry_run)
    verb = "would add" if args.dry_run else "added"
    print(f"{verb} {added} sources to {config.path}" + ("" if args.dry_run or not added
          else f" (the previous file is {config.path.name}.bak)"))  # fmt: skip
    return 0


def _db(args: argparse.Namespace, config: Config) -> int:
    from storage import make_repository
    from storage.schema import current_revision, upgrade

    repo = make_repository(config.database, create=False)
    try:
        before = current_revision(repo.engine)
        after = upgrade(repo.engine)
    finally:
        repo.close()
    print(f"schema at revision {after}" + (f" (was {before})" if before != after else ""))
    return 0


def _notify(args: argparse.Namespace, config: Config) -> int:
    from .notify import make_notifier
    from .types import Alert, DeliveryOutcome

    if args.name not in config.notifiers and args.name != "console":
        raise MonitorError(f"unknown notifier {args.name!r}")
    url = config.notifiers.get(args.name, "console://")
    alert = Alert(key=f"test-{datetime.now(UTC):%Y%m%d%H%M%S}", watchlist="test",
                  target=args.name, story_id=0, title="Test alert from the news monitor",
                  source="monitor", link=None, published=datetime.now(UTC),
                  snippet="If you can read this, the notifier works.", terms=())  # fmt: skip
    delivery = make_notifier(args.name, url).send(alert)
    if delivery.outcome is DeliveryOutcome.SENT:
        print(f"sent a test message to {args.name}")
        return 0
    print(f"monitor: test message to {args.name} failed ({delivery.outcome.value}): "
          f"{delivery.error}", file=sys.stderr)  # fmt: skip
    return 1


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import run_eval
    from .progress import track

    result = run_eval(args.file, progress=lambda rows: track(rows, task="eval stories"))
    print(json.dumps(result))
    return 0
