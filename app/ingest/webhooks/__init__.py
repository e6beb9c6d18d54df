"""Meeting-platform webhooks (CONTRACT.md "Meeting-platform webhooks"): Zoom, LiveKit and a
generic Standard Webhooks endpoint, one router.

Each request is verified on its raw body (`signatures`), mapped to a session and a person
(`mapping`), journaled through the one event model with the platform's own time, and
acknowledged. A missing or bad signature is 401 and journals nothing; unknown meetings and
unknown event types are acknowledged and ignored (and counted in `hadir_webhooks_total`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import ResourcesDep
from app.ingest.webhooks import generic, livekit, zoom

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not JSON, or not the platform's shape"},
    401: {"description": "Missing or bad signature; nothing was journaled"},
    413: {"description": "Body larger than 1 MiB"},
    415: {"description": "Not application/json"},
}


@router.post("/zoom", summary="Zoom meeting webhooks", responses=_ERRORS)
async def zoom_webhook(request: Request, res: ResourcesDep) -> dict[str, Any]:
    """`x-zm-signature` over the raw body; answers `endpoint.url_validation`; takes
    `meeting.started`, `meeting.ended`, `meeting.participant_joined`, `meeting.participant_left`,
    `meeting.participant_joined_breakout_room` and `meeting.participant_left_breakout_room`
    (moving between the main room and breakout rooms keeps the participant connected)."""
    return await zoom.handle(request, res)


@router.post("/livekit", summary="LiveKit webhooks", responses=_ERRORS)
async def livekit_webhook(request: Request, res: ResourcesDep) -> dict[str, Any]:
    """`Authorization` JWT (HS256, API secret) whose `sha256` claim hashes the raw body; takes
    `room_started`, `room_finished`, `participant_joined`, `participant_left`,
    `participant_connection_aborted`."""
    return await livekit.handle(request, res)


@router.post("/generic", summary="Generic webhooks (Standard Webhooks)", responses=_ERRORS)
async def generic_webhook(request: Request, res: ResourcesDep) -> dict[str, Any]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature`; body
    `{"session_id", "events": [import events]}`."""
    return await generic.handle(request, res)
