"""The attendance ledger, read side: current records, course facts and standings.

Records are kept by revision: a session's current records are, per participant, the row with
the highest revision. Everything here reads; the finaliser and the API call it inside their
own transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit import clock
from app.kit.db import activity, courses, excuses, final_scores, items, sessions, warnings
from app.live.lifecycle import FINAL_STATUSES
from app.rules import policy as rules_policy
from app.rules import standing as rules_standing
from app.rules.evidence import Interval
from app.rules.outcome import Record

WARNING_LEVELS = {"first": 1, "second": 2}
LEVEL_NAMES = {1: "first", 2: "second"}
CANCELLED_RESULTS = frozenset({"cancelled_platform_fault", "cancelled"})

_CURRENT = text(
    """
    SELECT DISTINCT ON (session_id, user_id) *
    FROM records WHERE session_id = ANY(:sids) {user_filter}
    ORDER BY session_id, user_id, revision DESC
    """
)


def course_policy(course: Any, session_overrides: dict[str, Any] | None = None) -> Any:
    return rules_policy.resolve(course.policy, course.overrides, session_overrides or {})


def course_timezone(course: Any) -> str:
    """The course's `timezone` field, unless its policy overrides set one."""
    tz = course.overrides.get("timezone") if isinstance(course.overrides, dict) else None
    return str(tz or course.timezone or "UTC")


def _t(value: dt.datetime | None) -> float | None:
    return None if value is None else clock.from_dt(value)


def record_from_row(row: Any) -> Record:
    return Record(
        user_id=row.user_id,
        role=row.role,
        status=row.status,
        credit=row.credit,
        reasons=tuple(row.reasons),
        flags=tuple(row.flags),
        first_join=_t(row.first_join),
        last_seen=_t(row.last_seen),
        connected_s=row.connected_s,
        present_s=row.present_s,
        camera_s=row.camera_s,
        active_s=row.active_s,
        engagements=row.engagements,
        intervals=tuple(Interval(i["start"], i["end"], i["kind"]) for i in row.intervals),
        revision=row.revision,
    )


def record_out(row: Any) -> dict[str, Any]:
    """A record as CONTRACT "Results" shows it."""
    return {
        "user_id": row.user_id,
        "role": row.role,
        "status": row.status,
        "credit": row.credit,
        "reasons": list(row.reasons),
        "flags": list(row.flags),
        "first_join": clock.iso(_t(row.first_join)),
        "last_seen": clock.iso(_t(row.last_seen)),
        "connected_s": row.connected_s,
        "present_s": row.present_s,
        "camera_s": row.camera_s,
        "active_s": row.active_s,
        "engagements": row.engagements,
        "intervals": [
            {"start": clock.iso(i["start"]), "end": clock.iso(i["end"]), "kind": i["kind"]}
            for i in row.intervals
        ],
        "revision": row.revision,
    }


async def current_records(
    conn: AsyncConnection, session_ids: Sequence[str], user_id: str | None = None
) -> list[Row[Any]]:
    """Current records of these sessions (optionally of one user), by session then user."""
    if not session_ids:
        return []
    sql = _CURRENT.text.format(user_filter="AND user_id = :uid" if user_id else "")
    params: dict[str, Any] = {"sids": list(session_ids)}
    if user_id:
        params["uid"] = user_id
    return list((await conn.execute(text(sql), params)).all())


