"""Property tests: invariants of the rules under generated event streams."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.rules.evidence import Event, Window, participant_evidence
from app.rules.outage import MassDropDetector, detect_mass_drops, fault_ratio
from app.rules.outcome import SessionFacts, evaluate_session
from app.rules.policy import resolve
from app.rules.standing import CourseFacts, LearnerInputs, ScheduledSession, course_standing
from tests.rules.factories import POLICY, T0, at, facts

FAST = settings(max_examples=60, deadline=None)
USERS = ("a", "b", "c", "d", "e")
ORDER = ("join", "leave", "drop", "heartbeat", "camera", "engagement")

minutes = st.integers(min_value=-10, max_value=70).map(float)


@st.composite
def event_lists(draw: st.DrawFn, users: tuple[str, ...] = USERS) -> list[Event]:
    n = draw(st.integers(min_value=0, max_value=40))
    out = []
    for i in range(n):
        typ = draw(st.sampled_from(ORDER))
        out.append(
            Event(
                id=f"e{i}",
                user_id=draw(st.sampled_from(users)),
                type=typ,  # type: ignore[arg-type]
                ts=at(draw(minutes)),  # whole minutes: many ties at one instant
                conn=draw(st.sampled_from(("c1", "c2"))),
                camera=draw(st.none() | st.booleans()),
                visible=draw(st.none() | st.booleans()),
            )
        )
    return out


def session(**kw: object) -> SessionFacts:
    return facts((*USERS[:4], ("e", "instructor")), camera=True, **kw)  # type: ignore[arg-type]


@FAST
@given(event_lists(), st.randoms(use_true_random=False), st.integers(0, 5))
def test_shuffle_and_duplicates_never_change_the_outcome(
    events: list[Event], rnd: random.Random, extra: int
) -> None:
    base = evaluate_session(session(), events, POLICY)
    shuffled = [*events, *(rnd.choice(events) for _ in range(extra if events else 0))]
    rnd.shuffle(shuffled)
    assert evaluate_session(session(), shuffled, POLICY) == base
    for u in USERS:
        mine = [e for e in events if e.user_id == u]
        assert participant_evidence(mine[::-1] + mine, at(0), at(60), POLICY) == (
            participant_evidence(mine, at(0), at(60), POLICY)
        )


@FAST
@given(event_lists(("a",)), st.integers(0, 60), st.integers(1, 60))
def test_more_presence_never_lowers_credit(events: list[Event], start: int, length: int) -> None:
    """Adding a connection of the same learner never lowers its credit.

    The camera is not required here: where it is, row 5 measures the camera
    against connected time, so extra time with the camera off may lower it.
    """
    f = facts(["a"])
    before = evaluate_session(f, events, POLICY).records[0]
    extra = [
        Event("x-join", "a", "join", at(start), "extra"),
        Event("x-leave", "a", "leave", at(min(start + length, 60)), "extra"),
    ]
    after = evaluate_session(f, events + extra, POLICY).records[0]
    assert after.present_s >= before.present_s
    assert after.credit >= before.credit


@FAST
@given(event_lists(("a",)), minutes, st.integers(0, 30), st.booleans())
def test_credited_gap_never_lowers_present_time(
    events: list[Event], start: float, length: int, as_claim: bool
) -> None:
    w = (Window(at(start), at(start + length), "declared"),)
    plain = participant_evidence(events, at(0), at(60), POLICY)
    credited = participant_evidence(
        events, at(0), at(60), POLICY, () if as_claim else w, w if as_claim else ()
    )
    assert credited.present_s >= plain.present_s
    assert credited.connected_s == plain.connected_s
    assert 0 <= credited.present_s <= 60 * 60


@FAST
@given(event_lists(), st.lists(st.tuples(minutes, st.integers(0, 40)), max_size=3))
def test_cancelled_iff_fault_ratio_above_limit(
    events: list[Event], outages: list[tuple[float, int]]
) -> None:
    f = session(declared_outages=tuple(Window(at(s), at(s + n)) for s, n in outages))
    out = evaluate_session(f, events, POLICY)
    assert out.fault_ratio == fault_ratio(out.outage_windows, out.start, out.end)
    assert (out.status == "cancelled_platform_fault") == (
        out.fault_ratio > POLICY.fault_cancel_ratio
    )
    for r in out.records:
        assert 0.0 <= r.credit <= 1.0
        assert 0.0 <= r.present_s <= out.duration_s
        if out.status == "cancelled_platform_fault":
            assert r.status == "cancelled"


@FAST
@given(event_lists())
def test_detector_agrees_with_detect_mass_drops(events: list[Event]) -> None:
    policy = resolve("platform", {}, {"outage_min_participants": 2})
    expected = detect_mass_drops(events, at(-10), at(70), policy)
    detector = MassDropDetector(policy)
    unique = {e.id: e for e in events}
    ordered = sorted(unique.values(), key=lambda e: (e.ts, ORDER_RANK[e.type], e.id))
    for e in ordered:
        detector.feed(e)
    detector.finish(at(70))
    assert detector.windows(at(70)) == expected


ORDER_RANK = {"leave": 0, "drop": 1, "join": 2, "camera": 3, "heartbeat": 4, "engagement": 5}


@FAST
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=8),
    st.lists(st.tuples(st.sampled_from(("excused", "cancelled")), st.floats(0, 1)), max_size=5),
)
def test_standing_never_counts_excused_or_cancelled(
    credits: list[float], ignored: list[tuple[str, float]]
) -> None:
    n = len(credits) + len(ignored)
    sessions = tuple(ScheduledSession(f"s{k}", T0, 3600, finalised=True) for k in range(n))
    course = CourseFacts(POLICY, "synchronous", T0, T0 + 86400, sessions, T0)
    probe = evaluate_session(facts(), [], POLICY).records[0]
    counted = {f"s{k}": dataclasses.replace(probe, credit=c) for k, c in enumerate(credits)}
    extra = {
        f"s{len(credits) + k}": dataclasses.replace(probe, status=s, credit=c)  # type: ignore[arg-type]
        for k, (s, c) in enumerate(ignored)
    }
    with_ignored = course_standing(course, LearnerInputs("a", {**counted, **extra}))
    short = dataclasses.replace(course, sessions=sessions[: len(credits)])
    without = course_standing(short, LearnerInputs("a", counted))
    assert with_ignored.live_rate == without.live_rate
    assert with_ignored.counted_sessions == len(credits)
    assert 0.0 <= (with_ignored.live_rate or 0.0) <= 1.0
