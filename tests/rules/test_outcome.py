"""POLICY §2-§4: every row of the live-class table, its boundaries, roles and kinds."""

from __future__ import annotations

import dataclasses

import pytest

from app.rules.outcome import Cancellation, Participant, Record, revise
from app.rules.policy import resolve
from tests.rules.factories import POLICY, T0, M, at, attend, ev, facts, run, window

S = 1 / M  # one second, in minutes


def only(outcome_records: tuple[Record, ...], user: str = "a") -> Record:
    return next(r for r in outcome_records if r.user_id == user)


def rec(events, f=None, policy=POLICY, now=None, user="a"):  # type: ignore[no-untyped-def]
    return only(run(events, f, policy, now).records, user)


# (name, events, status, credit, reasons)
ROWS = [
    ("row1 never joined", [], "absent", 0.0, ("never_joined",)),
    ("row2 30m+1s", attend("a", 30 + S), "absent", 0.0, ("joined_after_absent_threshold",)),
    ("row2 boundary 30m exactly is late", attend("a", 30), "late", 0.5, ("joined_late",)),
    ("row3 left before 80%", attend("a", 0, 48 - S), "absent", 0.0, ("left_before_cutoff",)),
    ("row3 boundary 80% exactly", attend("a", 0, 48), "present", 1.0, ()),
    ("row3 before row4", attend("a", 15, 40), "absent", 0.0, ("left_before_cutoff",)),
    ("row2 before row3", attend("a", 35, 40), "absent", 0.0, ("joined_after_absent_threshold",)),
    ("row4 10m+1s late", attend("a", 10 + S), "late", 0.5, ("joined_late",)),
    ("row4 boundary 10m on time", attend("a", 10), "present", 1.0, ()),
    ("row5 present", attend("a", 0), "present", 1.0, ()),
    (
        "row5 joined before start",
        [ev("a", "join", -5), ev("a", "engagement", 0)],
        "present",
        1.0,
        (),
    ),
    (
        "row6 engagement before the start does not count",
        attend("a", -5),
        "partial",
        0.5,
        ("no_engagement",),
    ),
    (
        "row6 presence below minimum",
        [*attend("a", 0, 20), ev("a", "join", 32 + S)],
        "partial",
        0.5,
        ("presence_below_minimum",),
    ),
    ("row6 presence exactly minimum", [*attend("a", 0, 20), ev("a", "join", 32)], "present", 1.0, ()),
    ("row6 no engagement", attend("a", 0, engagements=0), "partial", 0.5, ("no_engagement",)),
]


@pytest.mark.parametrize(("name", "events", "status", "credit", "reasons"), ROWS)
def test_live_class_table(name: str, events, status: str, credit: float, reasons) -> None:  # type: ignore[no-untyped-def]
    r = rec(events)
    assert (r.status, r.credit, r.reasons) == (status, credit, reasons), name


def test_row6_camera_boundary() -> None:
    f = facts(camera=True)
    on_80 = [*attend("a", 0, camera=True), ev("a", "camera", 48, camera=False)]
    assert rec(on_80, f).status == "present"
    on_less = [*attend("a", 0, camera=True), ev("a", "camera", 48 - S, camera=False)]
    r = rec(on_less, f)
    assert (r.status, r.reasons) == ("partial", ("camera_off",))
    # Camera not required: camera time does not matter.
    assert rec(attend("a", 0), facts()).status == "present"


def test_row6_lists_every_failed_condition() -> None:
    events = [*attend("a", 0, 20, engagements=0), ev("a", "join", 40)]
    r = rec(events, facts(camera=True))
    assert r.status == "partial"
    assert r.reasons == ("presence_below_minimum", "no_engagement", "camera_off")


def test_seed000_s2_workshop_scenario() -> None:
    """seed 000 §2: within 10 minutes, 80% of the session, one engagement, camera on."""
    f = facts(["amal", "badr", "chadi", "dana"], duration=90, camera=True)
    events = [
        *attend("amal", 5, camera=True),  # on time, camera on, asks a question
        *attend("badr", 20, camera=True),  # after 10 and before 30 minutes: half
        *attend("chadi", 35, camera=True),  # after 30 minutes: absent
        *attend("dana", 2, 60, camera=True),  # leaves before 80% (72 minutes): absent
    ]
    out = run(events, f)
    got = {r.user_id: (r.status, r.credit) for r in out.records}
    assert got == {
        "amal": ("present", 1.0),
        "badr": ("late", 0.5),
        "chadi": ("absent", 0.0),
        "dana": ("absent", 0.0),
    }


