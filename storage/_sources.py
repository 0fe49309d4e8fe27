"""``SQLRepository``'s sources: the configured feeds and pages, their leases, and the
outcome of each poll."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, update

from monitor.types import AlertIntent, PollIntent, SourceState

from . import models as m
from ._engine import retry_transactions

OWNER_MAX = 100  # length of the lease_owner columns


@retry_transactions()
class SourceStore:
    """The sources part of ``SQLRepository`` (its contract holds here)."""

    _insert: Callable[[Table], Any]
    _tx: Callable[[], AbstractContextManager[Connection]]

    def sync_sources(self, specs: Sequence[tuple[str, str, str]], now: datetime) -> None:
        """Make the stored sources those of the config: ``(name, url, type)`` each.

        A source whose configured URL changed starts afresh (validators, 410 and a
        permanent redirect are forgotten); a source no longer configured is disabled.
        """
        names = [s[0] for s in specs]
        with self._tx() as conn:
            rows = {r.name: r for r in conn.execute(select(m.sources))}
            for name, url, kind in specs:
                row = rows.get(name)
                if row is None:  # another daemon may be adding it right now
                    conn.execute(self._insert(m.sources).values(
                        name=name, url=url, config_url=url, type=kind, enabled=True,
                        next_poll_at=now, consecutive_failures=0, entries_total=0,
                    ))  # fmt: skip
                elif row.config_url != url:
                    conn.execute(update(m.sources).where(m.sources.c.name == name).values(
                        url=url, config_url=url, type=kind, enabled=True, etag=None,
                        last_modified=None, disabled_reason=None, next_poll_at=now,
                        consecutive_failures=0,
                    ))  # fmt: skip
                elif not row.enabled or row.type != kind:
                    conn.execute(update(m.sources).where(m.sources.c.name == name)
                                 .values(enabled=True, type=kind))  # fmt: skip
            conn.execute(update(m.sources).where(m.sources.c.name.not_in(names))
                         .values(enabled=False))  # fmt: skip

    def claim_sources(self, now: datetime, owner: str, lease: timedelta, *,
                      all_enabled: bool = False,
                      limit: int | None = None) -> list[SourceState]:  # fmt: skip
        """Lease the sources due now (or every enabled one) to ``owner``, at most ``limit``,
        the longest due first.

        A 410-disabled source is never claimed; a leased one is skipped until its lease
        expires, so a killed daemon's work is taken over. Rows another transaction is
        claiming are skipped, not waited for: concurrent claims get disjoint sources.
        """
        s = m.sources.c
        cond = and_(s.enabled.is_(True), s.disabled_reason.is_(None),
                    or_(s.lease_until.is_(None), s.lease_until < now))  # fmt: skip
        if all_enabled:
            cond = and_(cond, or_(s.retry_after_until.is_(None), s.retry_after_until <= now))
        else:
            cond = and_(cond, s.next_poll_at <= now)
        with self._tx() as conn:
            q = select(m.sources).where(cond).order_by(s.next_poll_at, s.id).limit(limit)
            rows = conn.execute(q.with_for_update(skip_locked=True)).all()
            if rows:
                conn.execute(update(m.sources).where(s.id.in_([r.id for r in rows])).values(
                    lease_owner=lease_owner(owner), lease_until=now + lease))  # fmt: skip
        return [_source_state(r) for r in rows]

    def extend_source_leases(self, owner: str, names: Sequence[str], until: datetime) -> int:
        """Move to ``until`` the leases ``owner`` still holds on ``names`` (work in progress
        outlasting the lease). Returns how many were extended."""
        s = m.sources.c
        with self._tx() as conn:
            return int(conn.execute(update(m.sources).where(
                s.name.in_(list(names)), s.lease_owner == lease_owner(owner),
            ).values(lease_until=until)).rowcount)  # fmt: skip

    def record_poll(self, intent: PollIntent) -> None:
        """Store the outcome of one poll and release the source's lease."""
        self._record_polls([intent])

    def record_polls(self, intents: Sequence[PollIntent]) -> None:
        """Store the outcomes of several polls in one transaction, releasing their leases
        (a cycle of many unchanged sources writes once, not once per source)."""
        self._record_polls(intents)

    def _record_polls(self, intents: Sequence[PollIntent]) -> None:
        # Outcomes of one shape (500 unchanged feeds, say) go as one executemany: one
        # statement per outcome took about 1 ms each, a third of an unchanged cycle.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for intent in intents:
            row = _poll_params(intent)
            shapes.setdefault(tuple(row), []).append(row)
        with self._tx() as conn:
            for keys, rows in shapes.items():
                conn.execute(_poll_update(keys), rows)

    def get_sources(self) -> list[dict[str, Any]]:
        """Every stored source with its health fields, by name."""
        with self._tx() as conn:
            rows = conn.execute(select(m.sources).order_by(m.sources.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def get_source(self, name: str) -> dict[str, Any] | None:
        """One stored source with its health fields, or None."""
        with self._tx() as conn:
            row = conn.execute(select(m.sources).where(m.sources.c.name == name)).first()
        return dict(row._mapping) if row else None

    def announce_source(self, name: str, state: str | None, alert: AlertIntent,
                        now: datetime) -> None:  # fmt: skip
        """Record the health state told about a source and queue the message, together."""
        with self._tx() as conn:
            conn.execute(update(m.sources).where(m.sources.c.name == name)
                         .values(announced=state))  # fmt: skip
            key = f"source/{name}/{alert.payload.get('title', '')}/{now.isoformat()}"[:300]
            conn.execute(self._insert(m.outbox).values(
                key=key, story_id=0, article_id=0, watchlist=alert.watchlist,
                target=alert.target, payload=alert.payload, status="pending",
                digest="immediate", attempts=0, next_attempt_at=now, created_at=now))  # fmt: skip

def _poll_params(intent: PollIntent) -> dict[str, Any]:
    """The parameters of the update one poll outcome makes to its source row: a column's
    new value under ``p_<column>``, or for ``_POLL_EXPRESSIONS`` the operand of its
    expression (see ``_poll_update``)."""
    values: dict[str, Any] = {
        "p_source": intent.source, "p_last_polled": intent.polled_at,
        "p_next_poll_at": intent.next_poll_at, "p_lease_owner": None, "p_lease_until": None,
        "p_retry_after_until": intent.retry_after_until,
    }  # fmt: skip
    if intent.ok:
        values.update(p_last_success=intent.polled_at, p_consecutive_failures=0,
                      p_first_success=intent.polled_at)  # fmt: skip
        if not intent.not_modified:
            values.update(p_etag=intent.etag, p_last_modified=intent.last_modified)
        if intent.new_entries:
            values.update(p_last_new_entry=intent.polled_at,
                          p_entries_total=intent.new_entries)  # fmt: skip
    else:
        values.update(p_last_error=intent.error, p_failures_added=1)
    if intent.new_url:
        values.update(p_url=intent.new_url, p_etag=None, p_last_modified=None)
    if intent.disabled_reason:
        values.update(p_disabled_reason=intent.disabled_reason)
    return values


# Parameters that are operands of an expression on the stored value, not the new value.
_POLL_EXPRESSIONS: dict[str, tuple[str, Any]] = {
    "p_first_success": ("first_success", lambda col, p: func.coalesce(col, p)),
    "p_entries_total": ("entries_total", lambda col, p: col + p),
    "p_failures_added": ("consecutive_failures", lambda col, p: col + p),
}


@functools.lru_cache(maxsize=64)
def _poll_update(keys: tuple[str, ...]) -> Any:
    """The UPDATE of a source row for outcomes with these ``_poll_params`` keys."""
    s = m.sources.c
    values: dict[str, Any] = {}
    for key in keys:
        if key == "p_source":
            continue
        name, expression = _POLL_EXPRESSIONS.get(key, (key[2:], lambda _, p: p))
        values[name] = expression(s[name], bindparam(key, type_=s[name].type))
    where = s.name == bindparam("p_source", type_=s.name.type)
    return update(m.sources).where(where).values(values)


def _source_state(r: Any) -> SourceState:
    return SourceState(
        name=r.name, url=r.url, type=r.type, etag=r.etag, last_modified=r.last_modified,
        first_success=r.first_success, consecutive_failures=r.consecutive_failures,
        disabled_reason=r.disabled_reason, next_poll_at=r.next_poll_at,
    )  # fmt: skip


def lease_owner(owner: str) -> str:
    """``owner`` fitted to its column: a long host name keeps its end (pid, role) unique."""
    if len(owner) <= OWNER_MAX:
        return owner
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return f"{digest}~{owner[-(OWNER_MAX - 13):]}"
