"""LiveKit webhooks: `POST /v1/webhooks/livekit` (CONTRACT.md "Meeting-platform webhooks").

The body is LiveKit's `WebhookEvent` in protobuf JSON (camelCase; 64-bit integers may arrive
as strings): `event`, `room` {`sid`, `name`, `creationTime`}, `participant` {`sid`,
`identity`, `name`, `joinedAt`, `joinedAtMs`}, `id` (unique per event, the same on a retry)
and `createdAt` (seconds). `participant_connection_aborted` is a drop; `participant_left` a
leave. The room name (or sid) is the session's `external` ref; a participant's identity is
matched to the roster's `external_ids.livekit`, then to a roster user id.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.ingest.webhooks import common, mapping, signatures
from app.kit import metrics
from app.kit.clock import now as clock_now
from app.kit.problems import Problem
from app.kit.resources import Resources

PROVIDER = "livekit"
KINDS = {
    "participant_joined": "join",
    "participant_left": "leave",
    "participant_connection_aborted": "drop",
}
HANDLED = frozenset({"room_started", "room_finished", *KINDS})


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _seconds(value: object) -> float | None:
    """A protobuf-JSON int64 (number or decimal string) of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = float(value.strip())
        return number if number > 0 else None
    return None


async def handle(request: Request, res: Resources) -> dict[str, Any]:
    body = await common.read_body(request, PROVIDER)
    key, secret = res.settings.livekit_api_key, res.settings.livekit_api_secret
    if not key or not secret:
        raise Problem(
            503,
            "webhook_not_configured",
            "HADIR_LIVEKIT_API_KEY and HADIR_LIVEKIT_API_SECRET are not set",
        )
    try:
        signatures.verify_livekit(
            key, secret, body, request.headers.get("authorization"), now=clock_now()
        )
    except signatures.SignatureError as exc:
        metrics.webhooks_total.labels(PROVIDER, "bad_signature").inc()
        raise Problem(401, "bad_signature", exc.reason) from None
    doc = common.parse_object(body, PROVIDER)
    event = doc.get("event")
    if event not in HANDLED:
        return common.ack(
            PROVIDER, "ignored_event", event=event if isinstance(event, str) else None
        )
    room_value, part_value = doc.get("room"), doc.get("participant")
    room: dict[str, Any] = room_value if isinstance(room_value, dict) else {}
    part: dict[str, Any] = part_value if isinstance(part_value, dict) else {}
    created = _seconds(doc.get("createdAt"))
    if event == "room_started":
        at = _seconds(room.get("creationTime")) or created
    elif event == "participant_joined":
        joined_ms = _seconds(part.get("joinedAtMs"))
        at = joined_ms / 1000.0 if joined_ms else _seconds(part.get("joinedAt")) or created
    else:
        at = created
    refs = [r for r in (_text(room.get("name")), _text(room.get("sid"))) if r]
    lifecycle = {"room_started": "started", "room_finished": "ended"}.get(str(event))
    at = common.event_time(PROVIDER, at)
    target, answer = await common.route(res, PROVIDER, refs, at, lifecycle)
    if answer is not None or target is None:
        return answer or common.ack(PROVIDER, "unknown_meeting")

    kind = KINDS[str(event)]
    identity = _text(part.get("identity"))
    participant_sid = _text(part.get("sid"))
    name = _text(part.get("name"))
    people = await mapping.load_roster(res, target.session_id)
    person = mapping.match_person(people, PROVIDER, [identity], None, identity)
    if person is not None:
        user_id, role = person.user_id, person.role
    else:
        user_id, role = mapping.guest_id(PROVIDER, identity or participant_sid, name), "guest"
    conn_key = participant_sid or identity or user_id
    event_id = _text(doc.get("id")) or f"{event}|{conn_key}|{at!r}"
    entry = common.platform_entry(
        PROVIDER,
        event_id="livekit:" + mapping.stable_token(event_id),
        etype=kind,
        user_id=user_id,
        ts=at,
        conn="livekit:" + mapping.stable_token(conn_key),
        role=role if kind == "join" else None,
        name=name if person is None and kind == "join" else None,
    )
    learners = {p.user_id for p in people if p.role == "learner"}
    added = await common.journal(res, target, [entry], learners)
    if kind == "join":
        await common.started(res, target, at)
    return common.ack(
        PROVIDER,
        "accepted" if added else "duplicate",
        session_id=target.session_id,
        user_id=user_id,
        type=kind,
    )
