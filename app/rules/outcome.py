"""Session outcome: one session's events and facts in, records out (POLICY §2-§4).

`evaluate_session` is called by the finaliser (after the session), by the
live panel (with `now`: a provisional outcome in which the participants
connected now are counted as staying) and by the REST API.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from app.rules import compliance
from app.rules.evidence import (
    Event,
    Evidence,
    Interval,
    Scan,
    Window,
    event_order,
    evidence_from_scan,
    scan_events,
)
from app.rules.outage import fault_ratio, replay_mass_drops, union
from app.rules.policy import Policy

__all__ = [
    "REMEDIES_MENTOR_ABSENT",
    "Cancellation",
    "Participant",
    "Record",
    "RecordStatus",
    "Role",
    "SessionFacts",
    "SessionOutcome",
    "SessionStatus",
    "evaluate_session",
    "revise",
]

Role = Literal["learner", "instructor", "assistant", "mentor", "observer", "guest"]
SessionKind = Literal["class", "consultation", "exam"]
Mode = Literal["online", "in_person"]
RecordStatus = Literal[
    "present", "late", "partial", "absent", "excused", "cancelled", "recording", "forfeited"
]
SessionStatus = Literal[
    "finalised", "cancelled", "forfeited", "cancelled_platform_fault", "mentor_absent"
]

# seed 000 §8: "Mentor absence: full refund + a substitute session + goodwill credit."
REMEDIES_MENTOR_ABSENT: Final = ("refund", "substitute_session", "goodwill_credit")
EPS: Final = 1e-6  # seconds; absorbs float noise at the exact boundaries
RATIO_EPS: Final = 1e-9
_STAFF: Final = frozenset({"instructor", "assistant"})
_MENTORS: Final = frozenset({"mentor", "instructor"})
_ts: Final = operator.attrgetter("ts")


@dataclass(frozen=True, slots=True)
class Participant:
    """A roster entry.  Users seen in events but not on the roster are guests."""

    user_id: str
    role: Role = "learner"
    proctoring_consent: bool = False


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A cancellation: by the institution, or by a learner (`user_id`, or all learners)."""

    by: Literal["learner", "institution"]
    at: float
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What is known about a session besides its events."""

    session_id: str
    kind: SessionKind
    mode: Mode
    start: float
    duration_s: float  # scheduled
    ended_at: float | None  # ended early: the duration is start to end
    camera_required: bool
    roster: tuple[Participant, ...]
    declared_outages: tuple[Window, ...] = ()
    service_gaps: tuple[Window, ...] = ()
    cancellation: Cancellation | None = None
    technical_claims: Mapping[str, tuple[Window, ...]] = field(default_factory=dict)
    excused: frozenset[str] = frozenset()
    recording_watched: Mapping[str, float] = field(default_factory=dict)
    long_course: bool = True  # the course lasts more than one month (§7 staffing)

    @property
    def end(self) -> float:
        """POLICY "Duration": the scheduled end, or the actual end if earlier."""
        scheduled = self.start + self.duration_s
        if self.ended_at is not None and self.ended_at < scheduled:
            return max(self.start, self.ended_at)
        return scheduled


@dataclass(frozen=True, slots=True)
class Record:
    """One participant's attendance in one session, with the reasons why."""

    user_id: str
    role: Role
    status: RecordStatus
    credit: float
    reasons: tuple[str, ...]
    flags: tuple[str, ...]
    first_join: float | None
    last_seen: float | None
    connected_s: float
    present_s: float
    camera_s: float | None  # None when not stored (exam without proctoring consent)
    active_s: float
    engagements: int
    intervals: tuple[Interval, ...]
    revision: int = 0


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """The decision for one session."""

    session_id: str
    kind: SessionKind
    mode: Mode
    status: SessionStatus
    provisional: bool  # evaluated while live, with `now`
    start: float
    end: float
    fault_ratio: float
    outage_windows: tuple[Window, ...]
    reschedule_required: bool
    remedies: tuple[str, ...]
    compliance: Mapping[str, object]
    records: tuple[Record, ...]

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def record(self, user_id: str) -> Record | None:
        """The record of one participant, if any."""
        return next((r for r in self.records if r.user_id == user_id), None)


