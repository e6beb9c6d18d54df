"""Finaliser: when a session has ended, compute every record with the rules engine.

Finalisation waits until the archive holds the whole journal and the session's watermark
(`finalise_after` = end + `HADIR_FINALISE_DELAY_S`) has passed, then, in one transaction
holding the session row (`FOR UPDATE SKIP LOCKED`: several workers never finalise one session
twice), reads the events, roster, declared outages, accepted excuses and technical claims,
recording watch and cancellation from PostgreSQL, evaluates the session (`app.rules`), and
writes the result and records under the next revision together with the LMS outbox messages.

A finalised session is finalised again when `needs_revision` is set (an excuse accepted, a
technical claim, a declared outage, a recording watched, late events). Unchanged records keep
their revision; changed ones get the new one; earlier revisions stay as history. Nothing
changed: no new revision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.finalise import ledger, outbox
from app.finalise.archiver import archiver
from app.ingest.events import rules_event
from app.kit import clock
from app.kit.db import (
    activity,
    courses,
    excuses,
    items,
    outages,
    records,
    roster,
    session_results,
    sessions,
    warnings,
)
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources
from app.live.lifecycle import FINAL_STATUSES, publish_control
from app.rules import outcome as rules_outcome
from app.rules.compliance import longer_than_month
from app.rules.evidence import Event, Window
from app.rules.policy import Policy

log = logging.getLogger(__name__)

# The payload as text, parsed with orjson as the journal is: faster than the driver's json.
_EVENTS = text("SELECT type, ts, payload::text AS payload FROM events WHERE session_id = :sid")

# ZREM only if the entry was not re-queued meanwhile with a later due time.
_DEQUEUE_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


async def load_events(
    conn: AsyncConnection, session_id: str, policy: Policy
) -> tuple[list[Event], list[Window]]:
    """The session's archived events for the rules, and its service gaps (§3.2).

    A row's payload is its journal entry, read by the same conversion as the live journal
    (`rules_event`), at the row's stored time."""
    events: list[Event] = []
    gaps: list[Window] = []
    for r in await conn.execute(_EVENTS, {"sid": session_id}):
        payload = orjson.loads(r.payload)
        if r.type == "outage":
            gap_start, gap_end = payload.get("start"), payload.get("end")
            if gap_start is not None and gap_end is not None:
                start, end = float(gap_start), float(gap_end)
                # seed 000 §7 / POLICY §3.2: only gaps longer than `service_gap` are outages.
                if end - start > policy.service_gap:
                    gaps.append(Window(start, end, "service_gap"))
            continue
        event = rules_event(payload, ts=clock.from_dt(r.ts))
        if event is not None:
            events.append(event)
    return events, gaps


async def recording_watched(conn: AsyncConnection, session_id: str) -> dict[str, float]:
    """Per learner, the largest watched fraction of the session's recording items."""
    rows = await conn.execute(
        select(activity.c.user_id, activity.c.payload)
        .join(
            items,
            (items.c.course_id == activity.c.course_id) & (items.c.item_id == activity.c.item_id),
        )
        .where(
            items.c.kind == "recording",
            items.c.session_id == session_id,
            activity.c.type == "recording_progress",
        )
    )
    out: dict[str, float] = {}
    for uid, payload in rows:
        try:
            fraction = float((payload or {}).get("fraction", 0.0))
        except (TypeError, ValueError):
            continue
        out[uid] = max(out.get(uid, 0.0), min(1.0, max(0.0, fraction)))
    return out


