"""Excuses and technical claims (POLICY §6), scope `excuses:write`.

An excuse must arrive within the rules engine's deadline (the `excuse_window`-th working day
after the session's date, in the course's time zone, `weekend` days excluded), else 422
`excuse_window_passed`. Staff decide once; an accepted excuse makes the record `excused`, an
accepted `technical` claim credits its window (`start`, `end`), and either re-finalises the
session into a new revision that is sent to the LMS again.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import Field, model_validator
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from app.api.deps import DbDep, ResourcesDep, require
from app.api.schemas import AwareDatetime, Id, Strict
from app.finalise import ledger
from app.finalise.finaliser import request_revision
from app.kit import clock
from app.kit.auth import ApiPrincipal
from app.kit.db import courses, excuses, roster, sessions
from app.kit.problems import Problem, not_found
from app.rules import excuses as rules_excuses

router = APIRouter(prefix="/v1", tags=["excuses"])

Writer = Annotated[ApiPrincipal, Depends(require("excuses:write"))]


class ExcuseIn(Strict):
    user_id: Id
    session_id: Id
    category: Literal["medical", "bereavement", "official", "travel", "technical"]
    submitted_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=2000)
    start: AwareDatetime | None = Field(
        default=None, description="technical claims: start of the window to credit"
    )
    end: AwareDatetime | None = Field(
        default=None, description="technical claims: end of the window to credit"
    )

    @model_validator(mode="after")
    def _window(self) -> ExcuseIn:
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end go together")
        if self.start is not None and self.end is not None:
            if self.category != "technical":
                raise ValueError("only a technical claim carries a window")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        return self


class DecisionIn(Strict):
    decision: Literal["accepted", "rejected"]


def _t(value: datetime | None) -> str | None:
    return None if value is None else clock.iso(clock.from_dt(value))


def excuse_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "user_id": row.user_id,
        "session_id": row.session_id,
        "category": row.category,
        "note": row.note,
        "submitted_at": _t(row.submitted_at),
        "deadline": _t(row.deadline),
        "decided_at": _t(row.decided_at),
        "window": (
            {"start": _t(row.window_start), "end": _t(row.window_end)}
            if row.window_start is not None
            else None
        ),
    }


@router.post(
    "/excuses",
    status_code=201,
    summary="Submit an excuse or technical claim for staff to decide",
    responses={409: {"description": "an open excuse exists"}, 422: {"description": "late"}},
)
async def submit(body: ExcuseIn, db: DbDep, _: Writer) -> dict[str, Any]:
    row = (
        await db.execute(
            select(sessions, courses)
            .join(courses, courses.c.id == sessions.c.course_id)
            .where(sessions.c.id == body.session_id)
        )
    ).first()
    if row is None:
        raise not_found("session", body.session_id)
    member = await db.scalar(
        select(roster.c.role).where(
            roster.c.session_id == body.session_id, roster.c.user_id == body.user_id
        )
    )
    if member != "learner":
        raise Problem(
            422,
            "not_on_roster",
            f"user '{body.user_id}' is not a learner of session '{body.session_id}'",
        )
    course = (await db.execute(select(courses).where(courses.c.id == row.course_id))).one()
    policy = ledger.course_policy(course)
    submitted = clock.from_dt(body.submitted_at) if body.submitted_at else clock.now()
    check = rules_excuses.check_excuse(
        body.category,
        clock.from_dt(row.scheduled_start),
        submitted,
        ledger.course_timezone(course),
        policy,
    )
    if not check.admissible:
        raise Problem(
            422,
            check.reasons[0],
            f"excuses for this session were due before {clock.iso(check.deadline)}",
            extra={"reasons": list(check.reasons), "deadline": clock.iso(check.deadline)},
        )
    values = {
        "id": "exc_" + secrets.token_hex(8),
        "session_id": body.session_id,
        "user_id": body.user_id,
        "category": body.category,
        "status": "pending",
        "note": body.note,
        "window_start": body.start,
        "window_end": body.end,
        "submitted_at": clock.to_dt(submitted),
        "deadline": clock.to_dt(check.deadline),
    }
    try:
        async with db.begin_nested():
            made = (await db.execute(insert(excuses).values(**values).returning(excuses))).one()
    except IntegrityError as exc:
        raise Problem(
            409,
            "duplicate_excuse",
            f"user '{body.user_id}' already has an open excuse for '{body.session_id}'",
        ) from exc
    return excuse_out(made)


@router.get("/excuses/{excuse_id}", summary="An excuse and its decision")
async def get_excuse(
    excuse_id: Annotated[str, Path(max_length=64)],
    db: DbDep,
    _: Annotated[ApiPrincipal, Depends(require("results:read"))],
) -> dict[str, Any]:
    row = (await db.execute(select(excuses).where(excuses.c.id == excuse_id))).first()
    if row is None:
        raise not_found("excuse", excuse_id)
    return excuse_out(row)


@router.post(
    "/excuses/{excuse_id}/decision",
    summary="Accept or reject an excuse once (409 when already decided)",
)
async def decide(
    excuse_id: Annotated[str, Path(max_length=64)],
    body: DecisionIn,
    db: DbDep,
    res: ResourcesDep,
    _: Writer,
    response: Response,
) -> dict[str, Any]:
    row = (
        await db.execute(select(excuses).where(excuses.c.id == excuse_id).with_for_update())
    ).first()
    if row is None:
        raise not_found("excuse", excuse_id)
    if row.status != "pending":
        raise Problem(409, "already_decided", f"excuse '{excuse_id}' was {row.status}")
    decided = (
        await db.execute(
            update(excuses)
            .where(excuses.c.id == excuse_id)
            .values(status=body.decision, decided_at=clock.to_dt(clock.now()))
            .returning(excuses)
        )
    ).one()
    out = excuse_out(decided)
    out["revision_requested"] = False
    if body.decision == "accepted":
        out["revision_requested"] = await request_revision(res, db, row.session_id)
    return out
