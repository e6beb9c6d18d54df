"""`POST /v1/webhooks/livekit` with payloads shaped like LiveKit's protobuf-JSON events."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from app.ingest.webhooks import signatures
from tests.support import LIVEKIT_KEY, Server, journal, schedule
from tests.webhooks.helpers import livekit_event, livekit_headers, post_livekit, webhook_count

ROSTER: list[dict[str, Any]] = [
    {"user_id": "u1", "role": "learner", "external_ids": {"livekit": "alice"}},
    {"user_id": "u2", "role": "learner"},
    {"user_id": "teacher", "role": "instructor"},
]


async def room_session(api: httpx.AsyncClient, sid: str) -> tuple[str, float]:
    room = f"room-{secrets.token_hex(4)}"
    start = datetime.now(UTC) - timedelta(minutes=1)
    await schedule(
        api, sid, start=start, external=[{"provider": "livekit", "ref": room}], roster=ROSTER
    )
    return room, start.timestamp()


class TestLiveKit:
    async def test_every_event_type(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        room, start = await room_session(api, sid)
        r = await post_livekit(anon, livekit_event("room_started", room, at=start + 1))
        assert r.json() == {"status": "accepted", "session_id": sid}
        assert (await api.get(f"/v1/sessions/{sid}")).json()["status"] == "live"
        r = await post_livekit(anon, livekit_event("participant_joined", room, at=start + 10))
        assert r.json() == {
            "status": "accepted",
            "session_id": sid,
            "user_id": "u1",
            "type": "join",
        }
        r = await post_livekit(
            anon, livekit_event("participant_connection_aborted", room, at=start + 100)
        )
        assert r.json()["type"] == "drop"
        rejoin = livekit_event(
            "participant_joined", room, at=start + 130, participant={"sid": "PA_second"}
        )
        assert (await post_livekit(anon, rejoin, bearer=True)).json()["type"] == "join"
        left = livekit_event(
            "participant_left", room, at=start + 900, participant={"sid": "PA_second"}
        )
        assert (await post_livekit(anon, left)).json()["type"] == "leave"
        events = await journal(server, sid)
        assert [(e["type"], e["conn"], e["ts"], e["src"]) for e in events] == [
            ("join", "livekit:PA_N98CRpuQ7Ew6", float(int(start + 10)), "livekit"),
            ("drop", "livekit:PA_N98CRpuQ7Ew6", float(int(start + 100)), "livekit"),
            ("join", "livekit:PA_second", float(int(start + 130)), "livekit"),
            ("leave", "livekit:PA_second", float(int(start + 900)), "livekit"),
        ]
        r = await post_livekit(anon, livekit_event("room_finished", room, at=start + 1000))
        assert r.json()["status"] == "accepted"
        assert (await api.get(f"/v1/sessions/{sid}")).json()["status"] == "ended"

    async def test_identity_equal_to_a_user_id_and_guests(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        room, start = await room_session(api, sid)
        doc = livekit_event(
            "participant_joined", room, at=start + 10, participant={"identity": "u2", "sid": "PA_2"}
        )
        assert (await post_livekit(anon, doc)).json()["user_id"] == "u2"
        doc = livekit_event(
            "participant_joined",
            room,
            at=start + 20,
            participant={"identity": "bob", "sid": "PA_3"},
        )
        assert (await post_livekit(anon, doc)).json()["user_id"] == "guest:livekit:bob"

    async def test_same_event_id_counts_once(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        room, start = await room_session(api, sid)
        doc = livekit_event("participant_joined", room, at=start + 10)
        assert (await post_livekit(anon, doc)).json()["status"] == "accepted"
        assert (await post_livekit(anon, doc)).json()["status"] == "duplicate"
        assert len(await journal(server, sid)) == 1

    async def test_bad_token_is_401_and_journals_nothing(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        room, start = await room_session(api, sid)
        body = orjson.dumps(livekit_event("participant_joined", room, at=start + 10))
        for headers in (
            {"content-type": "application/webhook+json"},
            {"content-type": "application/json", "authorization": "Bearer nonsense"},
            {
                "content-type": "application/json",
                "authorization": signatures.livekit_token(
                    LIVEKIT_KEY, "another-secret-of-32-bytes-length", body, now=time.time()
                ),
            },
        ):
            r = await anon.post("/v1/webhooks/livekit", content=body, headers=headers)
            assert r.status_code == 401
        other_body = body.replace(b"Alice", b"Alicf")
        r = await anon.post(
            "/v1/webhooks/livekit", content=other_body, headers=livekit_headers(body)
        )
        assert r.status_code == 401
        assert await journal(server, sid) == []

    async def test_unknown_room_and_unknown_event(self, anon: httpx.AsyncClient) -> None:
        r = await post_livekit(anon, livekit_event("participant_joined", "nowhere", at=time.time()))
        assert r.json() == {"status": "unknown_meeting"}
        before = webhook_count("livekit", "ignored_event")
        doc = livekit_event("participant_joined", "nowhere", at=time.time())
        doc["event"] = "track_published"
        r = await post_livekit(anon, doc)
        assert r.status_code == 200
        assert r.json()["status"] == "ignored_event"
        assert webhook_count("livekit", "ignored_event") == before + 1
