"""Calendar arithmetic for alert delivery: digest times and quiet hours (pure).

All inputs and outputs are UTC-aware datetimes; local times are computed in the spec's
zone, so daylight-saving changes move a "daily 08:00" digest with the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import DigestSpec

__all__ = ["QuietHours", "next_digest_at", "parse_quiet_hours", "quiet_until"]

_QUIET = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span of local time in which non-urgent alerts are held."""

    start: time
    end: time
    tz: str = "UTC"

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz}"


def parse_quiet_hours(text: str) -> QuietHours:
    """``"22:00-07:00 Asia/Tokyo"`` → QuietHours.

    Raises:
        ValueError: not of that form, or an unknown time zone.
    """
    m = _QUIET.match(str(text).strip())
    if not m:
        raise ValueError(f"not quiet hours: {text!r} (use e.g. 22:00-07:00 Asia/Tokyo)")
    h1, m1, h2, m2 = (int(x) for x in m.group(1, 2, 3, 4))
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"not quiet hours: {text!r} (hours 0-23, minutes 0-59)")
    tz = m.group(5) or "UTC"
    _zone(tz)
    return QuietHours(time(h1, m1), time(h2, m2), tz)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def next_digest_at(spec: DigestSpec, after: datetime) -> datetime:
    """The first digest time of ``spec`` strictly after ``after`` (``after`` for immediate)."""
    if spec.kind == "immediate":
        return after
    if spec.kind == "hourly":
        top = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return top + timedelta(hours=1)
    zone = _zone(spec.tz)
    local = after.astimezone(zone)
    at = spec.at or time(8, 0)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


def quiet_until(quiet: QuietHours | None, now: datetime) -> datetime | None:
    """When the quiet hours around ``now`` end, or None when ``now`` is not quiet."""
    if quiet is None or quiet.start == quiet.end:
        return None
    zone = _zone(quiet.tz)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        end_day = local.date()
    else:  # spans midnight, e.g. 22:00-07:00
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() + timedelta(days=1) if t >= quiet.start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)