@dataclass
class CourseLedger:
    """Everything a course's standings are computed from, loaded in a few queries."""

    course: Any
    policy: Any
    facts: rules_standing.CourseFacts
    sessions: list[Any]
    records: dict[str, dict[str, Record]] = field(default_factory=dict)  # user → sid → record
    progress: dict[str, dict[str, rules_standing.AsyncProgress]] = field(default_factory=dict)
    submissions: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, list[rules_standing.LowAttendanceWarning]] = field(default_factory=dict)
    excused: dict[str, set[str]] = field(default_factory=dict)
    learners: list[str] = field(default_factory=list)

    def inputs(self, user_id: str) -> rules_standing.LearnerInputs:
        return rules_standing.LearnerInputs(
            user_id=user_id,
            records=self.records.get(user_id, {}),
            async_progress=self.progress.get(user_id, {}),
            submissions=self.submissions.get(user_id, {}),
            final_score=self.scores.get(user_id),
            warnings=tuple(sorted(self.warnings.get(user_id, []), key=lambda w: w.level)),
            excused_sessions=frozenset(self.excused.get(user_id, set())),
        )

    def standing(self, user_id: str) -> rules_standing.Standing:
        return rules_standing.course_standing(self.facts, self.inputs(user_id))


async def course_learners(conn: AsyncConnection, course_id: str) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT DISTINCT r.user_id FROM roster r JOIN sessions s ON s.id = r.session_id "
            "WHERE s.course_id = :c AND r.role = 'learner' ORDER BY r.user_id"
        ),
        {"c": course_id},
    )
    return [r[0] for r in rows]


async def load_course(
    conn: AsyncConnection,
    course_id: str,
    *,
    user_ids: Iterable[str] | None = None,
    now: float | None = None,
) -> CourseLedger | None:
    """A course's schedule, content and (for `user_ids`, default every learner) results."""
    course = (await conn.execute(select(courses).where(courses.c.id == course_id))).first()
    if course is None:
        return None
    now = clock.now() if now is None else now
    policy = course_policy(course)
    learners = await course_learners(conn, course_id)
    wanted = sorted(set(user_ids)) if user_ids is not None else learners
    srows = (
        await conn.execute(
            text(
                "SELECT s.*, r.status AS result_status FROM sessions s "
                "LEFT JOIN session_results r ON r.session_id = s.id AND r.revision = s.revision "
                "WHERE s.course_id = :c ORDER BY s.scheduled_start, s.id"
            ),
            {"c": course_id},
        )
    ).all()
    scheduled = []
    for s in srows:
        start = clock.from_dt(s.scheduled_start)
        duration = s.duration_minutes * 60.0
        if s.ended_at is not None and start <= clock.from_dt(s.ended_at) < start + duration:
            duration = clock.from_dt(s.ended_at) - start
        scheduled.append(
            rules_standing.ScheduledSession(
                session_id=s.id,
                start=start,
                duration_s=duration,
                kind=s.kind,
                mode=s.mode,
                finalised=s.status in FINAL_STATUSES and s.revision > 0,
                cancelled=s.result_status in CANCELLED_RESULTS,
            )
        )
    item_rows = (await conn.execute(select(items).where(items.c.course_id == course_id))).all()
    async_items = tuple(
        rules_standing.AsyncItem(
            item_id=i.item_id,
            kind=i.kind,
            required=i.required,
            duration_s=i.duration_s,
            due=_t(i.due),
        )
        for i in item_rows
        if i.kind not in ("assignment", "recording")
    )
    assignments = tuple(
        rules_standing.Assignment(i.item_id, clock.from_dt(i.due), i.core)
        for i in item_rows
        if i.kind == "assignment" and i.due is not None
    )
    facts = rules_standing.CourseFacts(
        policy=policy,
        delivery=course.delivery,
        starts_on=course.starts_on,
        ends_on=course.ends_on,
        sessions=tuple(scheduled),
        now=now,
        async_items=async_items,
        assignments=assignments,
    )
    ledger = CourseLedger(
        course=course, policy=policy, facts=facts, sessions=list(srows), learners=learners
    )
    if not wanted:
        return ledger
    finalised = [s.id for s in srows if s.status in FINAL_STATUSES and s.revision > 0]
    users = list(wanted)
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (session_id, user_id) * FROM records "
            "WHERE session_id = ANY(:sids) AND user_id = ANY(:uids) "
            "ORDER BY session_id, user_id, revision DESC"
        ),
        {"sids": finalised, "uids": users},
    )
    for r in rows:
        ledger.records.setdefault(r.user_id, {})[r.session_id] = record_from_row(r)
    by_item = {i.item_id: i for i in item_rows}
    checkpoints: dict[tuple[str, str], set[str]] = defaultdict(set)
    completed: set[tuple[str, str]] = set()
    spent: dict[tuple[str, str], float] = defaultdict(float)
    acts = await conn.execute(
        select(activity).where(activity.c.course_id == course_id, activity.c.user_id.in_(users))
    )
    for a in acts:
        key = (a.user_id, a.item_id)
        item = by_item.get(a.item_id)
        payload = a.payload or {}
        spent[key] += float(payload.get("time_spent_s") or 0.0)
        if a.type == "checkpoint":
            checkpoints[key].add(str(payload.get("checkpoint", a.event_id)))
            if item is not None and item.kind != "video":
                completed.add(key)
        elif a.type in ("submit", "post", "quiz"):
            completed.add(key)
            if a.type == "submit":
                subs = ledger.submissions.setdefault(a.user_id, {})
                ts = clock.from_dt(a.ts)
                subs[a.item_id] = min(ts, subs.get(a.item_id, ts))
        elif a.type == "answer" and item is not None and item.kind == "quiz":
            completed.add(key)
    for key in set(checkpoints) | completed | set(spent):
        uid, item_id = key
        item = by_item.get(item_id)
        ledger.progress.setdefault(uid, {})[item_id] = rules_standing.AsyncProgress(
            checkpoints_done=len(checkpoints.get(key, ())),
            checkpoints_total=item.checkpoints if item is not None else 0,
            completed=key in completed,
            time_spent_s=spent.get(key, 0.0),
        )
    for s in await conn.execute(
        select(final_scores).where(
            final_scores.c.course_id == course_id, final_scores.c.user_id.in_(users)
        )
    ):
        ledger.scores[s.user_id] = s.score
    for w in await conn.execute(
        select(warnings).where(warnings.c.course_id == course_id, warnings.c.user_id.in_(users))
    ):
        ledger.warnings.setdefault(w.user_id, []).append(
            rules_standing.LowAttendanceWarning(
                LEVEL_NAMES[w.level],  # type: ignore[arg-type]
                clock.from_dt(w.raised_at),
            )
        )
    for e in await conn.execute(
        select(excuses.c.user_id, excuses.c.session_id)
        .join(sessions, sessions.c.id == excuses.c.session_id)
        .where(
            sessions.c.course_id == course_id,
            excuses.c.status == "accepted",
            excuses.c.category != "technical",
            excuses.c.user_id.in_(users),
        )
    ):
        ledger.excused.setdefault(e.user_id, set()).add(e.session_id)
    return ledger


