"""Wire the daemon's jobs into APScheduler; the database decides what is due.

Each daemon keeps its own in-memory scheduler (job stores are never shared): the poll
tick claims the sources whose ``next_poll_at`` has come, the deliver tick claims due
outbox rows. SIGTERM and SIGINT stop taking new work and let the running job finish.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import ExitStack
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["POLL_TICK", "run_daemon"]

log = logging.getLogger("monitor.scheduler")

POLL_TICK = 5.0  # seconds between looks for due sources
DELIVER_TICK = 5.0


def run_daemon(pipeline: Any, deliverer: Any, *, stack: ExitStack,
               stop: threading.Event | None = None) -> None:  # fmt: skip
    """Run poll and deliver ticks until SIGTERM/SIGINT (or ``stop`` is set).

    Args:
        pipeline: a ``monitor.pipeline.Pipeline``.
        deliverer: a ``monitor.deliver.Deliverer``.
        stack: cleanups (database, HTTP client) registered by the caller; the scheduler
            is shut down first, so no job still uses them when they close.
        stop: an event that ends the daemon (tests); signals set it too.
    """
    stop = stop or threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": None})  # fmt: skip
    scheduler.add_job(_guard(pipeline.run_cycle, "poll"), "interval", seconds=POLL_TICK,
                      id="poll", next_run_time=_now())  # fmt: skip
    scheduler.add_job(_guard(deliverer.deliver_due, "deliver"), "interval",
                      seconds=DELIVER_TICK, id="deliver", next_run_time=_now())  # fmt: skip
    for spec in _digest_specs(pipeline.config):
        scheduler.add_job(_guard(deliverer.deliver_due, f"digest {spec}"), _cron(spec),
                          id=f"digest:{spec}")  # fmt: skip
    _install_signals(stop)
    scheduler.start()
    log.info("daemon.started poll_tick=%ss", POLL_TICK)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("daemon.stopping")
        scheduler.shutdown(wait=True)
        log.info("daemon.stopped")


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


def _guard(func: Any, name: str) -> Any:
    """Log a job's unexpected error and keep the daemon alive for the next tick."""

    def job() -> None:
        try:
            func()
        except Exception:
            log.exception("job.failed job=%s", name)

    job.__name__ = name
    return job


def _install_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("daemon.signal signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
