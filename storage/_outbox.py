"""``SQLRepository``'s outbox: alerts queued with their articles, claimed by the
delivery workers under leases, sent, retried or kept as dead letters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from monitor.types import Alert, OutboxItem

from . import models as m
from ._engine import retry_transactions
from ._sources import lease_owner


@retry_transactions()
class OutboxStore:
    """The outbox part of ``SQLRepository`` (its contract holds here)."""

    _tx: Callable[[], AbstractContextManager[Connection]]

    def claim_alerts(self, now: datetime, owner: str, lease: timedelta, *,
                     limit: int = 500) -> list[OutboxItem]:  # fmt: skip
        """Lease the pending alerts (immediate or digest) due now; a killed daemon's lease
        expires and another daemon takes the rows over."""
        o = m.outbox.c
        cond = and_(o.status == "pending", o.next_attempt_at <= now,
                    or_(o.lease_until.is_(None), o.lease_until < now))  # fmt: skip
        with self._tx() as conn:
            q = select(m.outbox).where(cond).order_by(o.id).limit(limit)
            rows = conn.execute(q.with_for_update(skip_locked=True)).all()
            if rows:
                conn.execute(update(m.outbox).where(o.id.in_([r.id for r in rows])).values(
                    lease_owner=lease_owner(owner), lease_until=now + lease))  # fmt: skip
        return [OutboxItem(id=r.id, key=r.key, watchlist=r.watchlist, target=r.target,
                           digest=r.digest, attempts=r.attempts, alert=_alert_from_row(r))
                for r in rows]  # fmt: skip

    def extend_alert_leases(self, owner: str, ids: Sequence[int], until: datetime) -> int:
        """Move to ``until`` the leases ``owner`` still holds on the outbox rows ``ids``
        (sends outlasting the lease). Returns how many were extended."""
        o = m.outbox.c
        with self._tx() as conn:
            return int(conn.execute(update(m.outbox).where(
                o.id.in_(list(ids)), o.lease_owner == lease_owner(owner), o.status == "pending",
            ).values(lease_until=until)).rowcount)  # fmt: skip

    def mark_sent(self, item_id: int, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(update(m.outbox).where(m.outbox.c.id == item_id).values(
                status="sent", sent_at=now, attempts=m.outbox.c.attempts + 1,
                lease_owner=None, lease_until=None, last_error=None))  # fmt: skip

    def mark_failed(self, item_id: int, error: str, *, retry_at: datetime | None) -> None:
        """Record a failed send: retry at ``retry_at``, or a dead letter when None."""
        values: dict[str, Any] = {
            "attempts": m.outbox.c.attempts + 1, "last_error": error,
            "lease_owner": None, "lease_until": None,
        }  # fmt: skip
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = retry_at
        with self._tx() as conn:
            conn.execute(update(m.outbox).where(m.outbox.c.id == item_id).values(**values))

    def defer_alert(self, item_id: int, until: datetime, *, digest: str | None = None) -> None:
        """Hold a claimed alert until ``until`` (quiet hours, rate limit) without counting
        an attempt; ``digest`` moves it into a digest."""
        values: dict[str, Any] = {"next_attempt_at": until, "lease_owner": None,
                                  "lease_until": None}  # fmt: skip
        if digest is not None:
            values["digest"] = digest
        with self._tx() as conn:
            conn.execute(update(m.outbox).where(m.outbox.c.id == item_id).values(**values))

    def count_sent(self, target: str, since: datetime) -> int:
        """Alerts sent to ``target`` since ``since`` (for ``max_per_hour``)."""
        o = m.outbox.c
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).where(
                o.target == target, o.status == "sent", o.digest == "immediate",
                o.sent_at >= since)).scalar_one())  # fmt: skip

    def requeue_dead(self, now: datetime) -> int:
        """Put every dead letter back in the queue. Returns how many."""
        o = m.outbox.c
        with self._tx() as conn:
            return int(conn.execute(update(m.outbox).where(o.status == "dead").values(
                status="pending", attempts=0, next_attempt_at=now)).rowcount)  # fmt: skip

    def get_outbox_summary(self) -> dict[str, Any]:
        o = m.outbox.c
        with self._tx() as conn:
            pending = conn.execute(select(func.count()).where(
                o.status == "pending", o.attempts == 0)).scalar_one()  # fmt: skip
            retrying = conn.execute(select(func.count()).where(
                o.status == "pending", o.attempts > 0)).scalar_one()  # fmt: skip
            dead = conn.execute(select(o.watchlist, o.target, o.last_error)
                                .where(o.status == "dead").order_by(o.id)).all()  # fmt: skip
        return {"pending": pending, "retrying": retrying, "dead": len(dead),
                "dead_letters": [{"watchlist": r.watchlist, "target": r.target,
                                  "reason": r.last_error or ""} for r in dead]}  # fmt: skip

    def get_watchlist_counts(self, since: datetime) -> dict[str, tuple[int, int]]:
        """``watchlist -> (matches, alerts sent)`` since ``since``."""
        mt, o = m.matches.c, m.outbox.c
        with self._tx() as conn:
            ms: dict[str, int] = dict(conn.execute(select(mt.watchlist, func.count()).where(
                mt.created_at >= since).group_by(mt.watchlist)).all())  # fmt: skip
            al: dict[str, int] = dict(conn.execute(select(o.watchlist, func.count()).where(
                o.status == "sent", o.sent_at >= since).group_by(o.watchlist)).all())  # fmt: skip
        return {w: (int(ms.get(w, 0)), int(al.get(w, 0))) for w in set(ms) | set(al)}

    def get_sent_alerts(self, since: datetime) -> list[dict[str, Any]]:
        o = m.outbox.c
        with self._tx() as conn:
            rows = conn.execute(select(o.key, o.watchlist, o.target, o.sent_at, o.payload)
                                .where(o.status == "sent", o.sent_at >= since)
                                .order_by(o.sent_at.desc())).all()  # fmt: skip
        return [dict(r._mapping) for r in rows]


def _alert_from_row(row: Any) -> Alert:
    payload = dict(row.payload)
    for key in ("terms", "fields", "sources"):
        payload[key] = tuple(payload.get(key) or ())
    payload["highlights"] = tuple((int(a), int(b)) for a, b in payload.get("highlights") or ())
    published = payload.get("published")
    payload["published"] = datetime.fromisoformat(published) if published else None
    payload["urgent"] = bool(payload.get("urgent", False))
    return Alert(key=row.key, story_id=row.story_id, **payload)


def alert_payload(fields: dict[str, Any]) -> dict[str, Any]:
    """Make ``Alert`` fields (without key and story_id) JSON-safe for the outbox."""
    out = dict(fields)
    if out.get("published") is not None:
        out["published"] = out["published"].isoformat()
    for key in ("terms", "fields", "sources", "highlights"):
        out[key] = [list(x) if isinstance(x, tuple) else x for x in out.get(key) or ()]
    return out
