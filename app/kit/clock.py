"""The service's one clock. Everything that needs "now" calls `now()`; tests may shift it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_offset = 0.0


def now() -> float:
    """Current time as POSIX seconds (UTC)."""
    return time.time() + _offset


def shift(seconds: float) -> None:
    """Move the service clock (tests and the demo's accelerated replay only)."""
    global _offset
    _offset += seconds


def reset() -> None:
    global _offset
    _offset = 0.0


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def from_dt(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with a `Z`, millisecond precision."""
    if ts is None:
        return None
    return to_dt(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    """Parse an RFC 3339 time; naive times are taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return from_dt(datetime.fromisoformat(text))