async def session_facts(
    conn: AsyncConnection, row: Any, course: Any, policy: Policy
) -> rules_outcome.SessionFacts:
    sid = row.id
    people = (await conn.execute(select(roster).where(roster.c.session_id == sid))).all()
    declared = tuple(
        Window(clock.from_dt(o.start), clock.from_dt(o.end), o.cause)
        for o in await conn.execute(select(outages).where(outages.c.session_id == sid))
    )
    excused: set[str] = set()
    claims: dict[str, list[Window]] = {}
    for e in await conn.execute(
        select(excuses).where(excuses.c.session_id == sid, excuses.c.status == "accepted")
    ):
        if e.category == "technical":
            start = clock.from_dt(row.scheduled_start)
            if e.window_start is not None and e.window_end is not None:
                window = Window(clock.from_dt(e.window_start), clock.from_dt(e.window_end), "claim")
            else:  # no window: nothing to credit, but the loss counts as platform-caused (§3)
                window = Window(start, start, "claim")
            claims.setdefault(e.user_id, []).append(window)
        else:
            excused.add(e.user_id)
    cancellation = None
    if row.cancellation:
        c = row.cancellation
        cancellation = rules_outcome.Cancellation(
            by=c["by"], at=float(c["at"]), user_id=c.get("user_id")
        )
    return rules_outcome.SessionFacts(
        session_id=sid,
        kind=row.kind,
        mode=row.mode,
        start=clock.from_dt(row.scheduled_start),
        duration_s=row.duration_minutes * 60.0,
        ended_at=clock.from_dt(row.ended_at) if row.ended_at else None,
        camera_required=row.camera_required,
        roster=tuple(
            rules_outcome.Participant(p.user_id, p.role, p.proctoring_consent) for p in people
        ),
        declared_outages=declared,
        cancellation=cancellation,
        technical_claims={u: tuple(w) for u, w in claims.items()},
        excused=frozenset(excused),
        recording_watched=await recording_watched(conn, sid),
        long_course=longer_than_month(course.starts_on, course.ends_on),
    )


def _r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def canonical(rec: rules_outcome.Record) -> dict[str, Any]:
    """A record as stored (times to the millisecond), the form compared between revisions."""
    return {
        "role": rec.role,
        "status": rec.status,
        "credit": round(rec.credit, 6),
        "reasons": list(rec.reasons),
        "flags": list(rec.flags),
        "first_join": _r3(rec.first_join),
        "last_seen": _r3(rec.last_seen),
        "connected_s": round(rec.connected_s, 3),
        "present_s": round(rec.present_s, 3),
        "camera_s": _r3(rec.camera_s),
        "active_s": round(rec.active_s, 3),
        "engagements": rec.engagements,
        "intervals": [
            {"start": round(i.start, 3), "end": round(i.end, 3), "kind": i.kind}
            for i in rec.intervals
        ],
    }


def _stored(row: Any) -> dict[str, Any]:
    return canonical(ledger.record_from_row(row))


def result_values(out: rules_outcome.SessionOutcome) -> dict[str, Any]:
    return {
        "status": out.status,
        "fault_ratio": round(out.fault_ratio, 6),
        "outage_windows": [
            {"start": round(w.start, 3), "end": round(w.end, 3), "cause": w.cause}
            for w in out.outage_windows
        ],
        "reschedule_required": out.reschedule_required,
        "remedies": list(out.remedies),
        "compliance": dict(out.compliance),
    }


def session_status(out: rules_outcome.SessionOutcome) -> str:
    """The session row's status after finalisation."""
    if out.status in ("cancelled_platform_fault", "mentor_absent", "cancelled"):
        return out.status
    return "finalised"  # finalised, and a consultation forfeited by a late cancellation


