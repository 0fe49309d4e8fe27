"""Deliver queued alerts: claim due outbox rows, send each to its target, record the outcome.

::

    claim due outbox rows      storage (lease)                          I/O
    group by target            one worker per target                    parallel
    send                       notify.Notifier.send → Delivery          I/O
    mark                       sent │ retry at backoff │ dead letter     I/O

At-least-once: a row is marked only after its send returns, so a process killed between
the two sends it again once its lease expires (the idempotency key travels with it).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config
from .errors import ConfigError
from .pipeline import CONSOLE, redact_secrets
from .types import Delivery, DeliveryOutcome, OutboxItem

__all__ = ["DeliverStats", "Deliverer", "retry_delay"]

log = logging.getLogger("monitor.deliver")

LEASE = timedelta(minutes=2)
FIRST_RETRY = 30.0  # seconds
MAX_DELAY = 3600.0
MAX_ATTEMPTS = 30  # about a day of trying with the delays above


def retry_delay(attempts: int, *, first: float = FIRST_RETRY, cap: float = MAX_DELAY,
                rng: random.Random | None = None) -> float:  # fmt: skip
    """Seconds before retry number ``attempts`` (1-based): doubling from ``first``, capped.

    The jitter only shortens the delay (down to 80%), so the first retry comes within
    ``first`` seconds and no delay passes ``cap``, while retries of many alerts spread out.
    """
    base = min(first * 2 ** max(attempts - 1, 0), cap)
    return base * (rng or random).uniform(0.8, 1.0)


@dataclass
class DeliverStats:
    sent: int = 0
    retrying: int = 0
    dead: int = 0


class Deliverer:
    """Sends what the outbox holds, each target on its own.

    Args:
        config: the validated config (notifier URLs, secrets to redact).
        repo: the storage.
        clock: the current UTC time.
        notifiers: ready notifiers by name (tests and ``notify test``); others are made
            from the config on first use.
    """

    def __init__(self, config: Config, repo: Any,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 notifiers: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self.config = config
        self.repo = repo
        self.clock = clock
        self._notifiers: dict[str, Any] = dict(notifiers or {})
        self.owner = f"deliver:{id(self)}"

    def notifier(self, name: str) -> Any:
        """The notifier called ``name`` (``console`` prints to standard output)."""
        if name not in self._notifiers:
            from .notify import make_notifier

            url = "console://" if name == CONSOLE else self.config.notifiers.get(name)
            if url is None:
                raise ConfigError(f"notifier {name!r} is not configured")
            self._notifiers[name] = make_notifier(name, url)
        return self._notifiers[name]

    def deliver_due(self, *, limit: int = 200) -> DeliverStats:
        """Send every immediate alert that is due now; return what happened."""
        stats = DeliverStats()
        items = self.repo.claim_alerts(self.clock(), self.owner, LEASE, limit=limit)
        if not items:
            return stats
        by_target: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_target[item.target].append(item)
        with ThreadPoolExecutor(max_workers=min(8, len(by_target))) as pool:
            for result in pool.map(self._send_all, by_target.values()):
                stats.sent += result.sent
                stats.retrying += result.retrying
                stats.dead += result.dead
        return stats

    def _send_all(self, items: list[OutboxItem]) -> DeliverStats:
        stats = DeliverStats()
        for item in items:
            outcome = self._send(item)
            if outcome is DeliveryOutcome.SENT:
                stats.sent += 1
            elif outcome is DeliveryOutcome.RETRY:
                stats.retrying += 1
            else:
                stats.dead += 1
        return stats

    def _send(self, item: OutboxItem) -> DeliveryOutcome:
        try:
            delivery: Delivery = self.notifier(item.target).send(item.alert)
        except ConfigError as exc:
            delivery = Delivery(DeliveryOutcome.PERMANENT, error=str(exc))
        except Exception as exc:  # a notifier bug must not lose the alert
            log.exception("alert.send_crashed target=%s", item.target)
            delivery = Delivery(DeliveryOutcome.RETRY, error=f"{type(exc).__name__}")
        return self._record(item, delivery)

    def _record(self, item: OutboxItem, delivery: Delivery) -> DeliveryOutcome:
        now = self.clock()
        error = redact_secrets(delivery.error or "", self.config.secrets)
        if delivery.outcome is DeliveryOutcome.SENT:
            self.repo.mark_sent(item.id, now)
            log.info("alert.sent key=%s target=%s", item.key, item.target)
            return DeliveryOutcome.SENT
        attempts = item.attempts + 1
        if delivery.outcome is DeliveryOutcome.PERMANENT or attempts >= MAX_ATTEMPTS:
            self.repo.mark_failed(item.id, error, retry_at=None)
            log.error("alert.dead key=%s target=%s attempts=%d error=%s", item.key,
                      item.target, attempts, error)  # fmt: skip
            return DeliveryOutcome.PERMANENT
        delay = retry_delay(attempts)
        if delivery.retry_after:
            delay = min(max(delay, float(delivery.retry_after)), 86400.0)
        self.repo.mark_failed(item.id, error, retry_at=now + timedelta(seconds=delay))
        log.warning("alert.retry key=%s target=%s attempts=%d in=%.0fs error=%s", item.key,
                    item.target, attempts, delay, error)  # fmt: skip
        return DeliveryOutcome.RETRY
