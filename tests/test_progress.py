"""Long operations show a progress bar on a terminal and log lines otherwise."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from monitor.app import open_runtime
from monitor.cli import main
from monitor.config import load_config
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """A store holding the two seed articles."""
    path = write_config(tmp_path / "monitor.yaml", feeds=[], watchlists=[])
    with ExitStack() as stack:
        assert open_runtime(load_config(path), stack).repo.count_articles() == 2
    return path


def test_backtest_logs_progress_when_not_on_a_terminal(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--query", '"US Forces Japan"', "--since", "3650d",
                 "--config", str(seeded)]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert "2 articles matched" in out
    assert "progress.update task=backtest done=1 total=2" in err
    assert "progress.done task=backtest done=2" in err
    assert "\x1b[" not in err  # no terminal control codes in a log


def test_backtest_draws_a_bar_on_a_terminal(seeded: Path) -> None:
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS="100")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "check", "--query", '"US Forces Japan"',
         "--since", "3650d", "--config", str(seeded)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=follower, text=True,
    )  # fmt: skip
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "2 articles matched" in out
    text = screen.decode("utf-8", "replace")
    assert "backtest" in text and "2/2" in text  # the bar's label and count
    assert "progress.update" not in text  # the bar replaces the step lines


def test_eval_stories_logs_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": str(i), "story": "s1" if i < 2 else "s2", "title": title, "text": text}
            for i, (title, text) in enumerate([
                ("Austin visits Tokyo", "Defense Secretary Austin met Japanese officials."),
                ("Austin in Tokyo for talks", "Austin held talks with Japanese officials."),
                ("Farm output rises", "Corn and soybean harvests rose across Iowa."),
            ])]  # fmt: skip
    data = tmp_path / "labelled.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["eval", "stories", str(data)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["articles"] == 3
    assert "progress.done task=eval stories done=3" in err