def revise(previous: Record, current: Record) -> Record:
    """§6: a changed finalised record gets the next revision; an unchanged one stays."""
    if dataclasses.replace(current, revision=previous.revision) == previous:
        return previous
    return dataclasses.replace(current, revision=previous.revision + 1)


def _base(p: Participant, ev: Evidence, camera_stored: bool) -> Record:
    return Record(
        user_id=p.user_id,
        role=p.role,
        status="absent",
        credit=0.0,
        reasons=(),
        flags=(),
        first_join=ev.first_join,
        last_seen=ev.last_seen,
        connected_s=ev.connected_s,
        present_s=ev.present_s,
        camera_s=ev.camera_s if camera_stored else None,
        active_s=ev.active_s,
        engagements=ev.engagements,
        intervals=ev.intervals,
    )


def _rows_1_to_3(
    ev: Evidence, start: float, end: float, absent_after: float, policy: Policy
) -> tuple[str, float]:
    """POLICY §2 rows 1-3: the reason code of an absence ("" if none) and the join offset."""
    if ev.first_join is None or ev.first_present is None or ev.last_seen is None:
        return ("never_joined", 0.0)
    offset = max(0.0, min(ev.first_join, ev.first_present) - start)
    # seed 000 §2: absent when joining after 30 minutes (strict: 30m exactly is late).
    if offset > absent_after + EPS:
        return ("joined_after_absent_threshold", offset)
    # seed 000 §2: absent when leaving before completing 80% of the session.
    if ev.last_seen - start < policy.leave_cutoff * (end - start) - EPS:
        return ("left_before_cutoff", offset)
    return ("", offset)


def _class_record(
    p: Participant,
    ev: Evidence,
    facts: SessionFacts,
    policy: Policy,
    start: float,
    end: float,
) -> Record:
    rec = _base(p, ev, True)
    duration = end - start
    consultation = facts.kind == "consultation"
    # seed 000 §8: "more than 10 minutes late counts as absent": no late band.
    absent_after = policy.late_after if consultation else policy.absent_after
    reason, offset = _rows_1_to_3(ev, start, end, absent_after, policy)
    if p.role != "learner":
        # Staff and others: present/absent from rows 1-3 alone.
        if reason:
            return dataclasses.replace(rec, reasons=(reason,))
        return dataclasses.replace(rec, status="present", credit=1.0)
    flags: list[str] = []
    if policy.conduct_flags and facts.kind == "class" and ev.first_join is not None:
        # seed 002 art. 39 A.1-2: first-degree conduct flags, never penalties.
        if offset >= policy.conduct_lateness - EPS:
            flags.append("late_10m")
        assert ev.last_seen is not None
        if ev.last_seen < end - policy.conduct_lateness - EPS:
            flags.append("left_early_unexcused")
        if facts.camera_required and ev.camera_s == 0.0:
            flags.append("camera_off")
    status: RecordStatus
    if reason:
        status, credit, reasons = "absent", 0.0, [reason]
    elif offset > policy.late_after + EPS:
        # seed 000 §2: late after 10 minutes, counted as half attendance.
        status, credit, reasons = "late", policy.late_credit, ["joined_late"]
    else:
        reasons = []
        if ev.present_s < policy.min_presence * duration - EPS:
            reasons.append("presence_below_minimum")
        if ev.engagements < policy.min_engagements:
            reasons.append("no_engagement")
        if facts.camera_required and (
            ev.camera_s < policy.camera_min_fraction * ev.connected_s - EPS
        ):
            reasons.append("camera_off")
        if reasons:
            status, credit = "partial", policy.partial_credit
        else:
            status, credit = "present", 1.0
    if status in ("absent", "partial") and facts.kind == "class":
        # seed 000 §7: the recording counts for 50% after a fault on the platform's side.
        caused = ev.dropped_in_outage_and_not_returned or bool(
            facts.technical_claims.get(p.user_id)
        )
        watched = facts.recording_watched.get(p.user_id, 0.0)
        if (
            caused
            and watched >= policy.recording_min_watched - RATIO_EPS
            and policy.recording_credit > credit
        ):
            status, credit = "recording", policy.recording_credit
            reasons.append("recording_watched")
    return dataclasses.replace(
        rec, status=status, credit=credit, reasons=tuple(reasons), flags=tuple(flags)
    )


