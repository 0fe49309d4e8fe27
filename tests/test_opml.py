"""OPML import and export of sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import FeedConfig
from monitor.errors import ConfigError
from monitor.opml import OPMLFeed, export_opml, merge_feeds, read_opml

READER_EXPORT = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0"><head><title>Subscriptions</title></head><body>
  <outline text="Defense" title="Defense">
    <outline type="rss" text="DoD News" title="DoD News"
             xmlUrl="https://www.defense.gov/rss" htmlUrl="https://www.defense.gov/"/>
    <outline type="rss" text="Kyodo &amp; more" xmlUrl="https://english.kyodonews.net/rss/news.xml"/>
  </outline>
  <outline type="rss" text="DoD again" xmlUrl="https://www.defense.gov/rss"/>
  <outline type="link" text="no feed" htmlUrl="https://example.org/"/>
  <outline type="rss" text="bad scheme" xmlUrl="file:///etc/passwd"/>
</body></opml>"""


def test_read_nested_outlines_once_each(tmp_path: Path) -> None:
    path = tmp_path / "subs.opml"
    path.write_text(READER_EXPORT)
    assert read_opml(path) == [
        OPMLFeed("DoD News", "https://www.defense.gov/rss"),
        OPMLFeed("Kyodo & more", "https://english.kyodonews.net/rss/news.xml"),
    ]


@pytest.mark.parametrize(("text", "why"), [
    ("<rss version='2.0'/>", "root element is <rss>"),
    ("<opml><body><outline", "not OPML"),
])
def test_bad_files_are_named(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "bad.opml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=why) as info:
        read_opml(path)
    assert str(path) in str(info.value)


def test_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    path = tmp_path / "xxe.opml"
    path.write_text(f"""<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>
<opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.example/rss"/></body></opml>""")
    try:
        seen = " ".join(f.name for f in read_opml(path))
    except ConfigError as exc:  # refusing the document is as good as not expanding it
        seen = str(exc)
    assert "TOP-SECRET" not in seen


def test_merge_adds_only_new_urls_with_unique_names() -> None:
    existing = [{"name": "DoD News", "url": "https://www.defense.gov/rss", "interval": "10m"}]
    merged, added = merge_feeds(existing, [
        OPMLFeed("DoD News", "https://www.defense.gov/rss"),
        OPMLFeed("DoD News", "https://www.defense.gov/other"),
        OPMLFeed("Kyodo", "https://english.kyodonews.net/rss/news.xml")])
    assert added == 2
    assert merged[0] == existing[0]
    assert [f["name"] for f in merged] == ["DoD News", "DoD News (2)", "Kyodo"]


def test_export_round_trips(tmp_path: Path) -> None:
    feeds = [FeedConfig(name='Wire "A" & B', url="https://a.example/rss?x=1&y=2"),
             FeedConfig(name="MOD", url="https://b.example/press/", type="page", select="a")]
    path = tmp_path / "out.opml"
    path.write_text(export_opml(feeds))
    assert read_opml(path) == [OPMLFeed(f.name, f.url) for f in feeds]


def test_cli_import_then_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    config = tmp_path / "monitor.yaml"
    config.write_text("feeds:\n  - {name: DoD News, url: 'https://www.defense.gov/rss'}\n"
                      "watchlists: []\n")  # fmt: skip
    subs = tmp_path / "subs.opml"
    subs.write_text(READER_EXPORT)
    assert main(["sources", "import", str(subs), "--dry-run", "--config", str(config)]) == 0
    assert "would add 1 sources" in capsys.readouterr().out
    assert "kyodo" not in config.read_text()
    assert main(["sources", "import", str(subs), "--config", str(config)]) == 0
    assert (tmp_path / "monitor.yaml.bak").exists()
    assert main(["sources", "export", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert 'xmlUrl="https://english.kyodonews.net/rss/news.xml"' in out
    assert out.count("<outline") == 2
    bad = tmp_path / "bad.opml"
    bad.write_text("<html/>")
    assert main(["sources", "import", str(bad), "--config", str(config)]) == 2
    assert "bad.opml" in capsys.readouterr().err
