"""Excuses and technical claims (POLICY §6, seed 000 §6).

An excuse must arrive by the end of the 5th working day after the session's
date, dates taken in the course's time zone, weekend days excluded.  Staff
decide; an accepted excuse makes the record `excused` (out of the
denominator) with `alternative_content` flagged.  An accepted `technical`
claim instead credits the covered gap: the session is evaluated again with
the claim in `SessionFacts.technical_claims`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Final, Literal

from app.rules.outcome import Record, revise
from app.rules.policy import Policy

__all__ = [
    "CATEGORIES",
    "ExcuseCategory",
    "ExcuseCheck",
    "apply_excuse",
    "check_excuse",
    "excuse_accepted_in_time",
    "excuse_deadline",
]

ExcuseCategory = Literal["medical", "bereavement", "official", "travel", "technical"]
# seed 000 §6: medical, bereavement, official obligations, travel; §7: technical issues.
CATEGORIES: Final[tuple[ExcuseCategory, ...]] = (
    "medical",
    "bereavement",
    "official",
    "travel",
    "technical",
)


def excuse_deadline(session_start: float, timezone: str, policy: Policy) -> float:
    """End of the `excuse_window`-th working day after the session's local date.

    Returned as the instant the next day begins (local midnight): an excuse is
    in time when submitted strictly before it.
    """
    tz = zoneinfo.ZoneInfo(timezone)
    day = dt.datetime.fromtimestamp(session_start, tz).date()
    counted = 0
    while counted < policy.excuse_window:
        day += dt.timedelta(days=1)
        if day.weekday() not in policy.weekend:
            counted += 1
    following = day + dt.timedelta(days=1)
    return dt.datetime(following.year, following.month, following.day, tzinfo=tz).timestamp()


def excuse_accepted_in_time(
    session_start: float, submitted_at: float, timezone: str, policy: Policy
) -> bool:
    """Whether an excuse submitted at `submitted_at` is inside the window."""
    return submitted_at < excuse_deadline(session_start, timezone, policy)


@dataclass(frozen=True, slots=True)
class ExcuseCheck:
    """Whether an excuse may go to staff for a decision, and why not."""

    admissible: bool
    reasons: tuple[str, ...]
    deadline: float


def check_excuse(
    category: str, session_start: float, submitted_at: float, timezone: str, policy: Policy
) -> ExcuseCheck:
    """Check category and window; late excuses are rejected with `excuse_window_passed`."""
    deadline = excuse_deadline(session_start, timezone, policy)
    reasons = []
    if category not in CATEGORIES:
        reasons.append("unknown_category")
    if submitted_at >= deadline:
        reasons.append("excuse_window_passed")
    return ExcuseCheck(not reasons, tuple(reasons), deadline)


def apply_excuse(record: Record, category: ExcuseCategory) -> Record:
    """The record after staff accepted a non-technical excuse, with its next revision.

    A cancelled record stays cancelled.  Technical claims are not applied
    here: they credit time, so the session is evaluated again with the claim.
    """
    if category == "technical":
        raise ValueError("technical claims credit time: evaluate the session again with them")
    if record.status == "cancelled":
        return record
    excused = dataclasses.replace(
        record,
        status="excused",
        credit=0.0,
        reasons=("excused", f"excuse_{category}"),
        flags=tuple(dict.fromkeys((*record.flags, "alternative_content"))),
    )
    return revise(record, excused)