def _exam_record(p: Participant, ev: Evidence, facts: SessionFacts, policy: Policy) -> Record:
    # seed 000 §10: camera state only with explicit proctoring consent.
    consent = p.proctoring_consent
    rec = _base(p, ev, consent)
    if ev.first_join is None:
        return dataclasses.replace(rec, reasons=("never_joined",))
    flags = []
    if p.role == "learner":
        # seed 002 art. 43.8: log in 10 minutes before the exam starts.
        if ev.first_join > facts.start - policy.exam_checkin_before + EPS:
            flags.append("exam_checkin_late")
        # seed 002 art. 43.7: late entry gets no additional time.
        if ev.first_join > facts.start + EPS:
            flags.append("exam_late_entry")
        if consent and ev.camera_s < policy.camera_min_fraction * ev.connected_s - EPS:
            flags.append("camera_off_during_exam")
    return dataclasses.replace(rec, status="present", credit=1.0, flags=tuple(flags))


def _set_all(
    records: list[Record], status: RecordStatus, reason: str, roles: frozenset[str] | None = None
) -> list[Record]:
    return [
        dataclasses.replace(r, status=status, credit=0.0, reasons=(reason,))
        if roles is None or r.role in roles
        else r
        for r in records
    ]


def _peak(evidence: Iterable[Evidence]) -> int:
    edges = sorted(
        (t, d)
        for ev in evidence
        for i in ev.intervals
        if i.kind == "connected"
        for t, d in ((i.start, 1), (i.end, -1))
    )
    peak = now = 0
    for _, d in edges:
        now += d
        peak = max(peak, now)
    return peak