async def finalise_session(res: Resources, session_id: str, *, now: float | None = None) -> str:
    """Finalise (or revise) one session if due. Returns what happened: `finalised`,
    `revised`, `unchanged`, `not_due`, `not_ended`, `busy`, `archive_behind` or `unknown`."""
    now = clock.now() if now is None else now
    if not await archiver(res).drain(session_id):
        return "archive_behind"
    async with res.engine.begin() as conn:
        row = (
            await conn.execute(
                select(sessions)
                .where(sessions.c.id == session_id)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            exists = await conn.scalar(select(sessions.c.id).where(sessions.c.id == session_id))
            return "busy" if exists else "unknown"
        if row.status not in FINAL_STATUSES and row.status != "ended":
            return "not_ended"
        if row.status == "ended":
            if row.finalise_after is not None and clock.from_dt(row.finalise_after) > now:
                return "not_due"
        elif not row.needs_revision:
            return "unchanged"
        outcome_name = await _finalise_locked(res, conn, row, now)
    if outcome_name in ("finalised", "revised"):
        await publish_control(res, "finalised", session_id)
    return outcome_name


async def _finalise_locked(res: Resources, conn: AsyncConnection, row: Any, now: float) -> str:
    sid = row.id
    course = (await conn.execute(select(courses).where(courses.c.id == row.course_id))).one()
    policy = ledger.course_policy(course, row.overrides)
    facts = await session_facts(conn, row, course, policy)
    events, gaps = await load_events(conn, sid, policy)
    if gaps:
        facts = dataclasses.replace(facts, service_gaps=tuple(gaps))
    out = rules_outcome.evaluate_session(facts, events, policy)

    revision = row.revision + 1
    previous = {r.user_id: r for r in await ledger.current_records(conn, [sid])}
    prev_result = (
        await conn.execute(
            select(session_results).where(
                session_results.c.session_id == sid, session_results.c.revision == row.revision
            )
        )
    ).first()
    values = result_values(out)
    result_changed = prev_result is None or any(
        getattr(prev_result, k) != v for k, v in values.items()
    )
    changed: list[tuple[rules_outcome.Record, dict[str, Any]]] = []
    for rec in out.records:
        body = canonical(rec)
        old = previous.get(rec.user_id)
        if old is None or _stored(old) != body:
            changed.append((rec, body))
    status = session_status(out)
    if not changed and not result_changed:
        await conn.execute(
            update(sessions).where(sessions.c.id == sid).values(needs_revision=False)
        )
        return "unchanged"

    finalised_at = clock.to_dt(now)
    await conn.execute(
        insert(session_results).values(
            session_id=sid,
            revision=revision,
            finalised_at=finalised_at,
            reason=row.end_reason,
            **values,
        )
    )
    if changed:
        await conn.execute(
            insert(records),
            [
                {
                    "session_id": sid,
                    "user_id": rec.user_id,
                    "revision": revision,
                    **{
                        **body,
                        "first_join": clock.to_dt(body["first_join"])
                        if body["first_join"] is not None
                        else None,
                        "last_seen": clock.to_dt(body["last_seen"])
                        if body["last_seen"] is not None
                        else None,
                    },
                    "changed": True,
                }
                for rec, body in changed
            ],
        )
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == sid)
        .values(
            status=status,
            revision=revision,
            needs_revision=False,
            updated_at=finalised_at,
        )
    )
    await _enqueue(conn, row, course, revision, values, changed, previous, result_changed)
    await _raise_warnings(conn, course, [r.user_id for r in out.records if r.role == "learner"])
    return "finalised" if row.revision == 0 else "revised"


def _record_message(sid: str, revision: int, rec: rules_outcome.Record) -> dict[str, Any]:
    body = canonical(rec)
    return {
        "session_id": sid,
        "user_id": rec.user_id,
        "role": rec.role,
        "status": rec.status,
        "credit": rec.credit,
        "reasons": list(rec.reasons),
        "flags": list(rec.flags),
        "present_s": body["present_s"],
        "connected_s": body["connected_s"],
        "revision": revision,
    }


async def _enqueue(
    conn: AsyncConnection,
    row: Any,
    course: Any,
    revision: int,
    values: dict[str, Any],
    changed: list[tuple[rules_outcome.Record, dict[str, Any]]],
    previous: dict[str, Any],
    result_changed: bool,
) -> None:
    """Outbox messages of this revision, in the same transaction (ordered per session)."""
    sid = row.id
    key = f"session:{sid}"
    summary = {
        "session_id": sid,
        "course_id": row.course_id,
        "revision": revision,
        "status": values["status"],
        "fault_ratio": values["fault_ratio"],
        "reschedule_required": values["reschedule_required"],
        "remedies": values["remedies"],
        "attendance_url": f"/v1/sessions/{sid}/attendance",
    }
    if row.revision == 0:
        counts: dict[str, int] = {}
        for rec, _ in changed:
            if rec.role == "learner":
                counts[rec.status] = counts.get(rec.status, 0) + 1
        summary["learners_by_status"] = dict(sorted(counts.items()))
        await outbox.enqueue(conn, key, "session.finalised", summary)
        return
    messages: list[tuple[str, str, dict[str, Any]]] = []
    if result_changed:
        messages.append((key, "session.finalised", summary))
    for rec, _ in changed:
        message = _record_message(sid, revision, rec)
        old = previous.get(rec.user_id)
        message["previous"] = (
            None
            if old is None
            else {"status": old.status, "credit": old.credit, "revision": old.revision}
        )
        messages.append((key, "record.revised", message))
    await outbox.enqueue_many(conn, messages)


