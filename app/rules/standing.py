"""Course standing of one learner over many sessions (POLICY §5).

Pure: the course's schedule, the learner's records and the warnings already
raised go in; rates, warnings (previous plus any new ones), certificate
status and flags come out.  `now` is part of `CourseFacts`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from app.rules.compliance import longer_than_month
from app.rules.outcome import Mode, Record, SessionKind, SessionOutcome
from app.rules.policy import Policy

__all__ = [
    "Assignment",
    "AsyncItem",
    "AsyncProgress",
    "Certificate",
    "CourseFacts",
    "LearnerInputs",
    "LowAttendanceWarning",
    "ScheduledSession",
    "Standing",
    "WeekReport",
    "course_standing",
    "weekly_report",
]

EPS: Final = 1e-9
Delivery = Literal["synchronous", "asynchronous", "blended"]
_NOT_COUNTED: Final = frozenset({"excused", "cancelled"})
_CONDUCT: Final = ("late_10m", "left_early_unexcused", "camera_off")


@dataclass(frozen=True, slots=True)
class ScheduledSession:
    """A session of the course schedule."""

    session_id: str
    start: float
    duration_s: float
    kind: SessionKind = "class"
    mode: Mode = "online"
    finalised: bool = False
    cancelled: bool = False  # cancelled (platform fault, institution): never counted


@dataclass(frozen=True, slots=True)
class AsyncItem:
    """A required or optional asynchronous item (video, reading, quiz...)."""

    item_id: str
    kind: str = "reading"
    required: bool = True
    duration_s: float = 0.0  # hours it stands for (seed 001: counted as attended hours)
    due: float | None = None  # counted in the hours denominator from then on


@dataclass(frozen=True, slots=True)
class AsyncProgress:
    """A learner's progress on one asynchronous item."""

    checkpoints_done: int = 0
    checkpoints_total: int = 0
    completed: bool = False
    time_spent_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Assignment:
    assignment_id: str
    due: float
    core: bool = True


