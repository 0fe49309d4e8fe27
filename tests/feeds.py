"""Build small RSS 2.0 and Atom documents for the tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

__all__ = ["Item", "atom", "rss", "story_items"]


@dataclass
class Item:
    title: str
    link: str
    body: str
    guid: str | None = None
    published: datetime | None = None


def rss(items: list[Item], title: str = "Test feed") -> bytes:
    parts = [f"<item><title>{escape(i.title)}</title><link>{escape(i.link)}</link>"
             f"<description>{escape(i.body)}</description>"
             + (f"<guid isPermaLink='false'>{escape(i.guid)}</guid>" if i.guid else "")
             + f"<pubDate>{format_datetime(i.published or datetime.now(UTC))}</pubDate></item>"
             for i in items]  # fmt: skip
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>{escape(title)}</title><link>http://example.org/</link>"
            f"<description>test</description>{''.join(parts)}</channel></rss>").encode()


def atom(items: list[Item], title: str = "Test atom feed") -> bytes:
    parts = [f"<entry><title>{escape(i.title)}</title><link href='{escape(i.link)}'/>"
             f"<id>{escape(i.guid or i.link)}</id>"
             f"<updated>{(i.published or datetime.now(UTC)).isoformat()}</updated>"
             f"<summary type='html'>{escape(i.body)}</summary></entry>"
             for i in items]  # fmt: skip
    return ("<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<title>{escape(title)}</title><id>urn:test:{escape(title)}</id>"
            f"<updated>{datetime.now(UTC).isoformat()}</updated>{''.join(parts)}</feed>").encode()


def story_items(count: int, *, seed: int = 0, phrase: str = "joint force headquarters",
                site: str = "https://news.example.org") -> list[Item]:  # fmt: skip
    """``count`` items about unrelated events (random common words, no shared names), each
    mentioning ``phrase``: every one is a new story that a watchlist on ``phrase`` alerts."""
    from wordfreq import top_n_list

    words = [w for w in top_n_list("en", 4000)[400:] if w.isalpha() and len(w) > 3]
    rng = random.Random(seed)
    items = []
    for n in range(count):
        picked = rng.sample(words, 40)
        items.append(Item(" ".join(picked[:6]).capitalize(), f"{site}/{seed}/{n}",
                          f"{' '.join(picked[6:])} {phrase}.", guid=f"{seed}-{n}"))  # fmt: skip
    return items
