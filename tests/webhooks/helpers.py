"""Signed webhook requests shaped like the platforms' documented examples."""

from __future__ import annotations

import copy
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.ingest.webhooks import signatures
from app.kit import clock
from app.kit.metrics import registry
from tests.support import LIVEKIT_KEY, LIVEKIT_SECRET, WEBHOOK_SECRET, ZOOM_SECRET

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    return copy.deepcopy(data)


def iso(ts: float) -> str:
    return clock.to_dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def zoom_event(
    event: str,
    meeting: str,
    *,
    at: float,
    uuid: str = "4444AAAiAAAAAiAiAiiAii==",
    participant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A documented Zoom example with our meeting id, time and participant."""
    doc = fixture("zoom_" + event.replace(".", "_"))
    obj = doc["payload"]["object"]
    obj["id"] = meeting
    obj["uuid"] = uuid
    doc["event_ts"] = int(at * 1000)
    if event == "meeting.started":
        obj["start_time"] = iso(at)
    if event == "meeting.ended":
        obj["end_time"] = iso(at)
    if "participant" in obj:
        part = obj["participant"]
        if participant is not None:
            part.update(participant)
        key = "join_time" if "_joined" in event else "leave_time"
        part[key] = iso(at)
    return doc


def zoom_headers(
    body: bytes, *, secret: str = ZOOM_SECRET, ts: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "content-type": "application/json",
        "x-zm-request-timestamp": stamp,
        "x-zm-signature": signatures.zoom_signature(secret, stamp, body),
    }


async def post_zoom(client: httpx.AsyncClient, doc: Any, **kwargs: Any) -> httpx.Response:
    body = orjson.dumps(doc)
    return await client.post(
        "/v1/webhooks/zoom", content=body, headers=zoom_headers(body, **kwargs)
    )


def livekit_event(
    event: str, room: str, *, at: float, participant: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc = fixture("livekit_" + event)
    doc["room"]["name"] = room
    doc["createdAt"] = str(int(at))
    doc["id"] = "EV_" + secrets.token_hex(6)
    if event == "room_started":
        doc["room"]["creationTime"] = str(int(at))
    if "participant" in doc:
        if participant is not None:
            doc["participant"].update(participant)
        if event == "participant_joined":
            doc["participant"]["joinedAt"] = str(int(at))
    return doc


def livekit_headers(body: bytes, *, bearer: bool = False) -> dict[str, str]:
    token = signatures.livekit_token(LIVEKIT_KEY, LIVEKIT_SECRET, body, now=time.time())
    return {
        "content-type": "application/webhook+json",
        "authorization": f"Bearer {token}" if bearer else token,
    }


async def post_livekit(client: httpx.AsyncClient, doc: Any, **kwargs: Any) -> httpx.Response:
    body = orjson.dumps(doc)
    return await client.post(
        "/v1/webhooks/livekit", content=body, headers=livekit_headers(body, **kwargs)
    )


def generic_headers(
    body: bytes, *, msg_id: str | None = None, secret: str = WEBHOOK_SECRET
) -> dict[str, str]:
    msg = msg_id or f"msg_{secrets.token_hex(8)}"
    stamp = str(int(time.time()))
    key = signatures.standard_secrets(secret)[0]
    return {
        "content-type": "application/json",
        "webhook-id": msg,
        "webhook-timestamp": stamp,
        "webhook-signature": signatures.standard_signature(key, msg, stamp, body),
    }


async def post_generic(client: httpx.AsyncClient, doc: Any, **kwargs: Any) -> httpx.Response:
    body = orjson.dumps(doc)
    return await client.post(
        "/v1/webhooks/generic", content=body, headers=generic_headers(body, **kwargs)
    )


def webhook_count(provider: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "hadir_webhooks_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0
