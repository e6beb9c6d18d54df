"""`POST /v1/webhooks/generic`: Standard Webhooks signing, import event shapes."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from app.ingest.webhooks import signatures
from tests.conftest import make_settings
from tests.support import WEBHOOK_SECRET, Server, journal, schedule
from tests.webhooks.helpers import fixture, generic_headers, iso, post_generic


def body_for(sid: str, start: float) -> dict[str, object]:
    doc = fixture("generic_events")
    doc["session_id"] = sid
    for i, event in enumerate(doc["events"]):
        event["ts"] = iso(start + 60 + i * 300)
    return doc


class TestGeneric:
    async def test_events_are_journaled_through_the_import_model(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        start = (datetime.now(UTC) - timedelta(minutes=1)).timestamp()
        await schedule(api, sid, start=datetime.fromtimestamp(start, UTC))
        r = await post_generic(anon, body_for(sid, start))
        assert r.status_code == 200
        assert r.json() == {
            "status": "accepted",
            "session_id": sid,
            "accepted": 5,
            "new": 5,
            "duplicates": 0,
            "rejected": [],
        }
        events = await journal(server, sid)
        assert [(e["type"], e["src"], e["conn"]) for e in events] == [
            ("join", "generic", "tab-1"),
            ("engagement", "generic", "generic:u1"),
            ("drop", "generic", "tab-1"),
            ("join", "generic", "tab-2"),
            ("leave", "generic", "tab-2"),
        ]
        assert (await api.get(f"/v1/sessions/{sid}")).json()["status"] == "live"
        # Re-delivered (a new webhook-id, the same events): counted once.
        r = await post_generic(anon, body_for(sid, start))
        assert r.json()["duplicates"] == 5

    async def test_signature_failures_are_401(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        start = time.time() - 60
        await schedule(api, sid)
        body = orjson.dumps(body_for(sid, start))
        good = generic_headers(body)
        other = "whsec_" + base64.b64encode(b"some other key, 32 bytes long!!!").decode()
        for headers in (
            {"content-type": "application/json"},
            generic_headers(body, secret=other),
            good | {"webhook-id": "msg_other"},
            good | {"webhook-timestamp": str(int(time.time()) - 301)},
        ):
            r = await anon.post("/v1/webhooks/generic", content=body, headers=headers)
            assert r.status_code == 401, headers
        assert await journal(server, sid) == []

    async def test_rotation_accepts_the_second_secret(
        self, database: str, redis_prefix: str, sid: str
    ) -> None:
        second = "whsec_" + base64.b64encode(b"the next key after the rotation!").decode()
        srv = Server(
            make_settings(database, redis_prefix, HADIR_WEBHOOK_SECRET=f"{WEBHOOK_SECRET} {second}")
        )
        await srv.start()
        try:
            from tests.support import ADMIN_KEY

            async with httpx.AsyncClient(
                base_url=srv.http, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as api:
                await schedule(api, sid)
                start = time.time() - 60
                body = orjson.dumps(body_for(sid, start))
                for secret in (WEBHOOK_SECRET, second):
                    r = await api.post(
                        "/v1/webhooks/generic",
                        content=body,
                        headers=generic_headers(body, secret=secret),
                    )
                    assert r.status_code == 200, r.text
                # The sender signs with both keys in one header during its own rotation.
                key = signatures.standard_secrets(second)[0]
                headers = generic_headers(body, secret=WEBHOOK_SECRET)
                extra = signatures.standard_signature(
                    key, headers["webhook-id"], headers["webhook-timestamp"], body
                )
                headers["webhook-signature"] = f"v1,bm90IGl0 {extra}"
                r = await api.post("/v1/webhooks/generic", content=body, headers=headers)
                assert r.status_code == 200
        finally:
            await srv.stop()

    async def test_unknown_session_and_invalid_events(
        self, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        r = await post_generic(anon, {"session_id": "no-such-session", "events": []})
        assert r.json() == {"status": "unknown_meeting", "session_id": "no-such-session"}
        await schedule(api, sid)
        r = await post_generic(anon, {"session_id": sid, "events": [{"id": "x", "type": "join"}]})
        assert r.status_code == 422
        assert r.json()["code"] == "invalid_events"
        r = await post_generic(anon, {"events": []})
        assert r.status_code == 422
