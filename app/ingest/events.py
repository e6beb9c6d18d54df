"""The one event model: websocket frames, platform webhooks and trusted imports all end here.

A validated event becomes a journal entry: a compact JSON object with the trusted time `ts`
(POSIX seconds: the server's receive time for browser clients, the platform's own time for
signed webhooks and imports), the participant, the connection and the event's own fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from app.kit.clock import parse_iso
from app.rules.evidence import TYPE_ORDER
from app.rules.evidence import Event as RulesEvent

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

CLIENT_TYPES = frozenset({"heartbeat", "camera", "engagement", "leave"})
IMPORT_TYPES = CLIENT_TYPES | {"join", "drop"}
ENGAGEMENT_KINDS = frozenset(
    {"question", "chat", "poll_vote", "response", "reaction", "hand_raise"}
)
MAX_BATCH = 500


class EventError(Exception):
    """One event that cannot be taken; the rest of its frame still can."""

    def __init__(self, code: str, detail: str, event_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.event_id = event_id

    def message(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "code": self.code, "detail": self.detail}
        if self.event_id is not None:
            body["id"] = self.event_id
        return body


@dataclass(slots=True)
class Entry:
    """A validated event, ready for the journal."""

    event_id: str
    type: str
    user_id: str
    ts: float
    conn: str
    source: str
    fields: dict[str, Any]

    @property
    def dedupe_key(self) -> str:
        return f"{self.user_id}|{self.event_id}"

    def payload(self) -> bytes:
        body: dict[str, Any] = {
            "id": self.event_id,
            "type": self.type,
            "user_id": self.user_id,
            "ts": self.ts,
            "conn": self.conn,
            "src": self.source,
        }
        body.update(self.fields)
        return orjson.dumps(body)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.match(value) is not None


def _bool(obj: dict[str, Any], name: str, event_id: str, *, required: bool) -> bool | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise EventError("invalid_field", f"'{name}' is required (true or false)", event_id)
        return None
    if not isinstance(value, bool):
        raise EventError("invalid_field", f"'{name}' must be true or false", event_id)
    return value


def parse_event(
    obj: object, *, trusted: bool, user_id: str | None = None
) -> tuple[str, str, dict[str, Any], float | None, str | None]:
    """Validate one event object.

    Returns (id, type, fields, trusted ts or None, user id or None). Client events must not
    name another user; trusted (import/webhook) events must carry `user_id` and `ts`.
    """
    if not isinstance(obj, dict):
        raise EventError("not_an_object", "each event must be a JSON object")
    event_id = obj.get("id")
    if event_id is None:
        raise EventError("missing_id", "every event needs an 'id' (unique per event, e.g. a UUID)")
    if not valid_id(event_id):
        raise EventError("invalid_id", "'id' must be 1-128 characters of A-Z a-z 0-9 . _ : -", None)
    assert isinstance(event_id, str)
    etype = obj.get("type")
    allowed = IMPORT_TYPES if trusted else CLIENT_TYPES
    if not isinstance(etype, str) or etype not in allowed:
        raise EventError(
            "unknown_type",
            f"'type' must be one of {', '.join(sorted(allowed))}",
            event_id,
        )
    fields: dict[str, Any] = {}
    if etype == "heartbeat":
        fields["camera"] = _bool(obj, "camera", event_id, required=True)
        fields["mic"] = _bool(obj, "mic", event_id, required=False)
        visible = _bool(obj, "visible", event_id, required=False)
        fields["visible"] = True if visible is None else visible
    elif etype == "camera":
        fields["on"] = _bool(obj, "on", event_id, required=True)
    elif etype == "engagement":
        kind = obj.get("kind")
        if kind not in ENGAGEMENT_KINDS:
            raise EventError(
                "invalid_field",
                f"'kind' must be one of {', '.join(sorted(ENGAGEMENT_KINDS))}",
                event_id,
            )
        fields["kind"] = kind
    elif etype == "drop":
        reason = obj.get("reason", "abnormal")
        if reason not in ("abnormal", "heartbeat_timeout"):
            raise EventError(
                "invalid_field", "'reason' must be 'abnormal' or 'heartbeat_timeout'", event_id
            )
        fields["reason"] = reason
    client_ts = obj.get("ts")
    ts: float | None = None
    uid: str | None = None
    if trusted:
        uid = obj.get("user_id", user_id)
        if not valid_id(uid):
            raise EventError("invalid_field", "'user_id' is required (an id string)", event_id)
        if not isinstance(client_ts, str):
            raise EventError("invalid_field", "'ts' is required (RFC 3339 time)", event_id)
        try:
            ts = parse_iso(client_ts)
        except ValueError as exc:
            raise EventError(
                "invalid_field", f"'ts' is not an RFC 3339 time: {exc}", event_id
            ) from exc
        conn = obj.get("conn")
        if conn is not None:
            if not valid_id(conn):
                raise EventError("invalid_field", "'conn' must be an id string", event_id)
            fields["_conn"] = conn
    else:
        if "user_id" in obj and obj["user_id"] != user_id:
            raise EventError(
                "invalid_field", "'user_id' must not name another participant", event_id
            )
        if client_ts is not None:
            if not isinstance(client_ts, str | int | float) or isinstance(client_ts, bool):
                raise EventError(
                    "invalid_field", "'ts' must be an RFC 3339 string or a number", event_id
                )
            fields["client_ts"] = client_ts
    return event_id, etype, fields, ts, uid


def import_entries(
    events: object, *, source: str, default_user: str | None = None
) -> tuple[list[Entry], list[EventError]]:
    """Validate a trusted batch (import endpoint, generic webhook). Bad events are reported,
    good ones kept."""
    if not isinstance(events, list):
        raise EventError("invalid_field", "'events' must be a list")
    if len(events) > 10_000:
        raise EventError("batch_too_large", "at most 10000 events per request")
    good: list[Entry] = []
    bad: list[EventError] = []
    for index, obj in enumerate(events):
        try:
            event_id, etype, fields, ts, uid = parse_event(obj, trusted=True, user_id=default_user)
        except EventError as exc:
            exc.detail = f"events[{index}]: {exc.detail}"
            bad.append(exc)
            continue
        assert ts is not None
        assert uid is not None
        conn = str(fields.pop("_conn", "") or f"{source}:{uid}")
        good.append(
            Entry(
                event_id=event_id,
                type=etype,
                user_id=uid,
                ts=ts,
                conn=conn,
                source=source,
                fields=fields,
            )
        )
    return good, bad


def rules_event(entry: dict[str, Any], ts: float | None = None) -> RulesEvent | None:
    """A journal entry, or an archived row's payload (the same entry), as the rules engine's
    event; None for system entries. `ts` replaces the entry's own time: an archived row's
    stored time, which PostgreSQL keeps to the microsecond."""
    etype = entry.get("type")
    if etype not in TYPE_ORDER:
        return None
    camera = entry.get("camera")
    if etype == "camera":
        camera = entry.get("on")
    return RulesEvent(
        id=str(entry["id"]),
        user_id=str(entry["user_id"]),
        type=etype,
        ts=float(entry["ts"]) if ts is None else ts,
        conn=str(entry.get("conn") or ""),
        camera=camera,
        visible=entry.get("visible"),
        kind=entry.get("kind"),
        reason=entry.get("reason"),
    )
