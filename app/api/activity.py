"""Course items and asynchronous activity (POLICY §5): what feeds `async_rate`,
`core_assignments`, `hours_rate`, recording credit (§3) and the final score.

- `PUT /v1/courses/{id}/items/{item_id}` (scope `schedule:write`) declares an item.
- `POST /v1/activity` (participant token) records a learner's activity, idempotent on `id`.
  A video is complete at `video_complete_fraction` of its checkpoints; a reading at its first
  checkpoint; a quiz on `quiz` (or an `answer`); an assignment on `submit` (on time when
  received before its due time); a discussion on `post`. `recording_progress` with `fraction`
  (0..1) of a session's recording feeds recording credit and re-finalises that session.
  `time_spent_s` on any event adds to the time reported per item (seed 001).
- `PUT /v1/courses/{id}/final-scores` (scope `schedule:write`) sets final assessment scores.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.responses import Response

from app.api.deps import DbDep, ParticipantDep, ResourcesDep, require
from app.api.schemas import AwareDatetime, Id, Strict
from app.finalise.finaliser import request_revision
from app.kit import clock
from app.kit.auth import ApiPrincipal
from app.kit.db import activity, courses, final_scores, items, roster, sessions
from app.kit.problems import Problem, not_found

router = APIRouter(prefix="/v1", tags=["activity"])

ScheduleWriter = Annotated[ApiPrincipal, Depends(require("schedule:write"))]
PathId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
ItemKind = Literal["video", "reading", "quiz", "assignment", "discussion", "recording"]


class ItemIn(Strict):
    kind: ItemKind
    title: str | None = Field(default=None, max_length=300)
    required: bool = True
    core: bool = Field(default=False, description="assignments: counts in `core_assignments`")
    due: AwareDatetime | None = Field(
        default=None, description="assignments: due time; other items: counted in hours from then"
    )
    checkpoints: int = Field(default=0, ge=0, le=10_000, description="videos: checkpoints")
    duration_minutes: float = Field(
        default=0.0, ge=0, description="the hours the item stands for (seed 001 `hours_rate`)"
    )
    session_id: Id | None = Field(default=None, description="recordings: the recorded session")

    @model_validator(mode="after")
    def _check(self) -> ItemIn:
        if self.kind == "video" and self.checkpoints == 0:
            raise ValueError("a video needs checkpoints")
        if self.kind == "assignment" and self.due is None:
            raise ValueError("an assignment needs a due time")
        if self.kind == "recording" and self.session_id is None:
            raise ValueError("a recording names its session_id")
        return self


class ActivityEvent(Strict):
    id: Id
    type: Literal["checkpoint", "answer", "submit", "post", "quiz", "recording_progress"]
    item_id: Id
    course_id: Id | None = None
    checkpoint: str | int | None = None
    fraction: float | None = Field(default=None, ge=0, le=1)
    time_spent_s: float | None = Field(default=None, ge=0, le=86400)
    score: float | None = None
    ts: str | float | None = Field(default=None, description="client clock, kept, not trusted")


class ActivityIn(Strict):
    events: list[ActivityEvent] = Field(min_length=1, max_length=500)


class ScoreIn(Strict):
    user_id: Id
    score: float = Field(ge=0, le=1)


class ScoresIn(Strict):
    scores: list[ScoreIn] = Field(min_length=1, max_length=5000)


@router.put("/courses/{course_id}/items/{item_id}", summary="Create or update a course item")
async def put_item(
    course_id: PathId,
    item_id: PathId,
    body: ItemIn,
    db: DbDep,
    _: ScheduleWriter,
    response: Response,
) -> dict[str, Any]:
    if await db.scalar(select(courses.c.id).where(courses.c.id == course_id)) is None:
        raise not_found("course", course_id)
    if body.session_id is not None:
        owner = await db.scalar(
            select(sessions.c.course_id).where(sessions.c.id == body.session_id)
        )
        if owner != course_id:
            raise Problem(
                422, "invalid_input", f"session '{body.session_id}' is not of this course"
            )
    values = {
        "kind": body.kind,
        "title": body.title,
        "required": body.required,
        "core": body.core,
        "due": body.due,
        "checkpoints": body.checkpoints,
        "duration_s": body.duration_minutes * 60.0,
        "session_id": body.session_id,
        "updated_at": clock.to_dt(clock.now()),
    }
    existed = await db.scalar(
        select(items.c.item_id).where(items.c.course_id == course_id, items.c.item_id == item_id)
    )
    stmt = pg_insert(items).values(course_id=course_id, item_id=item_id, **values)
    await db.execute(
        stmt.on_conflict_do_update(index_elements=[items.c.course_id, items.c.item_id], set_=values)
    )
    response.status_code = 200 if existed else 201
    return {"course_id": course_id, "item_id": item_id, **body.model_dump(mode="json")}


@router.post("/activity", summary="Record a learner's asynchronous activity (idempotent on id)")
async def post_activity(
    body: ActivityIn, db: DbDep, who: ParticipantDep, res: ResourcesDep
) -> dict[str, Any]:
    uid = who.user_id
    wanted = {e.item_id for e in body.events}
    found: dict[str, list[Any]] = {}
    for row in await db.execute(select(items).where(items.c.item_id.in_(wanted))):
        found.setdefault(row.item_id, []).append(row)
    now = clock.now()
    rows = []
    recordings: set[str] = set()
    for e in body.events:
        candidates = found.get(e.item_id, [])
        if e.course_id is not None:
            candidates = [c for c in candidates if c.course_id == e.course_id]
        if not candidates:
            raise Problem(422, "unknown_item", f"event {e.id}: item '{e.item_id}' does not exist")
        if len(candidates) > 1:
            raise Problem(
                422, "ambiguous_item", f"event {e.id}: name the course_id of '{e.item_id}'"
            )
        item = candidates[0]
        if e.type == "recording_progress":
            if item.kind != "recording" or e.fraction is None:
                raise Problem(
                    422,
                    "invalid_input",
                    f"event {e.id}: recording_progress needs a recording item and a fraction",
                )
            recordings.add(item.session_id)
        payload = e.model_dump(exclude={"id", "type", "item_id", "course_id"}, exclude_none=True)
        rows.append(
            {
                "user_id": uid,
                "event_id": e.id,
                "course_id": item.course_id,
                "item_id": e.item_id,
                "type": e.type,
                "ts": clock.to_dt(now),
                "payload": payload,
            }
        )
    result = await db.execute(
        pg_insert(activity).on_conflict_do_nothing().returning(activity.c.event_id), rows
    )
    new = len(result.all())
    for sid in sorted(recordings):
        on_roster = await db.scalar(
            select(roster.c.user_id).where(roster.c.session_id == sid, roster.c.user_id == uid)
        )
        if on_roster is not None:
            await request_revision(res, db, sid)
    return {"accepted": len(rows), "new": new, "duplicates": len(rows) - new}


@router.put(
    "/courses/{course_id}/final-scores",
    summary="Set learners' final assessment scores (0..1) from the LMS",
)
async def put_final_scores(
    course_id: PathId, body: ScoresIn, db: DbDep, _: ScheduleWriter
) -> dict[str, Any]:
    if await db.scalar(select(courses.c.id).where(courses.c.id == course_id)) is None:
        raise not_found("course", course_id)
    now = clock.to_dt(clock.now())
    stmt = pg_insert(final_scores)
    await db.execute(
        stmt.on_conflict_do_update(
            index_elements=[final_scores.c.course_id, final_scores.c.user_id],
            set_={"score": stmt.excluded.score, "updated_at": now},
        ),
        [
            {"course_id": course_id, "user_id": s.user_id, "score": s.score, "updated_at": now}
            for s in body.scores
        ],
    )
    return {"course_id": course_id, "updated": len(body.scores)}
