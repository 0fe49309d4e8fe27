"""``monitor run`` as a real process whose JSON log lines are read while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DaemonProcess", "wait"]

ROOT = Path(__file__).resolve().parents[1]


def wait(pred: Callable[[], object], seconds: float = 30) -> bool:
    """Poll ``pred`` until it is true or ``seconds`` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return bool(pred())


class DaemonProcess:
    """``python -m monitor run --log-format json --config CONFIG``; standard error is
    collected line by line in ``lines`` from a reader thread."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        environ.update(env or {}, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--log-format", "json", *args,
             "--config", str(config)],
            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict[str, Any]]:
        """Every log line so far, parsed (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in list(self.lines)]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]

    def wait_for(self, name: str, count: int = 1, seconds: float = 30) -> list[dict[str, Any]]:
        """The records of event ``name`` once there are ``count`` of them (else fail)."""
        assert wait(lambda: len(self.events(name)) >= count, seconds), (
            f"no {count}× {name} in:\n" + "\n".join(self.lines[-30:]))
        return self.events(name)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, seconds: float = 30) -> int:
        """SIGTERM, then the exit code (killed if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(seconds)

    def finish(self, seconds: float = 60) -> int:
        """The exit code once the process ends by itself (killed after ``seconds``)."""
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.proc.returncode
