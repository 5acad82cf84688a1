"""RFC3339 timestamps as stored in status (UTC, ``Z``); never reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(now: datetime) -> datetime:
    """``now`` in UTC; a naive datetime is taken to be UTC already."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def rfc3339(now: datetime) -> str:
    """``2024-05-01T12:00:00Z`` (microseconds kept when present, so round trips are exact)."""
    t = utc(now)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}"
    return text + "Z"


def parse_rfc3339(text: str) -> datetime:
    """The instant a stored timestamp names."""
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def seconds_since(stamp: str | None, now: datetime) -> float:
    """Seconds from ``stamp`` to ``now``; infinite when there is no stamp."""
    if stamp is None:
        return float("inf")
    return (utc(now) - parse_rfc3339(stamp)).total_seconds()


def seconds_left(stamp: str | None, duration: float, now: datetime) -> float:
    """Seconds until ``duration`` after ``stamp`` has passed (0 when already past or unstamped)."""
    return max(0.0, duration - seconds_since(stamp, now)) if stamp is not None else 0.0
