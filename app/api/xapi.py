"""xAPI statements of a finalised session: one `attended` statement per learner record."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select
from starlette.responses import Response

from app.api.deps import DbDep, require
from app.api.results import _require_finalised, _session, json_response
from app.finalise import ledger
from app.kit import clock
from app.kit.auth import ApiPrincipal
from app.kit.db import courses

router = APIRouter(prefix="/v1", tags=["results"])

ATTENDED = "http://adlnet.gov/expapi/verbs/attended"
BASE = "https://hadir.dev/xapi"
NAMESPACE = uuid.UUID("1b5d2d2e-9a3c-4f57-9d43-6b1f3a0f7c11")
ATTENDING = frozenset({"present", "late", "partial", "recording"})


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration (`PT1H2M3.5S`), as xAPI results carry."""
    total = round(max(0.0, seconds), 2)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{int(hours)}H"
    if minutes:
        out += f"{int(minutes)}M"
    if secs or out == "PT":
        out += f"{secs:g}S"
    return out


@router.get("/sessions/{session_id}/xapi", summary="xAPI `attended` statements of a session")
async def statements(
    session_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")],
    request: Request,
    db: DbDep,
    _: Annotated[ApiPrincipal, Depends(require("results:read"))],
) -> Response:
    row = await _session(db, session_id)
    _require_finalised(row)
    title = await db.scalar(select(courses.c.title).where(courses.c.id == row.course_id))
    start = clock.iso(clock.from_dt(row.scheduled_start))
    out: list[dict[str, Any]] = []
    for r in await ledger.current_records(db, [session_id]):
        if r.role != "learner":
            continue
        out.append(
            {
                "id": str(uuid.uuid5(NAMESPACE, f"{session_id}/{r.user_id}/{r.revision}")),
                "actor": {
                    "objectType": "Agent",
                    "account": {"homePage": f"{BASE}/users", "name": r.user_id},
                },
                "verb": {"id": ATTENDED, "display": {"en-US": "attended"}},
                "object": {
                    "objectType": "Activity",
                    "id": f"{BASE}/sessions/{session_id}",
                    "definition": {
                        "type": "http://adlnet.gov/expapi/activities/meeting",
                        "name": {"en-US": f"{title} ({row.kind}, {start})"},
                    },
                },
                "result": {
                    "duration": iso_duration(r.present_s),
                    "completion": r.status in ATTENDING,
                    "score": {"scaled": round(r.credit, 4)},
                    "extensions": {
                        f"{BASE}/status": r.status,
                        f"{BASE}/reasons": list(r.reasons),
                        f"{BASE}/revision": r.revision,
                    },
                },
                "context": {
                    "extensions": {f"{BASE}/course": row.course_id},
                },
                "timestamp": clock.iso(clock.from_dt(r.first_join)) if r.first_join else start,
            }
        )
    return json_response(request, {"statements": out, "more": ""})
