"""Wire the daemon's jobs into APScheduler; the database decides what is due.

Each daemon keeps its own in-memory scheduler (job stores are never shared): the poll
tick claims the sources whose ``next_poll_at`` has come, the deliver tick claims due
outbox rows, the digest crons wake delivery at digest times, the settle job lets each
story still of one article a week on join the story it belongs to (``Pipeline.settle``),
and a daily job prunes old article bodies when ``retention`` is set. The jobs are
``monitor.daemon.Daemon`` methods, so their results feed the metrics and a reload reaches
them at their next run.

Signals: SIGTERM and SIGINT stop taking new work and let the running job finish; SIGHUP
reloads the config (handled in the main thread, between two waits).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["DELIVER_TICK", "POLL_TICK", "PRUNE_EVERY", "SETTLE_EVERY", "run_daemon"]

log = logging.getLogger("monitor.scheduler")

POLL_TICK = 5.0  # seconds between looks for due sources
DELIVER_TICK = 5.0
PRUNE_EVERY = 86400.0  # retention runs at start, then daily
SETTLE_EVERY = 600.0  # lone stories past their window are settled at start, then this often


def run_daemon(daemon: Any, *, stop: threading.Event | None = None) -> None:
    """Run the jobs until SIGTERM/SIGINT (or ``stop`` is set); SIGHUP reloads the config.

    Args:
        daemon: a ``monitor.daemon.Daemon``; its stack holds the database and HTTP client,
            which close after the scheduler has shut down.
        stop: an event that ends the daemon (tests); signals set it too.
    """
    stop = stop or threading.Event()
    reload = threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": None})  # fmt: skip
    scheduler.add_job(_guard(daemon.poll, "poll", daemon), "interval", seconds=POLL_TICK,
                      id="poll", next_run_time=_now())  # fmt: skip
    scheduler.add_job(_guard(daemon.deliver, "deliver", daemon), "interval",
                      seconds=DELIVER_TICK, id="deliver", next_run_time=_now())  # fmt: skip
    scheduler.add_job(_guard(daemon.settle, "settle", daemon), "interval", seconds=SETTLE_EVERY,
                      id="settle", next_run_time=_now())  # fmt: skip
    _wire_config_jobs(scheduler, daemon)
    if daemon.config.http is not None:
        from .endpoint import Endpoint

        daemon.endpoint = Endpoint(daemon.config.http, health=daemon.health, ready=daemon.ready,
                                   metrics=daemon.metrics_page)  # fmt: skip
    daemon.scheduler_running = lambda: bool(scheduler.running)
    _install_signals(stop, reload)
    scheduler.start()
    log.info("daemon.started poll_tick=%s sources=%d watchlists=%d", POLL_TICK,
             len(daemon.config.feeds), len(daemon.config.watchlists))  # fmt: skip
    try:
        while not stop.wait(0.25):
            if reload.is_set():
                reload.clear()
                if daemon.reload():
                    _wire_config_jobs(scheduler, daemon)
    finally:
        log.info("daemon.stopping")
        daemon.stopping = True
        scheduler.shutdown(wait=True)
        if daemon.endpoint is not None:
            daemon.endpoint.close()
        log.info("daemon.stopped")


def _wire_config_jobs(scheduler: Any, daemon: Any) -> None:
    """(Re)add the jobs that depend on the config: digest crons and retention."""
    for job in scheduler.get_jobs():
        if job.id.startswith("digest:") or job.id == "prune":
            job.remove()
    for spec in _digest_specs(daemon.config):
        scheduler.add_job(_guard(daemon.deliver, f"digest {spec}", daemon), _cron(spec),
                          id=f"digest:{spec}")  # fmt: skip
    if daemon.config.retention.articles is not None:
        scheduler.add_job(_guard(daemon.prune, "prune", daemon), "interval",
                          seconds=PRUNE_EVERY, id="prune", next_run_time=_now())  # fmt: skip


def _digest_specs(config: Any) -> list[Any]:
    specs = {str(w.digest): w.digest for w in config.watchlists if w.digest.kind != "immediate"}
    if any(t.max_per_hour for t in config.targets.values()):
        from .config import DigestSpec

        specs.setdefault("hourly", DigestSpec(kind="hourly"))
    return list(specs.values())


def _cron(spec: Any) -> Any:
    """A cron trigger at the digest's times. It only wakes delivery early: what is due is
    read from the database, so a missed digest still goes out at the next tick."""
    from apscheduler.triggers.cron import CronTrigger

    if spec.kind == "hourly":
        return CronTrigger(minute=0, second=1, timezone="UTC")
    return CronTrigger(hour=spec.at.hour, minute=spec.at.minute, second=1, timezone=spec.tz)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _guard(func: Callable[[], Any], name: str, daemon: Any) -> Callable[[], None]:
    """Log a job's unexpected error, count it, and keep the daemon alive for the next tick."""

    def job() -> None:
        try:
            func()
        except Exception:
            daemon.job_failed(name)
            log.exception("job.failed job=%s", name)

    job.__name__ = name
    return job


def _install_signals(stop: threading.Event, reload: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("daemon.signal signal=%s", signal.Signals(signum).name)
        (reload if signum == signal.SIGHUP else stop).set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGHUP, handler)
