"""Config loading: every problem listed by path, ${ENV} substitution, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config, parse_config, parse_digest, parse_duration, parse_size
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _problems(raw: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env=env or {})
    return info.value.problems


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "monitor.yaml")
    assert len(config.feeds) >= 8
    assert {w.name for w in config.watchlists} >= {
        "usfj-joint-force-hq", "extended-deterrence", "us-japan-2plus2",
        "china-russia-dprk-military"}  # fmt: skip
    assert config.database.endswith(f"{ROOT.as_posix()}/data/monitor.db")
    assert config.notifiers == {}


def test_example_config_is_valid_with_its_environment() -> None:
    env = dict.fromkeys(["POSTGRES_PASSWORD", "SMTP_USER", "SMTP_PASSWORD",
                         "MATTERMOST_TOKEN", "WEBHOOK_TOKEN"], "x-secret-1")  # fmt: skip
    config = load_config(ROOT / "config" / "examples" / "production.yaml", env=env)
    assert "x-secret-1" in config.secrets
    assert config.watchlists[0].notify == ("desk-email", "ops-chat")


def test_every_problem_is_listed_by_path() -> None:
    problems = _problems({
        "poll": {"interval": "5s", "timeout": "soon"},
        "feeds": [{"name": "ok", "url": "https://a.example/rss"},
                  {"url": "ftp://b.example/"},
                  {"name": "p", "url": "https://c.example/", "type": "page"}],
        "watchlists": [{"name": "w", "query": "a AND (b", "notify": ["nobody"]},
                       {"name": "d", "query": "x", "digest": "weekly"}],
    })  # fmt: skip
    text = "\n".join(problems)
    for path in ("poll.interval", "poll.timeout", "feeds[1].name", "feeds[1].url",
                 "feeds[2].select", "watchlists[0].query", "watchlists[0].notify[0]",
                 "watchlists[1].digest"):  # fmt: skip
        assert f"{path}:" in text, path
    assert len(problems) == 8


def test_bad_query_names_the_column() -> None:
    problems = _problems({"watchlists": [{"name": "w", "query": "(a OR b"}]})
    assert problems[0].startswith("watchlists[0].query:")
    assert "column" in problems[0]


def test_unknown_alias_is_refused() -> None:
    problems = _problems({"watchlists": [{"name": "w", "query": "@nope AND x"}]})
    assert "watchlists[0].query" in problems[0] and "nope" in problems[0]


def test_env_substitution_and_missing_variable() -> None:
    raw = {"notifiers": {"mail": "mailtos://u:${PW}@smtp.example.org?to=a@example.org"}}
    config = parse_config(raw, env={"PW": "hunter2"})
    assert config.notifiers["mail"] == "mailtos://u:hunter2@smtp.example.org?to=a@example.org"
    assert config.secrets == frozenset({"hunter2"})
    problems = _problems(raw)
    assert problems == ["notifiers.mail: environment variable PW is not set"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10), ("15m", 900), ("2h", 7200), ("7d", 604800), (30, 30), ("1.5h", 5400)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "5 minutes", True, "-1s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_sizes_and_digests() -> None:
    assert parse_size("10MB") == 10_000_000 and parse_size("1MiB") == 1024**2
    assert str(parse_digest("daily 08:00 Asia/Tokyo")) == "daily 08:00 Asia/Tokyo"
    assert parse_digest(None).kind == "immediate"
    with pytest.raises(ValueError, match="time zone"):
        parse_digest("daily 08:00 Mars/Olympus")


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("feeds: []\nwatchlists: []\n")
    assert main(["config", "check", "--config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("watchlists:\n  - {name: w, query: 'a AND'}\nfeeds: [{name: x}]\n")
    assert main(["--config", str(bad), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "watchlists[0].query:" in err and "feeds[0].url:" in err
    assert "Traceback" not in err


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("feeds: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "env.yaml"
    path.write_text("feeds: []\n")
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    assert main(["config", "check"]) == 0
    assert str(path) in capsys.readouterr().out


def test_operations_keys_are_off_by_default_and_validated_by_path() -> None:
    config = parse_config({}, env={})
    assert config.http is None and config.retention.articles is None
    config = parse_config({"http": {"listen": "127.0.0.1:9100"}, "retention": {"articles": "180d"},
                           "feeds": [{"name": "a", "url": "https://a.example/rss",
                                      "silent_after": "3d"}]}, env={})  # fmt: skip
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9100)  # type: ignore[union-attr]
    assert config.retention.articles == 180 * 86400 and config.feeds[0].silent_after == 3 * 86400
    problems = _problems({
        "http": {"listen": "localhost", "port": 80},
        "retention": {"articles": 3600, "batch": 0},
        "feeds": [{"name": "a", "url": "https://a.example/rss", "silent_after": "soon"}],
    })  # fmt: skip
    text = "\n".join(problems)
    for path in ("http.listen", "http.port", "retention.articles", "retention.batch",
                 "feeds[0].silent_after"):  # fmt: skip
        assert f"{path}:" in text, path
    assert len(problems) == 5


def test_repeated_feed_and_watchlist_names_are_problems() -> None:
    feed = {"name": "mod", "url": "https://example.org/rss"}
    watch = {"name": "usfj", "query": "USFJ"}
    problems = _problems({"feeds": [feed, {**feed, "name": "other"}, feed],
                          "watchlists": [watch, watch, "not a mapping"]})  # fmt: skip
    assert problems == [
        "feeds[2].name: duplicate feed name 'mod'",
        "watchlists[1].name: duplicate watchlist name 'usfj'",
        "watchlists[2]: must be a mapping with name and query",
    ]
    assert _problems({"feeds": {"mod": feed}}) == ["feeds: must be a list"]
