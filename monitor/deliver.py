"""Deliver queued alerts: claim due outbox rows, send each to its target, record the outcome.

::

    claim due outbox rows       storage (lease, SKIP LOCKED)               I/O
    group by target             one worker per target                      parallel
    hold                        quiet hours │ max_per_hour → next digest
    send                        one alert │ one digest per schedule         I/O (notify)
    mark                        sent │ retry at backoff │ dead letter       I/O

At-least-once: a row is marked only after its send returns, so a process killed between
the two sends it again once its lease expires (the idempotency key travels with it).
Digest rows are queued with ``next_attempt_at`` at their digest time, so what is due is
decided by the database: a digest missed while the daemon was down goes out at the next
start, and two daemons never claim the same rows.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._leases import keep_leases
from .config import Config, DigestSpec, TargetConfig
from .errors import ConfigError
from .pipeline import CONSOLE, redact_secrets
from .schedule import next_digest_at, quiet_until
from .types import Alert, Delivery, DeliveryOutcome, OutboxItem

__all__ = ["DeliverStats", "Deliverer", "retry_delay"]

log = logging.getLogger("monitor.deliver")

FIRST_RETRY = 30.0  # seconds
MAX_DELAY = 3600.0
MAX_ATTEMPTS = 30  # about a day of trying with the delays above
OVERFLOW = "hourly"  # where alerts past max_per_hour go


def retry_delay(attempts: int, *, first: float = FIRST_RETRY, cap: float = MAX_DELAY,
                rng: random.Random | None = None) -> float:  # fmt: skip
    """Seconds before retry number ``attempts`` (1-based): doubling from ``first``, capped.

    The jitter only shortens the delay (down to 80%), so the first retry comes within
    ``first`` seconds and no delay passes ``cap``, while retries of many alerts spread out.
    """
    base = min(first * 2 ** max(attempts - 1, 0), cap)
    return float(base * (rng or random).uniform(0.8, 1.0))


@dataclass
class DeliverStats:
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    held: int = 0
    digests: int = 0

    def add(self, other: DeliverStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Deliverer:
    """Sends what the outbox holds, each target on its own.

    Args:
        config: the validated config (notifier URLs and options, secrets to redact).
        repo: the storage.
        clock: the current UTC time.
        notifiers: ready notifiers by name; others are made from the config on first use.
    """

    def __init__(self, config: Config, repo: Any,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 notifiers: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self.config = config
        self.repo = repo
        self.clock = clock
        self._notifiers: dict[str, Any] = dict(notifiers or {})
        self._made: dict[tuple[str, Path | None], Any] = {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:deliver"

    def notifier(self, name: str, watchlist: str | None = None) -> Any:
        """The notifier called ``name`` with the templates of ``watchlist``.

        ``console`` prints to standard output. Notifiers are made on first use and kept.
        """
        templates = self.config.templates_for(watchlist) if watchlist else self.config.templates
        key = (name, templates)
        if key not in self._made:
            if name in self._notifiers:
                return self._notifiers[name]
            from .notify import make_notifier

            url = "console://" if name == CONSOLE else self.config.notifiers.get(name)
            if url is None:
                raise ConfigError(f"notifier {name!r} is not configured")
            self._made[key] = make_notifier(name, url, templates_dir=templates)
        return self._made[key]

    def deliver_due(self, *, limit: int = 500) -> DeliverStats:
        """Send every alert and digest that is due now; return what happened."""
        stats = DeliverStats()
        lease = timedelta(seconds=self.config.lease)
        items = self.repo.claim_alerts(self.clock(), self.owner, lease, limit=limit)
        by_target: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_target[item.target].append(item)
        if not by_target:
            return stats

        def renew() -> None:  # many sends to a slow channel may outlast one lease
            self.repo.extend_alert_leases(self.owner, [i.id for i in items], self.clock() + lease)

        with keep_leases(renew, self.config.lease), \
                ThreadPoolExecutor(max_workers=min(8, len(by_target))) as pool:  # fmt: skip
            for result in pool.map(self._deliver_target, by_target.items()):
                stats.add(result)
        return stats

    # -- one target --------------------------------------------------------------------

    def _deliver_target(self, job: tuple[str, list[OutboxItem]]) -> DeliverStats:
        target, items = job
        stats = DeliverStats()
        options = self.config.targets.get(target, TargetConfig())
        now = self.clock()
        quiet_end = quiet_until(options.quiet_hours, now)
        held: list[OutboxItem] = []
        if quiet_end is not None:
            held = [i for i in items if not i.alert.urgent]
            for item in held:
                self.repo.defer_alert(item.id, quiet_end)
        stats.held += len(held)
        ready = [i for i in items if i not in held]
        singles = [i for i in ready if i.digest == "immediate"]
        stats.add(self._send_singles(target, singles, options, now))
        groups: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in ready:
            if item.digest != "immediate":
                groups[item.digest].append(item)
        for spec, group in groups.items():
            stats.add(self._send_digest(target, spec, group))
        return stats

    def _send_singles(self, target: str, items: Sequence[OutboxItem], options: TargetConfig,
                      now: datetime) -> DeliverStats:  # fmt: skip
        stats = DeliverStats()
        budget = None
        if options.max_per_hour is not None:
            budget = options.max_per_hour - self.repo.count_sent(target, now - timedelta(hours=1))
        for item in items:
            if budget is not None and budget <= 0 and not item.alert.urgent:
                until = next_digest_at(DigestSpec(kind=OVERFLOW), now)
                self.repo.defer_alert(item.id, until, digest=OVERFLOW)
                stats.held += 1
                continue
            delivery = self._call(target, _sender(item.alert), item.watchlist)
            outcome = self._record(item, delivery)
            _count(stats, outcome)
            if outcome is DeliveryOutcome.SENT and budget is not None:
                budget -= 1
        return stats

    def _send_digest(self, target: str, spec: str, items: Sequence[OutboxItem]) -> DeliverStats:
        stats = DeliverStats(digests=1)
        alerts = [self._with_story_sources(a) for a in _one_per_story(items)]
        title = f"{spec.split()[0].capitalize()} digest"
        delivery = self._call(target, lambda n: n.send_digest(alerts, title=title),
                              items[0].watchlist)  # fmt: skip
        for item in items:
            _count(stats, self._record(item, delivery))
        log.info("digest.%s target=%s spec=%r stories=%d", delivery.outcome.value, target, spec,
                 len(alerts))  # fmt: skip
        return stats

    def _with_story_sources(self, alert: Alert) -> Alert:
        story = self.repo.get_story(alert.story_id)
        if not story or not story["sources"]:
            return alert
        return replace(alert, sources=tuple(story["sources"]))

    def _call(self, target: str, send: Callable[[Any], Delivery],
              watchlist: str | None = None) -> Delivery:  # fmt: skip
        try:
            return send(self.notifier(target, watchlist))
        except ConfigError as exc:
            return Delivery(DeliveryOutcome.PERMANENT, error=str(exc))
        except Exception as exc:  # a notifier bug must not lose the alert
            log.exception("alert.send_crashed target=%s", target)
            return Delivery(DeliveryOutcome.RETRY, error=type(exc).__name__)

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
            self._tell_failure(item, error)
            return DeliveryOutcome.PERMANENT
        delay = retry_delay(attempts)
        if delivery.retry_after:
            delay = min(max(delay, float(delivery.retry_after)), 86400.0)
        self.repo.mark_failed(item.id, error, retry_at=now + timedelta(seconds=delay))
        log.warning("alert.retry key=%s target=%s attempts=%d in=%.0fs error=%s", item.key,
                    item.target, attempts, delay, error)  # fmt: skip
        return DeliveryOutcome.RETRY

    def _tell_failure(self, item: OutboxItem, error: str) -> None:
        """Tell the ``on_failure`` notifier of a dead letter (best effort, never recursive)."""
        name = self.config.on_failure
        if name is None or name == item.target:
            return
        alert = Alert(key=f"dead:{item.key}", watchlist=item.watchlist, target=name,
                      story_id=item.alert.story_id,
                      title=f"Alert to {item.target} failed: {item.alert.title}",
                      source=item.alert.source, link=item.alert.link,
                      published=item.alert.published,
                      snippet=f"Delivery to {item.target} gave up: {error}",
                      terms=item.alert.terms, urgent=True)  # fmt: skip
        delivery = self._call(name, lambda n: n.send(alert))
        if delivery.outcome is not DeliveryOutcome.SENT:
            log.error("alert.on_failure_failed target=%s error=%s", name,
                      redact_secrets(delivery.error or "", self.config.secrets))  # fmt: skip


def _one_per_story(items: Sequence[OutboxItem]) -> list[Alert]:
    """The digest's stories: one alert per story, in queue order."""
    seen: dict[int, Alert] = {}
    for item in items:
        seen.setdefault(item.alert.story_id, item.alert)
    return list(seen.values())


def _count(stats: DeliverStats, outcome: DeliveryOutcome) -> None:
    if outcome is DeliveryOutcome.SENT:
        stats.sent += 1
    elif outcome is DeliveryOutcome.RETRY:
        stats.retrying += 1
    else:
        stats.dead += 1


def _sender(alert: Alert) -> Callable[[Any], Delivery]:
    """Send ``alert`` with the notifier it is given."""

    def send(notifier: Any) -> Delivery:
        result: Delivery = notifier.send(alert)
        return result

    return send