def test_roles_staff_use_rows_1_to_3_only() -> None:
    f = facts([("t", "instructor"), ("as", "assistant"), ("m", "mentor"), ("o", "observer")])
    events = [*attend("t", 15, engagements=0), *attend("as", 0, 20), *attend("o", 0)]
    out = run(events, f)
    got = {r.user_id: (r.role, r.status, r.credit, r.reasons) for r in out.records}
    assert got["t"] == ("instructor", "present", 1.0, ())
    assert got["as"] == ("assistant", "absent", 0.0, ("left_before_cutoff",))
    assert got["m"] == ("mentor", "absent", 0.0, ("never_joined",))
    assert got["o"] == ("observer", "present", 1.0, ())


def test_guests_get_records_but_never_count_as_learners() -> None:
    out = run([*attend("a", 0), *attend("stranger", 0)], facts(["a"]))
    guest = only(out.records, "stranger")
    assert guest.role == "guest"
    assert out.compliance["learners"] == 1


def test_duration_is_start_to_end_when_ended_early() -> None:
    f = facts(ended_at=40)
    r = rec(attend("a", 0, 32), f)  # 80% of 40 minutes
    assert r.status == "present"
    late_end = facts(ended_at=90)  # ending after the schedule does not lengthen it
    assert run([], late_end).end == at(60)


def test_accepted_excuse_marks_record_excused() -> None:
    r = rec([], facts(excused=frozenset({"a"})))
    assert (r.status, r.credit, r.reasons) == ("excused", 0.0, ("excused",))
    assert "alternative_content" in r.flags


def test_provisional_counts_connected_participants_as_staying() -> None:
    events = [*attend("a", 0), *attend("b", 0, 5, how="drop"), ev("a", "leave", 50)]
    out = run(events, facts(["a", "b", "c"]), now=at(30))
    assert out.provisional
    assert only(out.records, "a").status == "present"  # its leave at 50 is not known yet
    assert only(out.records, "a").last_seen == at(60)
    assert only(out.records, "b").reasons == ("left_before_cutoff",)
    assert only(out.records, "c").reasons == ("never_joined",)
    before = run(attend("a", 0), facts(), now=at(-5))
    assert only(before.records).reasons == ("never_joined",)


# §3 outages and the 30% rule


@pytest.mark.parametrize(
    ("lost_minutes", "cancelled"), [(18, False), (18 + S, True), (0, False), (60, True)]
)
def test_fault_ratio_boundary(lost_minutes: float, cancelled: bool) -> None:
    f = facts(declared_outages=(window(10, 10 + lost_minutes),))
    out = run(attend("a", 0), f)
    assert out.status == ("cancelled_platform_fault" if cancelled else "finalised")
    assert out.reschedule_required is cancelled
    if cancelled:
        assert {(r.status, r.credit, r.reasons) for r in out.records} == {
            ("cancelled", 0.0, ("platform_fault",))
        }


def test_outage_windows_union_of_causes() -> None:
    f = facts(
        declared_outages=(window(10, 15),),
        service_gaps=(window(14, 20, "service_gap"),),
    )
    out = run([], f)
    assert out.outage_windows == (window(10, 20, "declared+service_gap"),)
    assert out.fault_ratio == pytest.approx(10 / 60)


def test_outage_credits_participant_connected_when_it_began() -> None:
    f = facts(["a", "b"], declared_outages=(window(20, 30),))
    events = [
        *attend("a", 0, 21, how="drop"),
        ev("a", "join", 35),
        *attend("b", 25),  # joined during the outage: not connected when it began
    ]
    out = run(events, f)
    a = only(out.records, "a")
    assert a.present_s == (21 + 9 + 25) * M
    assert a.status == "present"
    assert only(out.records, "b").present_s == 35 * M


