"""Trusted import into the journal, and the Redis keys it leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.support import Server, iso, journal, live, schedule, send_json


def ev(eid: str, etype: str, user: str, at: datetime, **extra: object) -> dict[str, object]:
    return {"id": eid, "type": etype, "user_id": user, "ts": iso(at), **extra}


class TestImport:
    async def test_events_keep_their_own_time_and_duplicates_count_once(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        await schedule(api, sid, start=start)
        batch = [
            ev("j1", "join", "u1", start + timedelta(minutes=2)),
            ev("e1", "engagement", "u1", start + timedelta(minutes=5), kind="chat"),
            ev("d1", "drop", "u1", start + timedelta(minutes=20)),
        ]
        r = await api.post(f"/v1/sessions/{sid}/events", json={"events": batch})
        assert r.json() == {"accepted": 3, "new": 3, "duplicates": 0, "rejected": []}
        r = await api.post(f"/v1/sessions/{sid}/events", json={"events": batch[1:]})
        assert r.json()["duplicates"] == 2
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "engagement", "drop"]
        assert events[0]["ts"] == (start + timedelta(minutes=2)).timestamp()
        assert events[2]["reason"] == "abnormal"
        assert {e["src"] for e in events} == {"import"}

    async def test_bad_events_are_reported_and_good_ones_kept(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        now = datetime.now(UTC)
        r = await api.post(
            f"/v1/sessions/{sid}/events",
            json={
                "events": [
                    ev("ok", "join", "u1", now),
                    {"id": "nots", "type": "join", "user_id": "u2"},
                    ev("bad-ts", "join", "u2", now) | {"ts": "yesterday"},
                    ev("nouser", "join", "", now),
                ]
            },
        )
        body = r.json()
        assert body["accepted"] == 1
        assert [e["code"] for e in body["rejected"]] == ["invalid_field"] * 3
        assert "events[1]" in body["rejected"][0]["detail"]

    async def test_all_bad_is_422_unknown_session_404_scope_401(
        self, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        r = await api.post(f"/v1/sessions/{sid}/events", json={"events": [{"id": "x"}]})
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert (await api.post("/v1/sessions/nope/events", json={"events": []})).status_code == 404
        assert (
            await anon.post(f"/v1/sessions/{sid}/events", json={"events": []})
        ).status_code == 401
        r = await api.post(f"/v1/sessions/{sid}/events", json={"events": "many"})
        assert r.status_code == 422


class TestRedisKeys:
    async def test_every_key_of_a_session_has_a_ttl_and_one_hash_tag(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, {"id": "h", "type": "heartbeat", "camera": True})
            await ws.recv()
        await api.post(f"/v1/sessions/{sid}/end")
        redis = server.resources.redis
        prefix = server.resources.keys.prefix
        keys = [k.decode() async for k in redis.scan_iter(match=f"{prefix}:*")]
        session_keys = [k for k in keys if f"{{s:{sid}}}" in k]
        assert {k.rsplit(":", 1)[1] for k in session_keys} >= {"journal", "seen"}
        for key in keys:
            ttl = await redis.ttl(key)
            # -1 would be a key without a TTL; -2 is one emptied and gone since the scan.
            assert ttl > 0 or ttl == -2, (key, ttl)
        assert all(
            k.startswith(f"{prefix}:{{s:") or k.startswith(f"{prefix}:{{svc}}") for k in keys
        )


async def test_imported_joins_make_a_scheduled_session_live(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    await schedule(api, sid, start=start)
    r = await api.post(
        f"/v1/sessions/{sid}/events",
        json={"events": [ev("j", "join", "u1", start + timedelta(minutes=1))]},
    )
    assert r.status_code == 200
    session = (await api.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "live"
    assert session["started_at"] == iso(start + timedelta(minutes=1))[:23] + "Z"
