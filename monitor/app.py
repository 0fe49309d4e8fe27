"""Assemble a running monitor from a config: storage, fetcher, pipeline, delivery.

Every resource is registered on one ``ExitStack`` so that ``run``, ``run --once`` and the
tests close them the same way, in reverse order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Config
from .errors import MonitorError

__all__ = ["SEED_DATE", "Runtime", "lock_sqlite", "open_repository", "open_runtime",
           "rebuild_runtime"]

log = logging.getLogger("monitor.app")

SEED_DATE = datetime(2024, 7, 28, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    repo: Any
    pipeline: Any
    deliverer: Any
    fetcher: Any = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    notifiers: Mapping[str, Any] | None = None


def open_repository(config: Config, stack: ExitStack) -> Any:
    """Open (and create or check the schema of) the configured database."""
    from storage import make_repository

    repo = make_repository(config.database)
    stack.callback(repo.close)
    return repo


def lock_sqlite(config: Config, stack: ExitStack) -> bool:
    """Hold the one-daemon lock of a SQLite database file, for as long as ``stack`` lives.

    SQLite has a single writer, so one daemon per file: a second one is refused with the
    process that holds the file. PostgreSQL needs no lock (work is claimed with leases).

    Returns:
        True when a SQLite lock is now held; False for other databases.

    Raises:
        MonitorError: another daemon holds the file.
    """
    url = config.database
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return False
    import fcntl

    db = Path(url[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise MonitorError(f"another monitor daemon (pid {holder}) is running on {db}; "
                           "SQLite allows one daemon per file: stop it, or move to "
                           "PostgreSQL to run several") from None  # fmt: skip
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    stack.callback(handle.close)
    return True


def open_runtime(config: Config, stack: ExitStack, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 notifiers: Mapping[str, Any] | None = None) -> Runtime:  # fmt: skip
    """Open everything the daemon needs; sync sources from the config; seed a new store.

    Args:
        config: the validated config.
        stack: where cleanups go.
        clock: the current UTC time (tests move it).
        notifiers: ready notifiers by name, instead of those made from the config.
    """
    from storage import seed_files

    sole = lock_sqlite(config, stack)
    repo = open_repository(config, stack)
    if sole:  # no other daemon can hold a lease on this file: a killed one's are stale
        repo.release_leases()
    rt = _assemble(config, repo, _make_fetcher(config, stack), clock, notifiers, stack)
    seeded = rt.pipeline.load_seeds(seed_files(), SEED_DATE)
    if seeded:
        log.info("store.seeded articles=%d", seeded)
    return rt


def rebuild_runtime(rt: Runtime, config: Config, stack: ExitStack) -> Runtime:
    """The runtime for a reloaded ``config`` on the same database: a new pipeline and
    deliverer, the stored sources synced to the new feeds (added ones are due at once,
    removed ones disabled). The fetcher is kept unless its settings changed.

    Raises:
        MonitorError: the database could not be updated (the old runtime stays valid).
    """
    old = rt.config
    fetcher = rt.fetcher
    if (config.user_agent, config.allow_private, config.proxy) != (
            old.user_agent, old.allow_private, old.proxy):  # fmt: skip
        fetcher = _make_fetcher(config, stack)  # the old one closes with the stack
    return _assemble(config, rt.repo, fetcher, rt.clock, rt.notifiers, stack,
                     rt.pipeline.workers_for(config))  # fmt: skip


def _make_fetcher(config: Config, stack: ExitStack) -> Any:
    from .fetch import HTTPFetcher

    fetcher = HTTPFetcher(user_agent=config.user_agent, allow_private=config.allow_private,
                          proxy=config.proxy)  # fmt: skip
    stack.callback(fetcher.close)
    return fetcher


def _assemble(config: Config, repo: Any, fetcher: Any, clock: Callable[[], datetime],
              notifiers: Mapping[str, Any] | None, stack: ExitStack,
              workers: Any = None) -> Runtime:  # fmt: skip
    from .deliver import Deliverer
    from .pipeline import Pipeline

    pipeline = Pipeline(config, repo, fetcher, clock=clock, workers=workers)
    stack.callback(pipeline.close)  # its worker processes, if a cycle started them
    pipeline.sync_sources()
    deliverer = Deliverer(config, repo, clock, notifiers)
    return Runtime(config, repo, pipeline, deliverer, fetcher, clock, notifiers)
