"""POLICY §5: course standing, warnings, certificate, nelc and aum additions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from app.rules.outcome import Record
from app.rules.policy import Policy, resolve
from app.rules.standing import (
    Assignment,
    AsyncItem,
    AsyncProgress,
    CourseFacts,
    LearnerInputs,
    LowAttendanceWarning,
    ScheduledSession,
    course_standing,
    weekly_report,
)
from tests.rules.factories import POLICY, T0, attend, facts, run

DAY = 86400.0
END = T0 + 100 * DAY


def record(credit: float = 1.0, status: str = "present", **kw: object) -> Record:
    base = Record("a", "learner", "present", 1.0, (), (), T0, T0 + 3600, 3600, 3600, 0, 3600, 1, ())
    return dataclasses.replace(base, credit=credit, status=status, **kw)  # type: ignore[arg-type]


def course(
    n: int = 4,
    finalised: int | None = None,
    policy: Policy = POLICY,
    now: float = END + 1,
    **kw: object,
) -> CourseFacts:
    done = n if finalised is None else finalised
    sessions = tuple(
        ScheduledSession(f"s{k}", T0 + k * DAY, 3600, finalised=k < done) for k in range(n)
    )
    return CourseFacts(
        policy=policy,
        delivery=kw.pop("delivery", "synchronous"),  # type: ignore[arg-type]
        starts_on=kw.pop("starts_on", T0),  # type: ignore[arg-type]
        ends_on=kw.pop("ends_on", END),  # type: ignore[arg-type]
        sessions=kw.pop("sessions", sessions),  # type: ignore[arg-type]
        now=now,
        has_final=kw.pop("has_final", False),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def learner(*credits: float | Record, **kw: object) -> LearnerInputs:
    recs = {f"s{k}": c if isinstance(c, Record) else record(c) for k, c in enumerate(credits)}
    return LearnerInputs("a", recs, **kw)  # type: ignore[arg-type]


def test_live_rate_counts_finalised_classes_only() -> None:
    c = course(6, finalised=4, sessions=None)
    sessions = (
        *course(4).sessions,
        ScheduledSession("cancelled", T0, 3600, finalised=True, cancelled=True),
        ScheduledSession("consult", T0, 3600, kind="consultation", finalised=True),
    )
    c = dataclasses.replace(c, sessions=sessions)
    s = course_standing(c, learner(1.0, 0.5, record(0, "excused"), record(1, "cancelled")))
    assert s.live_rate == 0.75
    assert s.counted_sessions == 2
    missing = course_standing(c, learner(1.0))  # no record of a finalised class: absent
    assert missing.live_rate == 0.25
    excused = course_standing(c, learner(1.0, excused_sessions=frozenset({"s1", "s2", "s3"})))
    assert excused.live_rate == 1.0


def test_no_rate_and_no_warning_before_any_session() -> None:
    s = course_standing(course(4, finalised=0, now=T0), learner())
    assert (s.live_rate, s.warnings, s.below_minimum) == (None, (), False)
    assert s.certificate.status == "pending"


@pytest.mark.parametrize(
    ("credit", "levels"),
    [(0.375, ("first",)), (0.3751, ()), (0.225, ("first", "second")), (0.2251, ("first",)), (0.0, ("first", "second"))],
)  # fmt: skip
def test_warning_boundaries(credit: float, levels: tuple[str, ...]) -> None:
    s = course_standing(course(1, now=T0 + 5 * DAY), learner(credit))
    assert tuple(w.level for w in s.new_warnings) == levels
    assert all(w.raised_at == T0 + 5 * DAY for w in s.warnings)


def test_warnings_raised_once_each_in_order() -> None:
    first = LowAttendanceWarning("first", T0)
    s = course_standing(course(1), learner(0.3, warnings=(first,)))
    assert s.new_warnings == ()
    assert s.warnings == (first,)
    s = course_standing(course(1), learner(0.1, warnings=(first,)))
    assert [w.level for w in s.warnings] == ["first", "second"]
    both = (first, LowAttendanceWarning("second", T0))
    assert course_standing(course(1), learner(0.0, warnings=both)).new_warnings == ()
    # A second warning is never raised before the first, whatever came in.
    only_second = (LowAttendanceWarning("second", T0),)
    assert [w.level for w in course_standing(course(1), learner(0.3, warnings=only_second)).new_warnings] == ["first"]


@pytest.mark.parametrize(("credit", "below"), [(0.75, False), (0.7499, True)])
def test_below_minimum_boundary(credit: float, below: bool) -> None:
    assert course_standing(course(1), learner(credit)).below_minimum is below


def test_certificate_unreachable_early() -> None:
    early = course(10, finalised=3, now=T0 + 5 * DAY)
    s = course_standing(early, learner(0, 0, 0))
    assert s.certificate.status == "ineligible"
    assert s.certificate.reasons == ("live_minimum_unreachable",)
    still = course_standing(early, learner(1, 0, 0))  # best 8/10
    assert (still.certificate.status, still.certificate.reasons) == (
        "pending",
        ("live_sessions_remaining", "course_not_ended"),
    )
    exactly = course_standing(early, learner(0.5, 0.5, 0.5))  # best 8.5/10 > .75 ...
    assert exactly.certificate.status == "pending"


def test_certificate_at_course_end() -> None:
    assert course_standing(course(4), learner(1, 1, 1, 0)).certificate.status == "eligible"
    ended = course_standing(course(4), learner(1, 1, 0.5, 0))
    assert ended.certificate.reasons == ("live_rate_below_minimum",)
    async_course = course(0, delivery="asynchronous")
    assert course_standing(async_course, learner()).live_rate is None
    assert course_standing(async_course, learner()).certificate.status == "eligible"


def test_async_rate_and_video_checkpoints() -> None:
    items = (
        AsyncItem("v1", "video", duration_s=600, due=T0),
        AsyncItem("v2", "video"),
        AsyncItem("r1"),
        AsyncItem("r2"),
        AsyncItem("r3"),
        AsyncItem("opt", required=False, duration_s=600, due=T0),
    )
    progress = {
        "v1": AsyncProgress(9, 10, time_spent_s=500),
        "v2": AsyncProgress(8, 10),
        "r1": AsyncProgress(completed=True),
        "r2": AsyncProgress(completed=True),
        "opt": AsyncProgress(completed=True),
    }
    c = course(0, delivery="blended", async_items=items, now=T0 + DAY)
    s = course_standing(c, learner(async_progress=progress))
    assert s.async_rate == 0.6
    assert s.hours_rate == 1.0
    assert s.async_time_s["v1"] == 500
    assert s.certificate.reasons == ("async_rate_below_minimum", "course_not_ended")
    ended = dataclasses.replace(c, now=END + 1)
    assert course_standing(ended, learner(async_progress=progress)).certificate.status == "ineligible"
    done = {**progress, "v2": AsyncProgress(10, 10), "r3": AsyncProgress(completed=True)}
    assert course_standing(ended, learner(async_progress=done)).certificate.status == "eligible"
    no_checkpoints = {**done, "v2": AsyncProgress(0, 0)}
    assert course_standing(ended, learner(async_progress=no_checkpoints)).async_rate == 0.8


def test_core_assignments() -> None:
    tasks = (Assignment("a1", T0), Assignment("a2", T0 + 10 * DAY), Assignment("x", T0, core=False))
    c = course(0, assignments=tasks, now=T0 + DAY)
    on_time = course_standing(c, learner(submissions={"a1": T0 - 5}))
    assert on_time.core_assignments == 1.0
    assert on_time.certificate.reasons == ("core_assignments_open", "course_not_ended")
    late = course_standing(c, learner(submissions={"a1": T0 + 5}))
    assert late.core_assignments == 0.0
    assert late.certificate.reasons == ("core_assignments_missed",)
    early = course_standing(c, learner(submissions={"a1": T0, "a2": T0}))
    assert early.certificate.reasons == ("course_not_ended",)
    assert course_standing(course(0), learner()).core_assignments is None


@pytest.mark.parametrize(
    ("score", "status", "reasons"),
    [(None, "pending", ("final_score_missing",)), (0.69, "ineligible", ("final_score_below_minimum",)), (0.7, "eligible", ())],
)  # fmt: skip
def test_final_score(score: float | None, status: str, reasons: tuple[str, ...]) -> None:
    s = course_standing(course(1, has_final=True), learner(1.0, final_score=score))
    assert (s.certificate.status, s.certificate.reasons, s.final_score) == (status, reasons, score)


@pytest.mark.parametrize(("present_h", "eligible"), [(0.25, True), (0.24, False)])
def test_nelc_final_exam_gate(present_h: float, eligible: bool) -> None:
    nelc = resolve("nelc")
    c = course(1, policy=nelc, starts_on=dt.date(2023, 11, 1), ends_on=dt.date(2024, 1, 31))
    s = course_standing(c, learner(record(0.0, "absent", present_s=present_h * 3600)))
    assert s.hours_rate == pytest.approx(present_h)
    assert s.final_exam_eligible is eligible
    short = course(1, policy=nelc, starts_on=dt.date(2023, 11, 1), ends_on=dt.date(2023, 12, 1))
    assert course_standing(short, learner(0.0)).final_exam_eligible is True
    assert course_standing(course(0, policy=nelc), learner()).final_exam_eligible is True
    assert course_standing(c, learner(1.0)).final_exam_eligible is True
    assert course_standing(course(1), learner(0.0)).final_exam_eligible is None


def test_per_mode_rates_seed002_art20() -> None:
    sessions = tuple(
        ScheduledSession(f"s{k}", T0 + k * DAY, 3600, mode="online" if k < 2 else "in_person", finalised=True)
        for k in range(4)
    )
    mixed = learner(1, 1, 1, 0)
    platform = course_standing(course(sessions=sessions), mixed)
    assert platform.rates_by_mode == {"in_person": 0.5, "online": 1.0}
    assert (platform.live_rate, platform.below_minimum) == (0.75, False)
    assert platform.certificate.status == "eligible"
    aum = course_standing(course(sessions=sessions, policy=resolve("aum")), mixed)
    assert aum.below_minimum is True
    assert aum.certificate.reasons == ("live_rate_below_minimum",)
    single = course_standing(course(2, policy=resolve("aum")), learner(1, 1))
    assert single.rates_by_mode == {}


@pytest.mark.parametrize(("absences", "flagged"), [(3, True), (2, False)])
def test_aum_absence_15pct(absences: int, flagged: bool) -> None:
    aum = resolve("aum")
    recs = [record(0.0, "absent")] * absences + [record(1.0, flags=("late_10m", "other"))] * (20 - absences)
    s = course_standing(course(20, policy=aum), learner(*recs))
    assert s.flags == (("late_10m", "absence_15pct") if flagged else ("late_10m",))
    assert course_standing(course(20), learner(*recs)).flags == ()
    assert course_standing(course(0, policy=aum), learner()).flags == ()


def test_dates_or_timestamps_and_zero_minimum() -> None:
    c = course(1, starts_on=dt.date(2023, 11, 14), ends_on=dt.date(2023, 11, 14), now=T0)
    assert c.end_ts == dt.datetime(2023, 11, 15, tzinfo=dt.UTC).timestamp()
    assert course_standing(c, learner(1.0)).certificate.reasons == ("course_not_ended",)
    free = resolve("platform", {"min_live_rate": 0})
    assert course_standing(course(1, policy=free), learner(0.0)).warnings == ()


def test_weekly_report() -> None:
    f = facts(["a", "b", "c", ("t", "instructor")], excused=frozenset({"c"}))
    first = run(attend("a", 0) + attend("b", 20), f)
    cancelled = run([], dataclasses.replace(f, declared_outages=first.outage_windows, start=T0 + 7 * DAY))
    out = weekly_report([first, cancelled], "Asia/Riyadh")
    assert [(w.iso_week, w.sessions, w.records) for w in out] == [(46, 1, 3), (47, 1, 3)]
    assert out[0].by_status == {"excused": 1, "late": 1, "present": 1}
    assert out[0].attendance_rate == 0.75
    assert out[0].present_hours == pytest.approx(1 + 40 / 60)
    assert out[1].cancelled_sessions == 0
    assert weekly_report([]) == []
    fault = run([], dataclasses.replace(f, cancellation=None, ended_at=None, declared_outages=()))
    assert weekly_report([fault])[0].attendance_rate == 0.0
