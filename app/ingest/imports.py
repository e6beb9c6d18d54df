"""Trusted import `POST /v1/sessions/{id}/events` (scope `events:import`): a platform's report or
replayed history, each event with its own `ts`, into the same journal as live traffic."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from app.api.deps import ResourcesDep, require
from app.api.schemas import ImportIn
from app.ingest import sessions as directory
from app.ingest.events import Entry, EventError, import_entries
from app.ingest.journal import op_for
from app.kit import metrics
from app.kit.auth import ApiPrincipal
from app.kit.problems import Problem, not_found
from app.live.lifecycle import FINAL_STATUSES, mark_live, schedule_finalisation

router = APIRouter(prefix="/v1", tags=["ingest"])


async def journal_trusted(
    res: Any, session_id: str, entries: list[Entry], learners: set[str]
) -> int:
    """Journal trusted entries (imports and webhooks); returns how many were new."""
    if not entries:
        return 0
    pairs = [(e, op_for(e, learner=e.user_id in learners)) for e in entries]
    added: int = await res.writer.write(session_id, pairs)
    return added


@router.post(
    "/sessions/{session_id}/events",
    summary="Import trusted events (a platform's report, replayed history)",
)
async def import_events(
    session_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")],
    body: ImportIn,
    res: ResourcesDep,
    _: Annotated[ApiPrincipal, Depends(require("events:import"))],
) -> dict[str, Any]:
    info = await directory.load(res, session_id, fresh=True)
    if info is None:
        raise not_found("session", session_id)
    try:
        good, bad = import_entries(body.events, source="import")
    except EventError as exc:
        raise Problem(422, exc.code, exc.detail) from exc
    if bad and not good:
        raise Problem(
            422,
            "invalid_events",
            f"{len(bad)} invalid event(s), none imported",
            extra={"errors": [{"code": e.code, "detail": e.detail} for e in bad]},
        )
    learners = {u for u, r in info.roles.items() if r == "learner"}
    added = await journal_trusted(res, session_id, good, learners)
    joins = [e.ts for e in good if e.type == "join"]
    if joins and info.status == "scheduled":
        # Evidence of presence: the session is live from its first join (as a platform's
        # `joined` webhook makes it), and ends automatically like any other.
        await mark_live(res, session_id, min(joins), info.scheduled_end + info.policy.end_grace)
        directory.forget(res, session_id)
    metrics.events_total.labels("import").inc(added)
    if info.status in FINAL_STATUSES:
        # Late evidence after finalisation makes a new revision.
        await schedule_finalisation(res, session_id, 0.0)
    return {
        "accepted": len(good),
        "new": added,
        "duplicates": len(good) - added,
        "rejected": [{"code": e.code, "detail": e.detail} for e in bad],
    }
