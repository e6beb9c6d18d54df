"""Zoom meeting webhooks: `POST /v1/webhooks/zoom` (CONTRACT.md "Meeting-platform webhooks").

Handled events (payload fields as Zoom documents them): `endpoint.url_validation`,
`meeting.started`, `meeting.ended`, `meeting.participant_joined`, `meeting.participant_left`,
`meeting.participant_joined_breakout_room`, `meeting.participant_left_breakout_room`.
Times are Zoom's own: the participant's `join_time` / `leave_time`, the meeting's `start_time` /
`end_time`, else the notification's `event_ts` (milliseconds). Zoom sends no event id, so a
delivery's identity is a hash of (event, meeting uuid, participant, event time): a retry hours
later is the same event and counts once.

Breakout rooms are part of the class: being in one is attending. Their events carry the main
meeting's `id` and `uuid` (the room's own is `breakout_room_uuid`, never used to find the
session) and the participant's `participant_uuid`, which is the same in the main meeting and in
all of its breakout rooms, so every room of a meeting is one connection of the participant. The
participant's `user_id` there is the room's own; `parent_user_id` is their `user_id` in the main
meeting. Entering a breakout room is a join (nothing changes while the connection is open);
leaving one ends the connection only when its `leave_reason` says the participant left the
meeting (or the meeting ended, or they were disconnected), not when they went to the main room
or to another breakout room: someone who leaves the meeting from a breakout room may be reported
by that event alone.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request

from app.ingest.webhooks import common, mapping, signatures
from app.kit import clock, metrics
from app.kit.problems import Problem
from app.kit.resources import Resources

PROVIDER = "zoom"

# How a `meeting.participant_left` or a `meeting.participant_left_breakout_room` ends the
# participant's presence, by its `leave_reason`.
# Zoom documents these reasons ($name is the display name): "$name left the meeting.",
# "$name got disconnected from the meeting.", "Host ended the meeting.", "Host closed the
# meeting.", "Host started a new meeting.", "Network connection error.", "Host did not join.",
# "Exceeded free meeting minutes limit.", "Removed by host.", "Unknown reason.", "Leave waiting
# room.", "Removed by host from waiting room."; delivered payloads read like
# "<name> left the meeting. Reason : left the meeting to join breakout room" or
# "got disconnected from the meeting. Reason : Client Close.", so the table matches lower-cased
# substrings, first match wins. A move between rooms reads "left the meeting to join breakout
# room", "leave breakout room to join main meeting" or "Leave breakout room."; leaving the
# meeting from a breakout room reads like a `meeting.participant_left` ("<name> left the
# meeting.<br>Reason: Host ended the meeting." in Zoom's example of the breakout event).
# A drop is an abnormal disconnect (POLICY §1: a reconnect within the grace is credited); a
# leave is voluntary or ends the meeting for everyone; a move between rooms is not a departure
# from the class and is ignored. Anything unlisted is a leave: only a disconnect the platform
# reports is credited (seed 000 §7: "where the disconnection is verified").
LEAVE_REASONS: tuple[tuple[str, str], ...] = (
    ("breakout room", "stay"),
    ("got disconnected", "drop"),
    ("network connection error", "drop"),
    ("lost connection", "drop"),
    ("connection lost", "drop"),
    ("left the meeting", "leave"),
    ("host ended the meeting", "leave"),
    ("host closed the meeting", "leave"),
    ("host started a new meeting", "leave"),
    ("host did not join", "leave"),
    ("exceeded free meeting minutes limit", "leave"),
    ("removed by host", "leave"),
    ("leave waiting room", "leave"),
    ("unknown reason", "leave"),
)


def classify_leave(reason: str | None) -> str:
    """`leave`, `drop` or `stay` for a `leave_reason` (see LEAVE_REASONS)."""
    text = (reason or "").lower()
    for needle, kind in LEAVE_REASONS:
        if needle in text:
            return kind
    return "leave"


def _text(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _time(value: object) -> float | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return clock.parse_iso(text)
    except ValueError:
        return None


def _event_ts(doc: dict[str, Any]) -> float | None:
    value = doc.get("event_ts")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    return None


async def handle(request: Request, res: Resources) -> dict[str, Any]:
    body = await common.read_body(request, PROVIDER)
    secret = res.settings.zoom_secret
    if not secret:
        raise Problem(503, "webhook_not_configured", "HADIR_ZOOM_SECRET is not set")
    try:
        signatures.verify_zoom(
            secret,
            body,
            request.headers.get("x-zm-signature"),
            request.headers.get("x-zm-request-timestamp"),
            now=clock.now(),
        )
    except signatures.SignatureError as exc:
        metrics.webhooks_total.labels(PROVIDER, "bad_signature").inc()
        raise Problem(401, "bad_signature", exc.reason) from None
    doc = common.parse_object(body, PROVIDER)
    event = doc.get("event")
    payload = doc.get("payload")
    if event == "endpoint.url_validation":
        plain = _text(payload.get("plainToken")) if isinstance(payload, dict) else None
        if plain is None:
            raise Problem(400, "invalid_payload", "payload.plainToken is required")
        metrics.webhooks_total.labels(PROVIDER, "url_validation").inc()
        return signatures.zoom_url_validation(secret, plain)
    if event not in HANDLED:
        return common.ack(
            PROVIDER, "ignored_event", event=event if isinstance(event, str) else None
        )
    obj = payload.get("object") if isinstance(payload, dict) else None
    if not isinstance(obj, dict):
        metrics.webhooks_total.labels(PROVIDER, "invalid").inc()
        raise Problem(400, "invalid_payload", "payload.object is required")
    return await _meeting_event(res, str(event), doc, obj)


JOINED = frozenset({"meeting.participant_joined", "meeting.participant_joined_breakout_room"})
LEFT = frozenset({"meeting.participant_left", "meeting.participant_left_breakout_room"})
HANDLED = frozenset({"meeting.started", "meeting.ended", *JOINED, *LEFT})


async def _meeting_event(
    res: Resources, event: str, doc: dict[str, Any], obj: dict[str, Any]
) -> dict[str, Any]:
    participant = obj.get("participant")
    part: dict[str, Any] = participant if isinstance(participant, dict) else {}
    if event == "meeting.started":
        at = _time(obj.get("start_time")) or _event_ts(doc)
    elif event == "meeting.ended":
        at = _time(obj.get("end_time")) or _event_ts(doc)
    elif event in JOINED:
        at = _time(part.get("join_time")) or _event_ts(doc)
    else:
        at = _time(part.get("leave_time")) or _event_ts(doc)
    refs = [r for r in (_text(obj.get("id")), _text(obj.get("uuid"))) if r]
    lifecycle = {"meeting.started": "started", "meeting.ended": "ended"}.get(str(event))
    at = common.event_time(PROVIDER, at)
    target, answer = await common.route(res, PROVIDER, refs, at, lifecycle)
    if answer is not None or target is None:
        return answer or common.ack(PROVIDER, "unknown_meeting")

    kind = "join"
    reason = _text(part.get("leave_reason"))
    if event in LEFT:
        kind = classify_leave(reason)
        if kind == "stay":
            return common.ack(PROVIDER, "ignored", session_id=target.session_id)
    uuid = _text(part.get("participant_uuid"))
    zoom_user = _text(part.get("id"))
    room_user = _text(part.get("user_id"))
    # In a breakout room `user_id` is the room's own; the main meeting's is `parent_user_id`.
    meeting_user = _text(part.get("parent_user_id")) or room_user
    name = _text(part.get("user_name"))
    email = _text(part.get("email"))
    people = await mapping.load_roster(res, target.session_id)
    person = mapping.match_person(
        people,
        PROVIDER,
        [uuid, zoom_user, meeting_user, room_user, _text(part.get("participant_user_id"))],
        email,
    )
    if person is not None:
        user_id, role = person.user_id, person.role
    else:
        user_id, role = mapping.guest_id(PROVIDER, zoom_user or uuid, name or meeting_user), "guest"
    key = uuid or meeting_user or zoom_user or f"name:{name or ''}"
    time_text = _text(part.get("join_time" if kind == "join" else "leave_time")) or repr(at)
    identity = f"{event}|{_text(obj.get('uuid')) or ''}|{key}|{time_text}"
    entry = common.platform_entry(
        PROVIDER,
        event_id="zoom:" + hashlib.sha256(identity.encode()).hexdigest()[:40],
        etype=kind,
        user_id=user_id,
        ts=at,
        conn="zoom:" + mapping.stable_token(key),
        role=role if kind == "join" else None,
        name=name if person is None and kind == "join" else None,
        detail=reason[:200] if reason else None,
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
