"""Prometheus metrics of a running daemon, fed from what its jobs return.

The poll job's ``CycleStats`` and the deliver job's ``DeliverStats`` are added to the
counters after each run (see ``monitor.daemon``), so no stage knows about metrics. The
queue depth and the sources by state are read from the database when scraped.

::

    monitor_polls_total                       sources polled
    monitor_poll_errors_total                 polls that failed
    monitor_polls_not_modified_total          polls answered 304
    monitor_entries_total                     feed entries read
    monitor_dedupe_decisions_total{decision}  new | duplicate | rereport (stored articles)
    monitor_matches_total                     watchlist matches
    monitor_alerts_queued_total               outbox rows written
    monitor_alerts_sent_total                 alerts (and digest rows) delivered
    monitor_alerts_failed_total{outcome}      retry | dead
    monitor_articles_pruned_total             bodies dropped by retention
    monitor_stories_settled_total             lone stories merged a week on (settle job)
    monitor_job_failures_total{job}           jobs that raised
    monitor_config_reloads_total{result}      ok | error
    monitor_cycle_duration_seconds            poll cycles that polled something
    monitor_deliver_duration_seconds          deliver runs that sent something
    monitor_last_cycle_timestamp_seconds      end of the last poll cycle
    monitor_outbox_queue_depth{status}        pending | retrying | dead (at scrape)
    monitor_sources{state}                    ok | failing | disabled | silent (at scrape)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

log = logging.getLogger("monitor.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CYCLE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The daemon's counters on a registry of their own (no global state).

    Args:
        outbox: returns ``{pending, retrying, dead}`` (``Repository.get_outbox_summary``).
        sources: returns ``state -> count`` of the sources.
    """

    def __init__(self, outbox: Callable[[], Mapping[str, Any]] | None = None,
                 sources: Callable[[], Mapping[str, int]] | None = None) -> None:  # fmt: skip
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("monitor_polls", "Sources polled.", registry=r)
        self.poll_errors = Counter("monitor_poll_errors", "Polls that failed.", registry=r)
        self.not_modified = Counter("monitor_polls_not_modified", "Polls answered 304.",
                                    registry=r)  # fmt: skip
        self.entries = Counter("monitor_entries", "Feed entries read.", registry=r)
        self.decisions = Counter("monitor_dedupe_decisions", "Dedupe decisions of stored "
                                 "articles.", ["decision"], registry=r)  # fmt: skip
        self.matches = Counter("monitor_matches", "Watchlist matches.", registry=r)
        self.queued = Counter("monitor_alerts_queued", "Alerts written to the outbox.",
                              registry=r)  # fmt: skip
        self.sent = Counter("monitor_alerts_sent", "Alerts delivered.", registry=r)
        self.failed = Counter("monitor_alerts_failed", "Alert sends that failed.",
                              ["outcome"], registry=r)  # fmt: skip
        self.pruned = Counter("monitor_articles_pruned", "Article bodies dropped by retention.",
                              registry=r)  # fmt: skip
        self.settled = Counter("monitor_stories_settled", "Lone stories merged into the story "
                               "they belong to once their window had passed.",
                               registry=r)  # fmt: skip
        self.job_failures = Counter("monitor_job_failures", "Jobs that raised.", ["job"],
                                    registry=r)  # fmt: skip
        self.reloads = Counter("monitor_config_reloads", "Config reloads.", ["result"],
                               registry=r)  # fmt: skip
        self.cycle = Histogram("monitor_cycle_duration_seconds", "Poll cycles that polled "
                               "something.", buckets=_CYCLE_BUCKETS, registry=r)  # fmt: skip
        self.deliver = Histogram("monitor_deliver_duration_seconds", "Deliver runs that "
                                 "handled alerts.", buckets=_CYCLE_BUCKETS, registry=r)  # fmt: skip
        self.last_cycle = Gauge("monitor_last_cycle_timestamp_seconds",
                                "Unix time the last poll cycle ended.", registry=r)  # fmt: skip
        for label in ("new", "duplicate", "rereport"):
            self.decisions.labels(label)
        for label in ("retry", "dead"):
            self.failed.labels(label)
        for label in ("ok", "error"):
            self.reloads.labels(label)
        if outbox is not None or sources is not None:
            r.register(_ScrapeCollector(outbox, sources))

    def observe_cycle(self, stats: Any, seconds: float) -> None:
        """Add one poll cycle's ``CycleStats``."""
        self.last_cycle.set(time.time())
        if not stats.sources:
            return  # an idle tick: nothing was due
        self.polls.inc(stats.sources)
        self.poll_errors.inc(stats.failed)
        self.not_modified.inc(stats.not_modified)
        self.entries.inc(stats.entries)
        self.decisions.labels("new").inc(stats.new)
        self.decisions.labels("duplicate").inc(stats.duplicates)
        self.decisions.labels("rereport").inc(stats.rereports)
        self.matches.inc(stats.matches)
        self.queued.inc(stats.alerts)
        self.cycle.observe(seconds)

    def observe_delivery(self, stats: Any, seconds: float) -> None:
        """Add one deliver run's ``DeliverStats``."""
        if not (stats.sent or stats.retrying or stats.dead or stats.held):
            return
        self.sent.inc(stats.sent)
        self.failed.labels("retry").inc(stats.retrying)
        self.failed.labels("dead").inc(stats.dead)
        self.deliver.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _ScrapeCollector(Collector):
    """Gauges read from the database at scrape time; a failing read leaves them out."""

    def __init__(self, outbox: Callable[[], Mapping[str, Any]] | None,
                 sources: Callable[[], Mapping[str, int]] | None) -> None:  # fmt: skip
        self._outbox = outbox
        self._sources = sources

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self._outbox is not None:
            depth = GaugeMetricFamily("monitor_outbox_queue_depth", "Outbox rows by status.",
                                      labels=["status"])  # fmt: skip
            summary = self._read(self._outbox)
            if summary is not None:
                for status in ("pending", "retrying", "dead"):
                    depth.add_metric([status], float(summary.get(status, 0)))
                yield depth
        if self._sources is not None:
            states = GaugeMetricFamily("monitor_sources", "Sources by state.", labels=["state"])
            counts = self._read(self._sources)
            if counts is not None:
                for state in ("ok", "failing", "disabled", "silent"):
                    states.add_metric([state], float(counts.get(state, 0)))
                yield states

    @staticmethod
    def _read(read: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any] | None:
        try:
            return read()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics.read_failed error=%s", type(exc).__name__)
            return None