@dataclass(frozen=True, slots=True)
class LowAttendanceWarning:
    """seed 000 §9: `first` at 50% of the minimum, `second` (with a support call) at 30%."""

    level: Literal["first", "second"]
    raised_at: float


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """A course's policy, schedule and content, at time `now`."""

    policy: Policy
    delivery: Delivery
    starts_on: dt.date | float
    ends_on: dt.date | float  # a date: the course ends at the end of that day
    sessions: tuple[ScheduledSession, ...]
    now: float
    async_items: tuple[AsyncItem, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    has_final: bool = True

    def _date(self, value: dt.date | float) -> dt.date:
        if isinstance(value, dt.date):
            return value
        return dt.datetime.fromtimestamp(value, zoneinfo.ZoneInfo(self.policy.timezone)).date()

    @property
    def end_ts(self) -> float:
        if isinstance(self.ends_on, dt.date):
            following = self.ends_on + dt.timedelta(days=1)
            tz = zoneinfo.ZoneInfo(self.policy.timezone)
            return dt.datetime(
                following.year, following.month, following.day, tzinfo=tz
            ).timestamp()
        return self.ends_on

    @property
    def longer_than_month(self) -> bool:
        return longer_than_month(self._date(self.starts_on), self._date(self.ends_on))


@dataclass(frozen=True, slots=True)
class LearnerInputs:
    """One learner's results so far."""

    user_id: str
    records: Mapping[str, Record]  # session id → record
    async_progress: Mapping[str, AsyncProgress] = field(default_factory=dict)
    submissions: Mapping[str, float] = field(default_factory=dict)  # assignment id → time
    final_score: float | None = None
    warnings: tuple[LowAttendanceWarning, ...] = ()  # raised before
    excused_sessions: frozenset[str] = frozenset()  # accepted excuses


@dataclass(frozen=True, slots=True)
class Certificate:
    status: Literal["eligible", "pending", "ineligible"]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Standing:
    """The CONTRACT of a learner's course standing."""

    user_id: str
    live_rate: float | None
    rates_by_mode: Mapping[str, float | None]
    hours_rate: float | None
    async_rate: float | None
    core_assignments: float | None
    final_score: float | None
    below_minimum: bool
    warnings: tuple[LowAttendanceWarning, ...]  # every warning, previous and new
    new_warnings: tuple[LowAttendanceWarning, ...]  # raised by this evaluation
    certificate: Certificate
    final_exam_eligible: bool | None  # None where the profile has no final-exam gate
    flags: tuple[str, ...]
    counted_sessions: int
    async_time_s: Mapping[str, float]  # seed 001: time spent on each item


@dataclass
class _Tally:
    credit: float = 0.0
    counted: int = 0
    remaining: int = 0

    @property
    def rate(self) -> float | None:
        return self.credit / self.counted if self.counted else None

    @property
    def best(self) -> float | None:
        """Best rate still reachable by attending every remaining session."""
        total = self.counted + self.remaining
        return (self.credit + self.remaining) / total if total else None


def _completed(item: AsyncItem, progress: AsyncProgress | None, policy: Policy) -> bool:
    if progress is None:
        return False
    if item.kind == "video":
        # seed 000 §3: videos verified through embedded checkpoints.
        total = progress.checkpoints_total
        return (
            total > 0 and progress.checkpoints_done >= policy.video_complete_fraction * total - EPS
        )
    return progress.completed


def _warnings(
    previous: tuple[LowAttendanceWarning, ...], standing: float | None, policy: Policy, now: float
) -> tuple[LowAttendanceWarning, ...]:
    """seed 000 §9: first at ≤ 0.5 of the minimum, second at ≤ 0.3; each once, in order."""
    if standing is None:
        return ()
    levels = {w.level for w in previous}
    new: list[LowAttendanceWarning] = []
    if "first" not in levels and standing <= policy.first_warning + EPS:
        new.append(LowAttendanceWarning("first", now))
        levels.add("first")
    if "first" in levels and "second" not in levels and standing <= policy.second_warning + EPS:
        new.append(LowAttendanceWarning("second", now))
    return tuple(new)


def course_standing(course: CourseFacts, learner: LearnerInputs) -> Standing:
    """One learner's standing in one course at `course.now`."""
    policy, now = course.policy, course.now
    ended = now >= course.end_ts
    live_applies = course.delivery != "asynchronous"

    overall = _Tally()
    by_mode: dict[str, _Tally] = {}
    present_s = scheduled_s = 0.0
    absences = lectures = 0
    conduct: set[str] = set()
    for s in course.sessions:
        if s.kind != "class" or s.cancelled:
            continue
        lectures += 1
        mode = by_mode.setdefault(s.mode, _Tally())
        if not s.finalised:
            overall.remaining += 1
            mode.remaining += 1
            continue
        rec = learner.records.get(s.session_id)
        if s.session_id in learner.excused_sessions or (
            rec is not None and rec.status in _NOT_COUNTED
        ):
            continue  # seed 000 §6: "without effect on the attendance percentage"
        credit = 0.0 if rec is None else rec.credit
        overall.credit += credit
        overall.counted += 1
        mode.credit += credit
        mode.counted += 1
        scheduled_s += s.duration_s
        if rec is None or rec.status == "absent":
            absences += 1
        if rec is not None:
            present_s += rec.present_s
            conduct.update(f for f in rec.flags if f in _CONDUCT)

    # seed 001: virtual attendance and credited asynchronous hours against course hours.
    completed = 0
    required = 0
    for item in course.async_items:
        done = _completed(item, learner.async_progress.get(item.item_id), policy)
        if item.required:
            required += 1
            completed += done
        if item.due is not None and item.due <= now:
            scheduled_s += item.duration_s
            present_s += item.duration_s if done else 0.0
    hours_rate = present_s / scheduled_s if scheduled_s else None
    async_rate = completed / required if required else None

    core = [a for a in course.assignments if a.core]
    on_time = open_ = due = on_time_due = 0
    for a in core:
        submitted = learner.submissions.get(a.assignment_id)
        done = submitted is not None and submitted <= a.due
        on_time += done
        if a.due <= now:
            due += 1
            on_time_due += done
        elif not done:
            open_ += 1
    core_rate = on_time_due / due if due else None

    live_rate = overall.rate if live_applies else None
    rates_by_mode: dict[str, float | None] = {}
    if live_applies and len(by_mode) > 1:
        # seed 002 art. 20: percentages apply to each mode separately.
        rates_by_mode = {m: t.rate for m, t in sorted(by_mode.items())}
    applied = [overall]
    if policy.per_mode_rates and rates_by_mode:
        applied = [by_mode[m] for m in rates_by_mode]
    minimum = policy.min_live_rate
    below = live_applies and any(t.rate is not None and t.rate < minimum - EPS for t in applied)

    standing = None if live_rate is None or minimum <= 0 else live_rate / minimum
    new_warnings = _warnings(learner.warnings, standing, policy, now)

    ineligible: list[str] = []
    pending: list[str] = []
    if live_applies:
        for t in applied:
            best = t.best
            if best is None:
                continue
            if best < minimum - EPS:
                ineligible.append(
                    "live_minimum_unreachable" if t.remaining else "live_rate_below_minimum"
                )
            elif t.remaining:
                pending.append("live_sessions_remaining")
    if (
        course.delivery != "synchronous"
        and async_rate is not None
        and async_rate < policy.min_async_rate - EPS
    ):
        (ineligible if ended else pending).append("async_rate_below_minimum")
    if core:
        if (on_time + open_) / len(core) < policy.min_core_assignments - EPS:
            ineligible.append("core_assignments_missed")
        elif open_:
            pending.append("core_assignments_open")
    if course.has_final:
        if learner.final_score is None:
            pending.append("final_score_missing")
        elif learner.final_score < policy.min_final_score - EPS:
            ineligible.append("final_score_below_minimum")
    if not ended:
        pending.append("course_not_ended")
    certificate: Certificate
    if ineligible:
        certificate = Certificate("ineligible", tuple(dict.fromkeys(ineligible)))
    elif pending:
        certificate = Certificate("pending", tuple(dict.fromkeys(pending)))
    else:
        certificate = Certificate("eligible", ())

    final_exam_eligible: bool | None = None
    if policy.final_exam_gate:
        # seed 001: below 25% of the hours in courses over one month: no final exam.
        final_exam_eligible = (
            not course.longer_than_month
            or hours_rate is None
            or hours_rate >= policy.min_hours_rate - EPS
        )

    flags: list[str] = []
    if policy.conduct_flags:
        # seed 002 art. 39: flags for the institution, never automatic penalties.
        flags = sorted(conduct)
        if lectures and absences >= policy.conduct_absence_ratio * lectures - EPS:
            flags.append("absence_15pct")

    return Standing(
        user_id=learner.user_id,
        live_rate=live_rate,
        rates_by_mode=rates_by_mode,
        hours_rate=hours_rate,
        async_rate=async_rate,
        core_assignments=core_rate,
        final_score=learner.final_score,
        below_minimum=below,
        warnings=learner.warnings + new_warnings,
        new_warnings=new_warnings,
        certificate=certificate,
        final_exam_eligible=final_exam_eligible,
        flags=tuple(flags),
        counted_sessions=overall.counted,
        async_time_s={k: p.time_spent_s for k, p in learner.async_progress.items()},
    )


@dataclass(frozen=True, slots=True)
class WeekReport:
    """seed 001: weekly attendance figures of a course, for academic systems."""

    iso_year: int
    iso_week: int
    sessions: int
    cancelled_sessions: int
    records: int  # learner records of the week
    by_status: Mapping[str, int]
    attendance_rate: float | None  # Σ credit ÷ counted learner records of classes
    present_hours: float


def weekly_report(outcomes: Iterable[SessionOutcome], timezone: str = "UTC") -> list[WeekReport]:
    """Per ISO week (in the course's time zone) figures of finalised sessions."""
    tz = zoneinfo.ZoneInfo(timezone)
    weeks: dict[tuple[int, int], list[SessionOutcome]] = {}
    for o in outcomes:
        iso = dt.datetime.fromtimestamp(o.start, tz).isocalendar()
        weeks.setdefault((iso.year, iso.week), []).append(o)
    out = []
    for (year, week), items in sorted(weeks.items()):
        by_status: dict[str, int] = {}
        credit = 0.0
        counted = 0
        present_s = 0.0
        records = 0
        for o in items:
            for r in o.records:
                if r.role != "learner":
                    continue
                records += 1
                by_status[r.status] = by_status.get(r.status, 0) + 1
                present_s += r.present_s
                if o.kind == "class" and r.status not in _NOT_COUNTED:
                    credit += r.credit
                    counted += 1
        out.append(
            WeekReport(
                iso_year=year,
                iso_week=week,
                sessions=len(items),
                cancelled_sessions=sum(1 for o in items if o.status != "finalised"),
                records=records,
                by_status=dict(sorted(by_status.items())),
                attendance_rate=credit / counted if counted else None,
                present_hours=present_s / 3600.0,
            )
        )
    return out
