"""OPML import and export of sources (the exchange format of feed readers).

Import reads every ``<outline>`` with an ``xmlUrl`` (nested folders included) and merges
them into the config file's ``feeds:`` list, keeping every other key, comment-free YAML
being the price of a round trip. Export writes the configured feeds as OPML 2.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from .config import FeedConfig
from .errors import ConfigError

__all__ = ["OPMLFeed", "export_opml", "import_into_config", "merge_feeds", "read_opml"]


@dataclass(frozen=True, slots=True)
class OPMLFeed:
    name: str
    url: str


def read_opml(path: Path) -> list[OPMLFeed]:
    """The feeds an OPML file lists, in document order, without duplicates by URL.

    Raises:
        ConfigError: the file cannot be read or is not OPML (names the file and why).
    """
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False)  # fmt: skip
        root = etree.parse(str(path), parser).getroot()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{path}: not OPML: {exc}") from None
    if root.tag != "opml":
        raise ConfigError(f"{path}: not OPML: the root element is <{root.tag}>")
    feeds: dict[str, OPMLFeed] = {}
    for node in root.iter("outline"):
        url = (node.get("xmlUrl") or "").strip()
        if not url.startswith(("http://", "https://")):
            continue
        name = (node.get("title") or node.get("text") or url).strip()
        feeds.setdefault(url, OPMLFeed(name=name, url=url))
    return list(feeds.values())


def merge_feeds(existing: Sequence[dict[str, Any]],
                imported: Iterable[OPMLFeed]) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """Add the imported feeds not configured yet (by URL); names are made unique.

    Returns:
        The new ``feeds:`` list and how many feeds were added.
    """
    feeds = [dict(f) for f in existing]
    urls = {str(f.get("url")) for f in feeds}
    names = {str(f.get("name")) for f in feeds}
    added = 0
    for feed in imported:
        if feed.url in urls:
            continue
        name, n = feed.name, 2
        while name in names:
            name, n = f"{feed.name} ({n})", n + 1
        feeds.append({"name": name, "url": feed.url})
        urls.add(feed.url)
        names.add(name)
        added += 1
    return feeds, added


def export_opml(feeds: Sequence[FeedConfig], title: str = "news monitor sources") -> str:
    """OPML 2.0 listing the feed sources (page sources carry ``type="page"``)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">',
             f"  <head><title>{_text(title)}</title></head>", "  <body>"]  # fmt: skip
    for f in feeds:
        kind = "rss" if f.type == "feed" else "page"
        lines.append(f"    <outline type={quoteattr(kind)} text={quoteattr(f.name)} "
                     f"title={quoteattr(f.name)} xmlUrl={quoteattr(f.url)}/>")  # fmt: skip
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def import_into_config(config_path: Path, opml_path: Path, *, dry_run: bool = False) -> int:
    """Add an OPML file's new feeds to a config file; the old file is kept as ``.bak``.

    The merged config is validated before anything is written.

    Returns:
        How many feeds were added.

    Raises:
        ConfigError: the OPML or the resulting config is invalid (nothing written).
    """
    import os

    import yaml

    from .config import parse_config

    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    feeds, added = merge_feeds(raw.get("feeds") or [], read_opml(opml_path))
    merged = {**raw, "feeds": feeds}
    parse_config(merged, env=os.environ, path=config_path)
    if added and not dry_run:
        backup = config_path.with_name(config_path.name + ".bak")
        backup.write_text(config_path.read_text(encoding="utf-8"), encoding="utf-8")
        text = yaml.safe_dump(merged, allow_unicode=True, sort_keys=False, width=100)
        config_path.write_text(text, encoding="utf-8")
    return added
