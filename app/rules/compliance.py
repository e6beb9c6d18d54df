"""Capacity, staffing and teaching-model compliance (POLICY §7).

Figures are reported for every live class; `enforce_capacity` decides
whether the live path refuses a join beyond the hard cap (`admit`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from app.rules.policy import Policy

__all__ = [
    "TEACHING_MODELS",
    "WeekCheck",
    "add_month",
    "admit",
    "course_compliance",
    "hard_cap",
    "instructors_required",
    "longer_than_month",
    "recording_overdue",
    "session_compliance",
    "teaching_model_check",
]

EPS: Final = 1e-9
# seed 002 art. 21.5: synchronous meetings + asynchronous equivalents per week.
TEACHING_MODELS: Final[dict[str, tuple[int, int]]] = {"2+1": (2, 1), "1+2": (1, 2), "1+1": (1, 1)}


def hard_cap(policy: Policy) -> int:
    """seed 001: 35 per virtual class, up to 25% more: ⌊35 × 1.25⌋ = 43."""
    return math.floor(policy.class_cap * (1.0 + policy.cap_increase) + EPS)


def admit(learners_connected: int, policy: Policy) -> bool:
    """Whether one more learner may join (refused only with `enforce_capacity`)."""
    return not policy.enforce_capacity or learners_connected < hard_cap(policy)


def instructors_required(learners: int, long_course: bool, policy: Policy) -> int:
    """seed 001: 25 learners per instructor beyond one month, else one per 50."""
    per = policy.learners_per_instructor if long_course else policy.learners_per_assistant
    return math.ceil(learners / per) if per > 0 else 0


def session_compliance(
    learners: int,
    peak_learners: int,
    staff_present: int,
    long_course: bool,
    policy: Policy,
) -> dict[str, object]:
    """Cap and staffing figures of one live class.

    `learners` are the learners on the roster, `peak_learners` the most
    connected at once, `staff_present` the instructors and assistants who
    joined.
    """
    cap = hard_cap(policy)
    required = instructors_required(learners, long_course, policy)
    return {
        "learners": learners,
        "peak_learners": peak_learners,
        "class_cap": policy.class_cap,
        "hard_cap": cap,
        "over_class_cap": learners > policy.class_cap,
        "over_hard_cap": learners > cap,
        "staff_required": required,
        "staff_present": staff_present,
        "understaffed": staff_present < required,
    }


def add_month(day: dt.date) -> dt.date:
    """The same day one calendar month later (clamped to the month's last day)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def longer_than_month(starts_on: dt.date, ends_on: dt.date) -> bool:
    """seed 001 "courses longer than one month": ends after the same day a month on."""
    return ends_on > add_month(starts_on)


def course_compliance(
    delivery: Literal["synchronous", "asynchronous", "blended"],
    starts_on: dt.date,
    ends_on: dt.date,
    synchronous_fraction: float,
    policy: Policy,
) -> list[str]:
    """Problems of a course at creation (seed 001): empty when compliant."""
    problems = []
    if delivery == "asynchronous":
        if ends_on < add_month(starts_on):
            problems.append("async_course_shorter_than_one_month")
        elif longer_than_month(starts_on, ends_on) and (
            synchronous_fraction + EPS < policy.min_sync_content
        ):
            problems.append("synchronous_content_below_minimum")
    return problems


@dataclass(frozen=True, slots=True)
class WeekCheck:
    """One ISO week of a course checked against its teaching model."""

    iso_year: int
    iso_week: int
    synchronous: int
    expected_synchronous: int
    asynchronous: int | None
    expected_asynchronous: int
    ok: bool


def teaching_model_check(
    model: str,
    synchronous_starts: Iterable[float],
    timezone: str = "UTC",
    asynchronous_by_week: Mapping[tuple[int, int], int] | None = None,
) -> list[WeekCheck]:
    """seed 002 art. 21.5-21.7: weekly meetings against the approved model.

    Every ISO week from the first to the last scheduled meeting is checked,
    so a week with no meeting shows up.  `asynchronous_by_week` (ISO year,
    week → asynchronous activities) is checked when given.
    """
    sync_expected, async_expected = TEACHING_MODELS[model]
    tz = zoneinfo.ZoneInfo(timezone)
    counts: dict[tuple[int, int], int] = {}
    mondays: list[dt.date] = []
    for ts in synchronous_starts:
        day = dt.datetime.fromtimestamp(ts, tz).date()
        iso = day.isocalendar()
        counts[(iso.year, iso.week)] = counts.get((iso.year, iso.week), 0) + 1
        mondays.append(day - dt.timedelta(days=day.weekday()))
    out: list[WeekCheck] = []
    if not mondays:
        return out
    monday, last = min(mondays), max(mondays)
    while monday <= last:
        iso = monday.isocalendar()
        key = (iso.year, iso.week)
        sync = counts.get(key, 0)
        asyn = None if asynchronous_by_week is None else asynchronous_by_week.get(key, 0)
        ok = sync == sync_expected and (asyn is None or asyn >= async_expected)
        out.append(WeekCheck(iso.year, iso.week, sync, sync_expected, asyn, async_expected, ok))
        monday += dt.timedelta(days=7)
    return out


def recording_overdue(
    session_end: float, available_at: float | None, now: float, policy: Policy
) -> bool:
    """seed 002 art. 6, 24: the recording must be available within `recording_due`."""
    due = session_end + policy.recording_due
    if available_at is not None:
        return available_at > due
    return now > due