def evaluate_session(
    facts: SessionFacts,
    events: Iterable[Event],
    policy: Policy,
    *,
    now: float | None = None,
) -> SessionOutcome:
    """Decide one session.  With `now`, a provisional outcome of a live session.

    Events after the session end (or after `now`) are ignored; duplicates
    (same id) count once; the order of `events` does not matter.
    """
    start, end = facts.start, facts.end
    cutoff = end if now is None else min(end, now)  # events after it are not known yet
    horizon = max(cutoff, start)

    # One pass: de-duplicate and group per user; then one scan per user.
    by_user: dict[str, dict[str, Event]] = {}
    for e in events:
        if e.ts > cutoff:
            continue
        bucket = by_user.get(e.user_id)
        if bucket is None:
            bucket = by_user[e.user_id] = {}
        bucket[e.id] = e
    connection_events: list[Event] = []
    scans: dict[str, Scan] = {}
    for uid, unique in by_user.items():
        ordered = sorted(unique.values(), key=_ts)
        if len(set(map(_ts, ordered))) != len(ordered):
            ordered.sort(key=event_order)  # ties at one instant: the full order decides
        scans[uid] = scan_events(ordered, start, end, connection_events)
    connection_events.sort(key=event_order)

    # §3: outage windows from all causes, clipped to the session so far.
    mass = replay_mass_drops(connection_events, start, horizon, policy)
    outages = tuple(
        Window(max(w.start, start), min(w.end, horizon), w.cause)
        for w in union((*facts.declared_outages, *facts.service_gaps, *mass))
        if w.end > start and w.start < horizon
    )
    ratio = fault_ratio(outages, start, end)

    roster = {p.user_id: p for p in facts.roster}
    no_scan: Scan = ([], 0.0, 0.0, 0)
    participants = list(facts.roster) + [
        Participant(uid, "guest") for uid in sorted(by_user) if uid not in roster
    ]
    evidence: dict[str, Evidence] = {}
    records: list[Record] = []
    for p in participants:
        ev = evidence_from_scan(
            p.user_id,
            scans.get(p.user_id, no_scan),
            start,
            end,
            policy.reconnect_grace,
            outages,
            facts.technical_claims.get(p.user_id, ()),
        )
        evidence[p.user_id] = ev
        if facts.kind == "exam":
            rec = _exam_record(p, ev, facts, policy)
        else:
            rec = _class_record(p, ev, facts, policy, start, end)
        if p.user_id in facts.excused and p.role == "learner":
            # seed 000 §6: accepted excuse: alternative content, no effect on the percentage.
            rec = dataclasses.replace(
                rec,
                status="excused",
                credit=0.0,
                reasons=("excused",),
                flags=(*rec.flags, "alternative_content"),
            )
        records.append(rec)

    learners = frozenset(p.user_id for p in facts.roster if p.role == "learner")
    status: SessionStatus = "finalised"
    reschedule = False
    remedies: tuple[str, ...] = ()
    cancel = facts.cancellation
    if cancel is not None and cancel.by == "institution":
        status, reschedule = "cancelled", True
        records = _set_all(records, "cancelled", "cancelled_by_institution")
    elif cancel is not None:
        targets = learners if cancel.user_id is None else frozenset({cancel.user_id})
        whole = learners <= targets
        # seed 000 §8: more than 24 hours before: refund or rescheduling; later: counted in full.
        if start - cancel.at >= policy.cancel_notice - EPS:
            remedies = ("refund_or_reschedule",)
            if whole:
                status = "cancelled"
                records = _set_all(records, "cancelled", "cancelled_by_learner")
            else:
                records = [
                    dataclasses.replace(
                        r, status="cancelled", credit=0.0, reasons=("cancelled_with_notice",)
                    )
                    if r.user_id in targets
                    else r
                    for r in records
                ]
        else:
            if whole:
                status = "forfeited"
            records = [
                dataclasses.replace(r, status="forfeited", credit=0.0, reasons=("cancelled_late",))
                if r.user_id in targets
                else r
                for r in records
            ]
    elif ratio > policy.fault_cancel_ratio + RATIO_EPS:
        # seed 000 §7: a fault of more than 30% of the session cancels and reschedules it.
        status, reschedule = "cancelled_platform_fault", True
        records = _set_all(records, "cancelled", "platform_fault")
    elif facts.kind == "consultation" and horizon >= start + policy.mentor_grace:
        mentor_joined = any(
            r.role in _MENTORS
            and r.first_join is not None
            and r.first_join <= start + policy.mentor_grace + EPS
            for r in records
        )
        if not mentor_joined:
            # seed 000 §8: mentor absence: refund, substitute session, goodwill credit.
            status, reschedule, remedies = "mentor_absent", True, REMEDIES_MENTOR_ABSENT
            records = _set_all(records, "cancelled", "mentor_absent", frozenset({"learner"}))

    comp: dict[str, object] = {}
    if facts.kind == "class":
        staff = sum(1 for r in records if r.role in _STAFF and r.connected_s > 0)
        comp = compliance.session_compliance(
            len(learners),
            _peak(evidence[u] for u in learners),
            staff,
            facts.long_course,
            policy,
        )
        if policy.recording_checks:
            comp["recording_due_at"] = end + policy.recording_due

    return SessionOutcome(
        session_id=facts.session_id,
        kind=facts.kind,
        mode=facts.mode,
        status=status,
        provisional=now is not None,
        start=start,
        end=end,
        fault_ratio=ratio,
        outage_windows=outages,
        reschedule_required=reschedule,
        remedies=remedies,
        compliance=comp,
        records=tuple(records),
    )