def test_seed000_s7_mass_drop_credited_and_recording() -> None:
    """seed 000 §7: verified disconnections count in the learner's favour; the
    recording counts for 50% if the learner could not attend because of the platform."""
    roster = ["a", "b", "c", "d", "e"]
    events = [e for u in roster for e in attend(u, 0)]
    events += [ev(u, "drop", 30 + i / 6, reason="abnormal") for i, u in enumerate("abc")]
    events += [ev("a", "join", 34), ev("b", "join", 35)]  # c never returns
    f = facts(roster, recording_watched={"c": 0.8})
    out = run(events, f)
    assert out.status == "finalised"
    assert [(w.start, w.end, w.cause) for w in out.outage_windows] == [
        (at(30), at(35), "mass_drop")
    ]
    assert only(out.records, "a").present_s == 60 * M
    assert only(out.records, "a").status == "present"
    c = only(out.records, "c")
    assert (c.status, c.credit, c.reasons) == ("recording", 0.5, ("left_before_cutoff", "recording_watched"))
    not_enough = run(events, facts(roster, recording_watched={"c": 0.79}))
    assert only(not_enough.records, "c").status == "absent"


def test_recording_credit_needs_platform_cause_and_higher_credit() -> None:
    f = facts(["a", "b"], recording_watched={"a": 1.0, "b": 1.0})
    out = run(attend("a", 0, 20) + attend("b", 0, engagements=0), f)
    assert only(out.records, "a").status == "absent"  # left voluntarily
    claim = facts(
        ["a", "b"],
        recording_watched={"a": 1.0, "b": 1.0},
        technical_claims={"b": (window(70, 80),)},
    )
    out = run(attend("a", 0, 20) + attend("b", 0, engagements=0), claim)
    assert only(out.records, "b").status == "partial"  # 0.5 is not higher than 0.5
    never = run([], facts(["a"], recording_watched={"a": 0.9}, technical_claims={"a": (window(0, 60),)}))
    assert only(never.records).status == "recording"


def test_technical_claim_covering_the_start_moves_the_join() -> None:
    claim = facts(technical_claims={"a": (window(0, 15),)})
    assert rec(attend("a", 15), claim).status == "present"
    short = facts(technical_claims={"a": (window(0, 5),)})
    assert rec(attend("a", 15), short).status == "late"


# §4 consultations


def consultation(**kw):  # type: ignore[no-untyped-def]
    return facts([("m", "mentor"), "a"], kind="consultation", **kw)


@pytest.mark.parametrize(
    ("join", "status"), [(10, "present"), (10 + S, "absent"), (0, "present")]
)
def test_consultation_has_no_late_band(join: float, status: str) -> None:
    out = run(attend("m", 0) + attend("a", join), consultation())
    assert only(out.records).status == status


@pytest.mark.parametrize(("mentor_join", "absent"), [(10, False), (10 + S, True), (None, True)])
def test_mentor_absence(mentor_join: float | None, absent: bool) -> None:
    events = attend("a", 0) + ([] if mentor_join is None else attend("m", mentor_join))
    out = run(events, consultation())
    if absent:
        assert out.status == "mentor_absent"
        assert out.remedies == ("refund", "substitute_session", "goodwill_credit")
        assert only(out.records).status == "cancelled"
        assert only(out.records).reasons == ("mentor_absent",)
    else:
        assert out.status == "finalised"
        assert out.remedies == ()


def test_mentor_absence_not_decided_before_the_grace() -> None:
    assert run(attend("a", 0), consultation(), now=at(5)).status == "finalised"
    assert run(attend("a", 0), consultation(), now=at(11)).status == "mentor_absent"


@pytest.mark.parametrize(
    ("notice_h", "status", "record"),
    [(24, "cancelled", "cancelled"), (24 - 1 / 3600, "forfeited", "forfeited"), (48, "cancelled", "cancelled")],
)
def test_learner_cancellation_notice(notice_h: float, status: str, record: str) -> None:
    """seed 000 §8: cancellation more than 24h before: refund; less: counted in full."""
    cancel = Cancellation("learner", T0 - notice_h * 3600, "a")
    out = run(attend("m", 0), consultation(cancellation=cancel))
    assert out.status == status
    assert only(out.records).status == record
    assert only(out.records).credit == 0.0


