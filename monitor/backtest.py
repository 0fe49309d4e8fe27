"""``monitor check`` (a query against stored articles) and ``monitor explain``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config, parse_duration
from .errors import MonitorError

__all__ = ["explain_article", "run_check"]


def run_check(config: Config, args: argparse.Namespace,
              open_repo: Callable[[Config, ExitStack], Any]) -> int:  # fmt: skip
    """Run a watchlist's query (or ``--query``) over stored articles, newest first."""
    from .match import Matcher, format_query, parse_query
    from .progress import track

    if args.query:
        name, text = "query", args.query
    elif args.watchlist:
        found = [w for w in config.watchlists if w.name == args.watchlist]
        if not found:
            raise MonitorError(f"unknown watchlist {args.watchlist!r}")
        name, text = found[0].name, found[0].query
    else:
        raise MonitorError("check needs a WATCHLIST name or --query")
    query = parse_query(text, config.aliases)
    print(f"query: {format_query(query)}")
    matcher = Matcher({name: query})
    since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
    count = 0
    with ExitStack() as stack:
        repo = open_repo(config, stack)
        total = repo.count_articles(since, include_pruned=False)
        for art in track(repo.iter_articles(since), task="backtest", total=total):
            found_matches = matcher.match(art["title"], art["body"], art["source"])
            if not found_matches:
                continue
            count += 1
            if count <= args.limit:
                terms = ", ".join(found_matches[0].terms)
                print(f"{art['at']:%Y-%m-%d}  #{art['id']}  {art['source']}: {art['title']}"
                      f"\n            matched: {terms}")  # fmt: skip
    shown = f" (first {args.limit} shown)" if count > args.limit else ""
    print(f"{count} articles matched since {since:%Y-%m-%d}{shown}")
    return 0


def explain_article(repo: Any, article_id: int) -> str:
    """Why an article was a new story, a duplicate or a re-report."""
    art = repo.get_article(article_id)
    if art is None:
        raise MonitorError(f"no article {article_id}")
    lines = [f"article #{art['id']}: {art['title']}",
             f"  source: {art['source']}   at: {art['at']:%Y-%m-%d %H:%M} UTC",
             f"  link: {art['link'] or art['url'] or '-'}",
             f"  decision: {art['decision']} (level {art['level']}, score {art['score']:.3f})",
             f"  reason: {_lines(art['reason'], 10)}"]  # fmt: skip
    if art["matched_article_id"]:
        other = repo.get_article(art["matched_article_id"])
        if other:
            lines.append(f"  compared with: #{other['id']} {other['source']}: {other['title']}")
    story = repo.get_story(art["story_id"])
    if story:
        lines.append(f"  story #{story['id']}: {story['title']} ({story['articles']} articles;"
                     f" sources: {', '.join(story['sources'])})")  # fmt: skip
        if story.get("related_story_id"):
            related = repo.get_story(story["related_story_id"])
            if related:
                lines.append(f"  follows story #{related['id']}: {related['title']}")
    return "\n".join(lines)


def _lines(text: str, indent: int) -> str:
    """``text``'s later lines (what happened after the decision: a settle) under its first."""
    return ("\n" + " " * indent).join(text.splitlines())
