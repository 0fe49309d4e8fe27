"""What the daemon's jobs do, around the stages: metrics, health, reload, retention.

``Daemon`` holds the current ``Runtime`` (config, pipeline, deliverer). The scheduler's
jobs call its methods, which read ``self.runtime`` afresh on every run: a reload swaps
the runtime between two runs, and a job already running finishes with the one it took.

Reload (SIGHUP) reads and validates the config file again. On any problem it logs each
one (``config.reload_problem``) and keeps the running config; otherwise it builds a new
pipeline and deliverer, syncs the stored sources to the new feeds (an added source is due
at once, a removed one is disabled) and swaps them in. ``database`` and ``http`` cannot
change without a restart; a reload that changes them is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from typing import Any

from .app import Runtime, rebuild_runtime
from .config import Config, load_config
from .errors import ConfigError, MonitorError
from .logs import set_secrets
from .metrics import CONTENT_TYPE, Metrics
from .progress import due_sources, track_polls
from .retention import prune
from .status import state_counts

__all__ = ["Daemon", "FIRST_POLL_PROGRESS", "due_sources"]

log = logging.getLogger("monitor.daemon")

FIRST_POLL_PROGRESS = 10  # a first cycle of this many sources or more shows its progress


class Daemon:
    """The jobs and probes of one daemon process.

    Args:
        runtime: what ``open_runtime`` assembled.
        stack: the daemon's cleanups (a reload may add a fetcher to it).
    """

    def __init__(self, runtime: Runtime, stack: ExitStack) -> None:
        self.runtime = runtime
        self.stack = stack
        self.metrics = Metrics(outbox=lambda: self.runtime.repo.get_outbox_summary(),
                               sources=self._source_states)  # fmt: skip
        self.scheduler_running: Callable[[], bool] = lambda: False
        self.stopping = False
        self.cycles = 0
        self.endpoint: Any = None
        set_secrets(runtime.config.secrets)

    @property
    def config(self) -> Config:
        return self.runtime.config

    # -- jobs --------------------------------------------------------------------------

    def poll(self) -> None:
        """One poll tick: the due sources, counted into the metrics."""
        rt = self.runtime
        start = time.perf_counter()
        with self._first_poll_progress(rt):
            stats = rt.pipeline.run_cycle()
        self.metrics.observe_cycle(stats, time.perf_counter() - start)
        self.cycles += 1

    def _first_poll_progress(self, rt: Runtime) -> Any:
        if self.cycles:
            return nullcontext()
        total = due_sources(rt.repo, rt.clock())
        return track_polls(total) if total >= FIRST_POLL_PROGRESS else nullcontext()

    def deliver(self) -> None:
        """One deliver tick (or a digest time): what is due, counted into the metrics."""
        start = time.perf_counter()
        stats = self.runtime.deliverer.deliver_due()
        self.metrics.observe_delivery(stats, time.perf_counter() - start)

    def prune(self) -> None:
        """Drop article bodies past the configured retention (nothing when none is set)."""
        rt = self.runtime
        keep = rt.config.retention.articles
        if keep is None:
            return
        self.metrics.pruned.inc(prune(rt.repo, keep, rt.clock(), batch=rt.config.retention.batch))

    def settle(self) -> None:
        """Settle the stories still of one article once their window has passed."""
        self.metrics.settled.inc(self.runtime.pipeline.settle())

    def job_failed(self, name: str) -> None:
        self.metrics.job_failures.labels(name.split()[0]).inc()

    # -- reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Read the config file again and switch to it if it is valid.

        Returns:
            True when the new config is in use; False when the old one was kept.
        """
        old = self.runtime.config
        try:
            if old.path is None:
                raise ConfigError("(no config file to reload)")
            new = load_config(old.path)
            _refuse_restart_only_changes(old, new)
            runtime = rebuild_runtime(self.runtime, new, self.stack)
        except ConfigError as exc:
            return self._reload_failed(old, exc.problems)
        except MonitorError as exc:
            return self._reload_failed(old, [str(exc)])
        set_secrets(old.secrets | new.secrets)
        self.runtime = runtime
        self.metrics.reloads.labels("ok").inc()
        log.info("config.reloaded path=%s feeds=%d watchlists=%d added_feeds=%s "
                 "removed_feeds=%s added_watchlists=%s removed_watchlists=%s", new.path,
                 len(new.feeds), len(new.watchlists), *_changes(old, new))  # fmt: skip
        return True

    def _reload_failed(self, old: Config, problems: list[str]) -> bool:
        for problem in problems:
            log.error("config.reload_problem path=%s problem=%s", old.path, problem)
        log.error("config.reload_failed path=%s problems=%d kept=previous", old.path,
                  len(problems))  # fmt: skip
        self.metrics.reloads.labels("error").inc()
        return False

    # -- probes ------------------------------------------------------------------------

    def health(self) -> str | None:
        """None while the scheduler runs and the database answers; else why not."""
        if not self.scheduler_running():
            return "scheduler not running"
        try:
            self.runtime.repo.ping()
        except MonitorError as exc:
            return f"database does not answer: {exc}"
        return None

    def ready(self) -> str | None:
        """None once the first poll cycle is done, while healthy and not stopping."""
        if self.stopping:
            return "stopping"
        if not self.cycles:
            return "first poll cycle not finished"
        return self.health()

    def metrics_page(self) -> tuple[str, bytes]:
        return CONTENT_TYPE, self.metrics.render()

    def _source_states(self) -> dict[str, int]:
        rt = self.runtime
        return state_counts(rt.config, rt.repo, rt.clock())


def _refuse_restart_only_changes(old: Config, new: Config) -> None:
    problems = []
    if new.database != old.database:
        problems.append("database: changed; restart the daemon to use another database")
    if new.http != old.http:
        problems.append("http: changed; restart the daemon to listen elsewhere")
    if problems:
        raise ConfigError(problems)


def _changes(old: Config, new: Config) -> list[str]:
    """Added and removed feed names, then watchlist names (comma-separated, ``-`` if none)."""
    out = []
    for before, after in (({f.name for f in old.feeds}, {f.name for f in new.feeds}),
                          ({w.name for w in old.watchlists}, {w.name for w in new.watchlists})):
        out += [",".join(sorted(after - before)) or "-", ",".join(sorted(before - after)) or "-"]
    return out