def test_learner_cancellation_of_one_in_a_group() -> None:
    f = facts([("m", "mentor"), "a", "b"], kind="consultation")
    events = attend("m", 0) + attend("b", 0)
    early = run(events, dataclasses.replace(f, cancellation=Cancellation("learner", T0 - 30 * 3600, "a")))
    assert early.status == "finalised"
    assert only(early.records).reasons == ("cancelled_with_notice",)
    assert only(early.records, "b").status == "present"
    late = run(events, dataclasses.replace(f, cancellation=Cancellation("learner", T0 - 3600, "a")))
    assert late.status == "finalised"
    assert only(late.records).status == "forfeited"
    everyone = run(events, dataclasses.replace(f, cancellation=Cancellation("learner", T0 - 3600)))
    assert everyone.status == "forfeited"


def test_institution_cancellation() -> None:
    out = run(attend("a", 0), facts(cancellation=Cancellation("institution", T0 - 60)))
    assert (out.status, out.reschedule_required) == ("cancelled", True)
    assert only(out.records).reasons == ("cancelled_by_institution",)


# §4 exams (seed 002 art. 43)


def exam(consent: bool = True):  # type: ignore[no-untyped-def]
    return facts([Participant("a", "learner", consent), ("t", "instructor")], kind="exam")


@pytest.mark.parametrize(
    ("join", "flags"),
    [
        (-10, ()),
        (-10 + S, ("exam_checkin_late",)),
        (0, ("exam_checkin_late",)),
        (S, ("exam_checkin_late", "exam_late_entry")),
    ],
)
def test_exam_checkin_flags(join: float, flags: tuple[str, ...]) -> None:
    r = rec(attend("a", join, engagements=0, camera=True), exam())
    assert (r.status, r.credit, r.flags) == ("present", 1.0, flags)


def test_exam_camera_only_with_proctoring_consent() -> None:
    events = attend("a", -15, engagements=0, camera=False)
    with_consent = rec(events, exam(True))
    assert with_consent.flags == ("camera_off_during_exam",)
    assert with_consent.camera_s == 0.0
    without = rec(events, exam(False))
    assert without.flags == ()
    assert without.camera_s is None
    assert rec([], exam()).reasons == ("never_joined",)
    staff = rec(attend("t", 5), exam(), user="t")
    assert (staff.status, staff.flags) == ("present", ())


# aum conduct flags (seed 002 art. 39)

AUM = resolve("aum")


@pytest.mark.parametrize(
    ("join", "leave", "camera", "flags"),
    [
        (10 - S, None, True, ()),
        (10, None, True, ("late_10m",)),
        (0, 50, True, ()),
        (0, 50 - S, True, ("left_early_unexcused",)),
        (0, None, False, ("camera_off",)),
    ],
)
def test_aum_conduct_flags(join: float, leave: float | None, camera: bool, flags: tuple[str, ...]) -> None:
    r = rec(attend("a", join, leave, camera=camera), facts(camera=True), AUM)
    assert r.flags == flags
    assert rec(attend("a", 10), facts(camera=True), POLICY).flags == ()


# §7 session compliance


def test_session_compliance_figures() -> None:
    roster = [f"u{i}" for i in range(44)] + [("t", "instructor"), ("as", "assistant")]
    events = [e for i in range(40) for e in attend(f"u{i}", 0)] + attend("t", 0)
    out = run(events, facts(roster))
    c = out.compliance
    assert c["learners"] == 44
    assert c["peak_learners"] == 40
    assert (c["over_class_cap"], c["over_hard_cap"], c["hard_cap"]) == (True, True, 43)
    assert (c["staff_required"], c["staff_present"], c["understaffed"]) == (2, 1, True)
    short = run(events, facts(roster, long_course=False)).compliance
    assert (short["staff_required"], short["understaffed"]) == (1, False)
    assert "recording_due_at" in run([], facts(), AUM).compliance
    assert run([], facts(kind="exam")).compliance == {}


# §6 revisions


def test_revise_raises_revision_only_on_change() -> None:
    r = rec(attend("a", 0))
    assert revise(r, r) is r
    changed = revise(r, dataclasses.replace(r, status="excused", credit=0.0))
    assert changed.revision == 1
    assert revise(changed, dataclasses.replace(changed, credit=0.1)).revision == 2


def test_outcome_lookup() -> None:
    out = run(attend("a", 0))
    assert out.record("nobody") is None
    assert out.duration_s == 60 * M
