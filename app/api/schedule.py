"""Courses and sessions (CONTRACT.md "Schedule"), scope `schedule:write`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from app.api.deps import DbDep, ResourcesDep, require
from app.api.schemas import CancelIn, CourseIn, Id, OutageIn, SessionIn
from app.finalise.finaliser import request_revision
from app.ingest import sessions as directory
from app.kit import clock
from app.kit.auth import ApiPrincipal
from app.kit.db import courses, outages, roster, session_refs, sessions
from app.kit.problems import Problem, not_found
from app.live.lifecycle import FINAL_STATUSES, announce_ended, end_session
from app.rules import policy as rules_policy

router = APIRouter(prefix="/v1", tags=["schedule"])

ScheduleWriter = Annotated[ApiPrincipal, Depends(require("schedule:write"))]
PathId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


def _policy_problem(exc: rules_policy.PolicyError, where: str) -> Problem:
    return Problem(
        422,
        "invalid_policy",
        "; ".join(exc.problems),
        extra={"errors": [{"field": where, "message": p} for p in exc.problems]},
    )


def course_out(row: Any) -> dict[str, Any]:
    try:
        effective = rules_policy.resolve(row.policy, row.overrides)
        parameters: dict[str, Any] | None = rules_policy.as_dict(effective)
        summary: list[str] | None = rules_policy.describe(effective)
    except rules_policy.PolicyError:
        parameters, summary = None, None
    return {
        "id": row.id,
        "title": row.title,
        "policy": row.policy,
        "delivery": row.delivery,
        "starts_on": row.starts_on.isoformat(),
        "ends_on": row.ends_on.isoformat(),
        "timezone": row.timezone,
        "teaching_model": row.teaching_model,
        "overrides": row.overrides,
        "effective_policy": {"parameters": parameters, "summary": summary},
    }


@router.put("/courses/{course_id}", summary="Create or update a course")
async def put_course(
    course_id: PathId, body: CourseIn, db: DbDep, _: ScheduleWriter, response: Response
) -> dict[str, Any]:
    if body.ends_on < body.starts_on:
        raise Problem(422, "invalid_input", "ends_on is before starts_on")
    try:
        overrides = rules_policy.normalise_overrides(body.overrides)
        rules_policy.resolve(body.policy, overrides)
    except rules_policy.PolicyError as exc:
        raise _policy_problem(exc, "overrides") from exc
    values = {
        "title": body.title,
        "policy": body.policy,
        "delivery": body.delivery,
        "starts_on": body.starts_on,
        "ends_on": body.ends_on,
        "timezone": body.timezone,
        "teaching_model": body.teaching_model,
        "overrides": overrides,
    }
    upsert = pg_insert(courses).values(id=course_id, **values)
    stmt = upsert.on_conflict_do_update(
        index_elements=[courses.c.id], set_={**values, "updated_at": clock.to_dt(clock.now())}
    ).returning(courses, (courses.c.created_at == courses.c.updated_at).label("created"))
    row = (await db.execute(stmt)).one()
    response.status_code = 201 if row.created else 200
    return course_out(row)


@router.get("/courses/{course_id}", summary="A course with its effective policy")
async def get_course(
    course_id: PathId, db: DbDep, _: Annotated[ApiPrincipal, Depends(require("results:read"))]
) -> dict[str, Any]:
    row = (await db.execute(select(courses).where(courses.c.id == course_id))).first()
    if row is None:
        raise not_found("course", course_id)
    return course_out(row)


async def session_out(db: AsyncConnection, session_id: str) -> dict[str, Any]:
    row = (await db.execute(select(sessions).where(sessions.c.id == session_id))).first()
    if row is None:
        raise not_found("session", session_id)
    people = (
        await db.execute(
            select(roster).where(roster.c.session_id == session_id).order_by(roster.c.user_id)
        )
    ).all()
    return {
        "id": row.id,
        "course_id": row.course_id,
        "kind": row.kind,
        "mode": row.mode,
        "scheduled_start": clock.iso(clock.from_dt(row.scheduled_start)),
        "duration_minutes": row.duration_minutes,
        "camera_required": row.camera_required,
        "overrides": row.overrides,
        "external": row.external,
        "status": row.status,
        "started_at": clock.iso(clock.from_dt(row.started_at)) if row.started_at else None,
        "ended_at": clock.iso(clock.from_dt(row.ended_at)) if row.ended_at else None,
        "revision": row.revision,
        "roster": [
            {
                "user_id": p.user_id,
                "role": p.role,
                "name": p.name,
                "email": p.email,
                "external_ids": p.external_ids,
                "proctoring_consent": p.proctoring_consent,
            }
            for p in people
        ],
    }


@router.put("/sessions/{session_id}", summary="Create or update a session while not finalised")
async def put_session(
    session_id: PathId,
    body: SessionIn,
    db: DbDep,
    _: ScheduleWriter,
    res: ResourcesDep,
    response: Response,
) -> dict[str, Any]:
    course = (await db.execute(select(courses).where(courses.c.id == body.course_id))).first()
    if course is None:
        raise Problem(404, "not_found", f"course '{body.course_id}' does not exist")
    try:
        overrides = rules_policy.normalise_overrides(body.overrides)
        rules_policy.resolve(course.policy, course.overrides, overrides)
    except rules_policy.PolicyError as exc:
        raise _policy_problem(exc, "overrides") from exc
    existing = (
        await db.execute(
            select(sessions.c.status).where(sessions.c.id == session_id).with_for_update()
        )
    ).first()
    if existing is not None and existing.status in FINAL_STATUSES | {"ended"}:
        raise Problem(
            409, "session_closed", f"session '{session_id}' is {existing.status}; it cannot change"
        )
    values = {
        "course_id": body.course_id,
        "kind": body.kind,
        "mode": body.mode,
        "scheduled_start": body.scheduled_start,
        "duration_minutes": body.duration_minutes,
        "camera_required": body.camera_required,
        "overrides": overrides,
        "external": [e.model_dump() for e in body.external],
        "updated_at": clock.to_dt(clock.now()),
    }
    if existing is None:
        await db.execute(insert(sessions).values(id=session_id, **values))
        response.status_code = 201
    else:
        await db.execute(sessions.update().where(sessions.c.id == session_id).values(**values))
    await db.execute(delete(roster).where(roster.c.session_id == session_id))
    if body.roster:
        await db.execute(
            insert(roster),
            [{"session_id": session_id, **p.model_dump()} for p in body.roster],
        )
    await db.execute(delete(session_refs).where(session_refs.c.session_id == session_id))
    refs = {(e.provider, e.ref) for e in body.external}
    if refs:
        await db.execute(
            insert(session_refs),
            [{"provider": p, "ref": r, "session_id": session_id} for p, r in sorted(refs)],
        )
    directory.forget(res, session_id)
    return await session_out(db, session_id)


@router.get("/sessions/{session_id}", summary="A session with its roster")
async def get_session(
    session_id: PathId, db: DbDep, _: Annotated[ApiPrincipal, Depends(require("results:read"))]
) -> dict[str, Any]:
    return await session_out(db, session_id)


@router.post("/sessions/{session_id}/end", summary="End a session now; finalisation follows")
async def post_end(
    session_id: PathId, db: DbDep, _: ScheduleWriter, res: ResourcesDep, after: BackgroundTasks
) -> dict[str, Any]:
    try:
        ended, status = await end_session(res, db, session_id, reason="api")
    except LookupError:
        raise not_found("session", session_id) from None
    if ended:
        after.add_task(announce_ended, res, session_id)  # runs after the commit
    return {"id": session_id, "status": status, "already_ended": not ended}


@router.post(
    "/sessions/{session_id}/cancel",
    summary="Cancel a session (consultations: by a learner, with or without notice)",
)
async def post_cancel(
    session_id: PathId,
    body: CancelIn,
    db: DbDep,
    _: ScheduleWriter,
    res: ResourcesDep,
    after: BackgroundTasks,
) -> dict[str, Any]:
    """seed 000 §8: a learner's cancellation at least `cancel_notice` before the start is
    refunded or rescheduled; a later one counts the session in full (`forfeited`). A
    cancellation of the whole session ends it now; the finaliser decides the records."""
    row = (
        await db.execute(select(sessions).where(sessions.c.id == session_id).with_for_update())
    ).first()
    if row is None:
        raise not_found("session", session_id)
    if body.by == "learner" and row.kind != "consultation":
        raise Problem(422, "invalid_input", "only consultations are cancelled by a learner")
    if body.user_id is not None:
        role = await db.scalar(
            select(roster.c.role).where(
                roster.c.session_id == session_id, roster.c.user_id == body.user_id
            )
        )
        if role != "learner":
            raise Problem(
                422, "not_on_roster", f"user '{body.user_id}' is not a learner of this session"
            )
    at = clock.from_dt(body.at) if body.at is not None else clock.now()
    cancellation = {"by": body.by, "at": at, "user_id": body.user_id}
    await db.execute(
        sessions.update().where(sessions.c.id == session_id).values(cancellation=cancellation)
    )
    learners = (
        await db.execute(
            select(roster.c.user_id).where(
                roster.c.session_id == session_id, roster.c.role == "learner"
            )
        )
    ).scalars()
    whole = body.user_id is None or set(learners) <= {body.user_id}
    status = row.status
    if row.status in FINAL_STATUSES:
        await request_revision(res, db, session_id)
    elif whole and row.status != "ended":
        ended, status = await end_session(res, db, session_id, reason="cancelled", at=clock.now())
        if ended:
            after.add_task(announce_ended, res, session_id)  # runs after the commit
    return {
        "id": session_id,
        "status": status,
        "cancellation": {**cancellation, "at": clock.iso(at)},
    }


@router.post(
    "/sessions/{session_id}/outages",
    status_code=201,
    summary="Declare an outage window (a finalised session gets a new revision)",
)
async def post_outage(
    session_id: PathId, body: OutageIn, db: DbDep, _: ScheduleWriter, res: ResourcesDep
) -> dict[str, Any]:
    if body.end <= body.start:
        raise Problem(422, "invalid_input", "end must be after start")
    exists = await db.scalar(select(sessions.c.id).where(sessions.c.id == session_id))
    if exists is None:
        raise not_found("session", session_id)
    made = (
        await db.execute(
            insert(outages)
            .values(
                session_id=session_id,
                start=body.start,
                end=body.end,
                cause=body.cause,
                source="declared",
            )
            .returning(outages.c.id)
        )
    ).scalar_one()
    revised = await request_revision(res, db, session_id)
    return {
        "id": made,
        "session_id": session_id,
        "start": clock.iso(clock.from_dt(body.start)),
        "end": clock.iso(clock.from_dt(body.end)),
        "cause": body.cause,
        "revision_requested": revised,
    }


__all__ = ["Id", "router"]
