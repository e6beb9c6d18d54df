"""`POST /v1/webhooks/zoom` with payloads shaped like Zoom's documented examples."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tests.support import Server, journal, schedule
from tests.webhooks.helpers import (
    fixture,
    post_zoom,
    webhook_count,
    zoom_event,
    zoom_headers,
)


def meeting_id() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


ROSTER: list[dict[str, Any]] = [
    {"user_id": "u1", "role": "learner", "external_ids": {"zoom": "iFxeBPYun6SAiWUzBcEkX"}},
    {"user_id": "u2", "role": "learner", "email": "Second.Learner@Example.com"},
    {"user_id": "u3", "role": "learner", "external_ids": {"zoom": "uuid-of-u3"}},
    {"user_id": "teacher", "role": "instructor", "email": "teacher@example.com"},
]


async def zoom_session(api: httpx.AsyncClient, sid: str, **kwargs: Any) -> tuple[str, float]:
    meeting = kwargs.pop("meeting", None) or meeting_id()
    start = kwargs.pop("start", None) or datetime.now(UTC) - timedelta(minutes=1)
    await schedule(
        api,
        sid,
        start=start,
        external=[{"provider": "zoom", "ref": meeting}],
        roster=ROSTER,
        **kwargs,
    )
    return meeting, start.timestamp()


class TestSignature:
    async def test_missing_signature_is_401_and_journals_nothing(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        body = orjson.dumps(zoom_event("meeting.participant_joined", meeting, at=start + 60))
        r = await anon.post(
            "/v1/webhooks/zoom", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "bad_signature"
        assert await journal(server, sid) == []

    async def test_bad_signature_stale_and_future_timestamps_are_401(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        body = orjson.dumps(zoom_event("meeting.participant_joined", meeting, at=start + 60))
        for headers in (
            zoom_headers(body, secret="not-the-secret"),
            zoom_headers(body, ts=int(time.time()) - 301),
            zoom_headers(body, ts=int(time.time()) + 301),
        ):
            r = await anon.post("/v1/webhooks/zoom", content=body, headers=headers)
            assert r.status_code == 401, r.text
        tampered = body.replace(b"Jill", b"Jilm")
        r = await anon.post("/v1/webhooks/zoom", content=tampered, headers=zoom_headers(body))
        assert r.status_code == 401
        assert await journal(server, sid) == []

    async def test_url_validation(self, anon: httpx.AsyncClient) -> None:
        r = await post_zoom(anon, fixture("zoom_endpoint_url_validation"))
        assert r.status_code == 200
        # hex HMAC-SHA256("test-zoom-webhook-secret", "qgg8vlvZRS6UYooatFL8Aw"), computed once
        assert r.json() == {
            "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
            "encryptedToken": "ae1d7c2ff47f3b33717be2d0418fdb70841ef280d9b4c76aab2c2a2e73444a20",
        }


class TestEvents:
    async def test_started_joined_left_ended(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        r = await post_zoom(anon, zoom_event("meeting.started", meeting, at=start + 5))
        assert r.status_code == 200
        assert r.json()["status"] == "accepted"
        got = (await api.get(f"/v1/sessions/{sid}")).json()
        assert got["status"] == "live"
        r = await post_zoom(anon, zoom_event("meeting.participant_joined", meeting, at=start + 60))
        assert r.json() == {
            "status": "accepted",
            "session_id": sid,
            "user_id": "u1",
            "type": "join",
        }
        r = await post_zoom(anon, zoom_event("meeting.participant_left", meeting, at=start + 600))
        assert r.json()["type"] == "leave"
        events = await journal(server, sid)
        assert [(e["type"], e["user_id"], e["src"]) for e in events] == [
            ("join", "u1", "zoom"),
            ("leave", "u1", "zoom"),
        ]
        assert events[0]["ts"] == start + 60 - (start % 1)  # Zoom times are whole seconds
        assert events[0]["conn"] == events[1]["conn"] == "zoom:55555AAAiAAAAAiAiAiiAii"
        assert events[1]["detail"].endswith("Reason : left the meeting")
        r = await post_zoom(anon, zoom_event("meeting.ended", meeting, at=start + 700))
        assert r.json()["status"] == "accepted"
        got = (await api.get(f"/v1/sessions/{sid}")).json()
        assert got["status"] == "ended"
        assert got["ended_at"] == datetime.fromtimestamp(int(start + 700), UTC).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")

    async def test_connection_loss_is_a_drop_and_breakout_moves_are_ignored(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        await post_zoom(anon, zoom_event("meeting.participant_joined", meeting, at=start + 60))
        breakout = zoom_event(
            "meeting.participant_left",
            meeting,
            at=start + 120,
            participant={
                "leave_reason": "left the meeting. Reason : left the meeting to join breakout room"
            },
        )
        assert (await post_zoom(anon, breakout)).json()["status"] == "ignored"
        lost = zoom_event(
            "meeting.participant_left",
            meeting,
            at=start + 300,
            participant={
                "leave_reason": (
                    "Jill Chill got disconnected from the meeting.<br>"
                    "Reason : Network connection error."
                )
            },
        )
        assert (await post_zoom(anon, lost)).json()["type"] == "drop"
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "drop"]
        assert events[1]["reason"] == "abnormal"

    async def test_numeric_meeting_id_and_mapping_by_email_and_uuid(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        by_email = zoom_event(
            "meeting.participant_joined",
            meeting,
            at=start + 60,
            participant={
                "id": "",
                "participant_uuid": "p-2",
                "email": "second.learner@EXAMPLE.com",
            },
        )
        by_email["payload"]["object"]["id"] = int(meeting)
        assert (await post_zoom(anon, by_email)).json()["user_id"] == "u2"
        by_uuid = zoom_event(
            "meeting.participant_joined",
            meeting,
            at=start + 61,
            participant={"id": "", "participant_uuid": "uuid-of-u3", "email": ""},
        )
        assert (await post_zoom(anon, by_uuid)).json()["user_id"] == "u3"

    async def test_unknown_person_is_a_guest_with_a_stable_id(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        visitor = {
            "id": "zoomVisitor1",
            "participant_uuid": "v-1",
            "email": "",
            "user_name": "Visitor",
        }
        doc = zoom_event("meeting.participant_joined", meeting, at=start + 60, participant=visitor)
        r = await post_zoom(anon, doc)
        assert r.json()["user_id"] == "guest:zoom:zoomVisitor1"
        # Not signed in to Zoom: no user id; the participant uuid names the guest.
        signed_out = {"id": "", "participant_uuid": "v-2", "email": "", "user_name": "Caller"}
        doc = zoom_event(
            "meeting.participant_joined", meeting, at=start + 70, participant=signed_out
        )
        assert (await post_zoom(anon, doc)).json()["user_id"] == "guest:zoom:v-2"
        # Nothing but a display name: a hash of the name, the same on every delivery.
        bare = {
            "id": "",
            "participant_uuid": "",
            "user_id": "",
            "email": "",
            "user_name": "Phone caller",
        }
        doc = zoom_event("meeting.participant_joined", meeting, at=start + 80, participant=bare)
        first = (await post_zoom(anon, doc)).json()["user_id"]
        doc = zoom_event("meeting.participant_joined", meeting, at=start + 90, participant=bare)
        assert (await post_zoom(anon, doc)).json()["user_id"] == first
        assert first.startswith("guest:zoom:name-")
        events = await journal(server, sid)
        assert events[0]["role"] == "guest"
        assert events[0]["name"] == "Visitor"

    async def test_duplicates_and_retries_count_once(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        doc = zoom_event("meeting.participant_joined", meeting, at=start + 60)
        assert (await post_zoom(anon, doc)).json()["status"] == "accepted"
        # A retry: the same event, delivered again with a new timestamp and event_ts.
        doc["event_ts"] += 3_600_000
        assert (await post_zoom(anon, doc)).json()["status"] == "duplicate"
        assert len(await journal(server, sid)) == 1

    async def test_left_before_joined_gives_the_ordered_intervals(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        await post_zoom(anon, zoom_event("meeting.participant_left", meeting, at=start + 600))
        await post_zoom(anon, zoom_event("meeting.participant_joined", meeting, at=start + 60))
        events = await journal(server, sid)
        assert sorted((e["ts"], e["type"]) for e in events) == [
            (float(int(start + 60)), "join"),
            (float(int(start + 600)), "leave"),
        ]
        # The live state does not show the participant as connected.
        res = server.resources
        assert await res.redis.hget(res.keys.session(sid).online, "u1") is None

    async def test_recurring_meeting_picks_the_occurrence(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting = meeting_id()
        now = datetime.now(UTC)
        await zoom_session(api, sid + "-a", meeting=meeting, start=now - timedelta(days=7))
        await zoom_session(api, sid + "-b", meeting=meeting, start=now - timedelta(minutes=1))
        await zoom_session(api, sid + "-c", meeting=meeting, start=now + timedelta(days=7))
        doc = zoom_event("meeting.participant_joined", meeting, at=now.timestamp())
        assert (await post_zoom(anon, doc)).json()["session_id"] == sid + "-b"
        # Outside every window: the nearest occurrence.
        doc = zoom_event(
            "meeting.participant_joined", meeting, at=(now - timedelta(days=6)).timestamp()
        )
        assert (await post_zoom(anon, doc)).json()["session_id"] == sid + "-a"

    async def test_late_event_after_finalisation_requeues_finalisation(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        from sqlalchemy import update

        from app.kit.db import sessions

        meeting, start = await zoom_session(api, sid)
        res = server.resources
        async with res.engine.begin() as db:
            await db.execute(
                update(sessions).where(sessions.c.id == sid).values(status="finalised")
            )
        await res.redis.zrem(res.keys.finalise_queue, sid)
        r = await post_zoom(anon, zoom_event("meeting.participant_joined", meeting, at=start + 60))
        assert r.json()["status"] == "accepted"
        assert await res.redis.zscore(res.keys.finalise_queue, sid) == 0.0


class TestBadInput:
    async def test_unknown_meeting_is_acknowledged_and_ignored(
        self, anon: httpx.AsyncClient
    ) -> None:
        before = webhook_count("zoom", "unknown_meeting")
        doc = zoom_event("meeting.participant_joined", "9999999999", at=time.time())
        r = await post_zoom(anon, doc)
        assert r.status_code == 200
        assert r.json() == {"status": "unknown_meeting"}
        assert webhook_count("zoom", "unknown_meeting") == before + 1

    async def test_unknown_event_type_is_acknowledged_and_counted(
        self, anon: httpx.AsyncClient
    ) -> None:
        before = webhook_count("zoom", "ignored_event")
        doc = zoom_event("meeting.participant_joined", "1", at=time.time())
        doc["event"] = "meeting.sharing_started"
        r = await post_zoom(anon, doc)
        assert r.status_code == 200
        assert r.json() == {"status": "ignored_event", "event": "meeting.sharing_started"}
        assert webhook_count("zoom", "ignored_event") == before + 1
        metrics = (await anon.get("/metrics")).text
        assert 'hadir_webhooks_total{outcome="ignored_event",provider="zoom"}' in metrics

    async def test_non_json_body_is_400(self, anon: httpx.AsyncClient) -> None:
        body = b"event=meeting.started"
        r = await anon.post("/v1/webhooks/zoom", content=body, headers=zoom_headers(body))
        assert r.status_code == 400
        assert r.json()["code"] == "invalid_json"
        body = b"[1, 2]"
        r = await anon.post("/v1/webhooks/zoom", content=body, headers=zoom_headers(body))
        assert r.status_code == 400

    async def test_wrong_content_type_is_415(self, anon: httpx.AsyncClient) -> None:
        body = orjson.dumps(fixture("zoom_endpoint_url_validation"))
        headers = zoom_headers(body) | {"content-type": "text/plain"}
        r = await anon.post("/v1/webhooks/zoom", content=body, headers=headers)
        assert r.status_code == 415
        assert r.headers["content-type"] == "application/problem+json"

    async def test_huge_body_is_413(self, anon: httpx.AsyncClient) -> None:
        body = b'{"event": "x", "pad": "' + b"a" * (1024 * 1024) + b'"}'
        r = await anon.post("/v1/webhooks/zoom", content=body, headers=zoom_headers(body))
        assert r.status_code == 413
        assert r.json()["code"] == "payload_too_large"