def standing_out(
    standing: rules_standing.Standing, *, persisted_only: bool = False
) -> dict[str, Any]:
    """A standing as CONTRACT "Results" shows it."""
    shown = standing.warnings
    if persisted_only:
        shown = tuple(w for w in standing.warnings if w not in standing.new_warnings)
    return {
        "user_id": standing.user_id,
        "live_rate": standing.live_rate,
        "rates_by_mode": dict(standing.rates_by_mode),
        "hours_rate": standing.hours_rate,
        "async_rate": standing.async_rate,
        "core_assignments": standing.core_assignments,
        "final_score": standing.final_score,
        "below_minimum": standing.below_minimum,
        "warnings": [
            {"level": WARNING_LEVELS[w.level], "raised_at": clock.iso(w.raised_at)} for w in shown
        ],
        "certificate": {
            "status": standing.certificate.status,
            "reasons": list(standing.certificate.reasons),
        },
        "final_exam_eligible": standing.final_exam_eligible,
        "flags": list(standing.flags),
        "counted_sessions": standing.counted_sessions,
        "async_time_s": dict(standing.async_time_s),
    }


async def max_revision(conn: AsyncConnection, session_id: str) -> int:
    value = await conn.scalar(
        select(func.coalesce(func.max(sessions.c.revision), 0)).where(sessions.c.id == session_id)
    )
    return int(value or 0)
