"""Assemble a running monitor from a config: storage, fetcher, pipeline, delivery.

Every resource is registered on one ``ExitStack`` so that ``run``, ``run --once`` and the
tests close them the same way, in reverse order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import Config

__all__ = ["SEED_DATE", "Runtime", "open_repository", "open_runtime"]

log = logging.getLogger("monitor.app")

SEED_DATE = datetime(2024, 7, 28, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    repo: Any
    pipeline: Any
    deliverer: Any


def open_repository(config: Config, stack: ExitStack) -> Any:
    """Open (and create or check the schema of) the configured database."""
    from storage import make_repository

    repo = make_repository(config.database)
    stack.callback(repo.close)
    return repo


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

    from .deliver import Deliverer
    from .fetch import HTTPFetcher
    from .pipeline import Pipeline

    repo = open_repository(config, stack)
    fetcher = HTTPFetcher(user_agent=config.user_agent, allow_private=config.allow_private,
                          proxy=config.proxy)  # fmt: skip
    stack.callback(fetcher.close)
    pipeline = Pipeline(config, repo, fetcher, clock=clock)
    pipeline.sync_sources()
    seeded = pipeline.load_seeds(seed_files(), SEED_DATE)
    if seeded:
        log.info("store.seeded articles=%d", seeded)
    return Runtime(config, repo, pipeline, Deliverer(config, repo, clock, notifiers))