async def _raise_warnings(conn: AsyncConnection, course: Any, learners: list[str]) -> None:
    """seed 000 §9: persist each new warning once per course and learner, and tell the LMS.

    One INSERT for all of them and one for their messages: a class of 1,000 learners below
    the minimum raises up to 2,000 warnings, and a statement each took seconds."""
    if not learners:
        return
    book = await ledger.load_course(conn, course.id, user_ids=learners)
    if book is None:
        return
    raised: list[tuple[str, int, float, Any]] = []
    for uid in learners:
        standing = book.standing(uid)
        for w in standing.new_warnings:
            raised.append((uid, ledger.WARNING_LEVELS[w.level], w.raised_at, standing))
    if not raised:
        return
    inserted = await conn.execute(
        pg_insert(warnings)
        .on_conflict_do_nothing()
        .returning(warnings.c.user_id, warnings.c.level),
        [
            {"course_id": course.id, "user_id": uid, "level": level, "raised_at": clock.to_dt(t)}
            for uid, level, t, _ in raised
        ],
    )
    new = {(r.user_id, r.level) for r in inserted}
    await outbox.enqueue_many(
        conn,
        [
            (
                f"standing:{course.id}:{uid}",
                "standing.warning",
                {
                    "course_id": course.id,
                    "user_id": uid,
                    "level": level,
                    "support_call": level == 2,
                    "live_rate": standing.live_rate,
                    "min_live_rate": book.policy.min_live_rate,
                    "raised_at": clock.iso(t),
                },
            )
            for uid, level, t, standing in raised
            if (uid, level) in new
        ],
    )


async def request_revision(res: Resources, conn: AsyncConnection, session_id: str) -> bool:
    """Mark a finalised session for a new revision (in the caller's transaction) and wake the
    finaliser. Returns whether the session was already finalised."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.status.in_(FINAL_STATUSES))
        .values(needs_revision=True)
        .returning(sessions.c.id)
    )
    if result.first() is None:
        return False
    await res.redis.zadd(res.keys.finalise_queue, {session_id: 0.0})
    return True


async def due_sessions(res: Resources, now: float, limit: int = 20) -> list[tuple[str, float]]:
    """Sessions to look at: the Redis queue (fast path) and PostgreSQL (the truth)."""
    queued: Any = await res.redis.zrangebyscore(
        res.keys.finalise_queue, "-inf", now, start=0, num=limit, withscores=True
    )
    out = {(k.decode() if isinstance(k, bytes) else str(k)): float(s) for k, s in queued}
    async with res.engine.connect() as conn:
        rows = await conn.execute(
            select(sessions.c.id)
            .where(
                ((sessions.c.status == "ended") & (sessions.c.finalise_after <= clock.to_dt(now)))
                | sessions.c.needs_revision.is_(True)
            )
            .limit(limit)
        )
        for (sid,) in rows:
            out.setdefault(sid, now)
    return list(out.items())


async def run_due(res: Resources) -> int:
    """Finalise every due session once; returns how many were finalised or revised."""
    now = clock.now()
    done = 0
    for sid, score in await due_sessions(res, now):
        try:
            result = await finalise_session(res, sid, now=now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("finalising %s failed; it stays queued", sid)
            continue
        if result in ("finalised", "revised"):
            done += 1
        if result in ("finalised", "revised", "unchanged", "not_ended", "unknown"):
            await res.redis.eval(_DEQUEUE_LUA, 1, res.keys.finalise_queue, sid, score)
    return done


async def loop(res: Resources, period_s: float = 0.1) -> None:
    while True:
        stop_if_cancelled()
        try:
            n = await run_due(res)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("finaliser pass failed (%s); retrying", exc)
            n = 0
        await asyncio.sleep(0 if n else period_s)
