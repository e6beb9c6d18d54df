"""From journal to records: imports and live traffic, archived and finalised exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from sqlalchemy import func, select

from app.finalise.archiver import GROUP, Archiver
from app.finalise.finaliser import finalise_session
from app.kit.db import events, records, session_results
from tests.conftest import PG
from tests.finalise.helpers import (
    at,
    attendance,
    by_user,
    class_events,
    end,
    import_events,
    past_start,
)
from tests.support import Server, live, schedule, send_json


class TestImportedSession:
    async def test_records_follow_policy_and_results_wait_for_finalisation(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        await import_events(api, sid, class_events(start))
        r = await api.get(f"/v1/sessions/{sid}/attendance")
        assert r.status_code == 409
        assert r.json()["code"] == "not_finalised"
        await end(api, sid)
        body = await attendance(api, sid)
        s = body["session"]
        assert s["status"] == "finalised"
        assert s["revision"] == 1
        assert s["fault_ratio"] == 0.0
        recs = by_user(body)
        assert (recs["u1"]["status"], recs["u1"]["credit"]) == ("present", 1.0)
        assert recs["u1"]["first_join"] == at(start, -2).replace("Z", ".000Z")
        assert recs["u1"]["present_s"] == 3600.0
        assert recs["u1"]["intervals"] == [
            {
                "start": at(start, 0).replace("Z", ".000Z"),
                "end": at(start, 60).replace("Z", ".000Z"),
                "kind": "connected",
            }
        ]
        assert (recs["u2"]["status"], recs["u2"]["credit"]) == ("late", 0.5)
        assert recs["u2"]["reasons"] == ["joined_late"]
        assert (recs["u3"]["status"], recs["u3"]["reasons"]) == ("absent", ["never_joined"])
        assert recs["teacher"]["status"] == "present"
        assert all(r["revision"] == 1 for r in body["records"])

    async def test_csv_and_etag(self, server: Server, api: httpx.AsyncClient, sid: str) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        await import_events(api, sid, class_events(start))
        await end(api, sid)
        await attendance(api, sid)
        r = await api.get(f"/v1/sessions/{sid}/attendance")
        tag = r.headers["etag"]
        again = await api.get(f"/v1/sessions/{sid}/attendance", headers={"If-None-Match": tag})
        assert again.status_code == 304
        c = await api.get(f"/v1/sessions/{sid}/attendance", params={"format": "csv"})
        assert c.status_code == 200
        assert c.headers["content-type"].startswith("text/csv")
        lines = c.text.strip().splitlines()
        assert lines[0].startswith("session_id,user_id,role,status,credit")
        assert len(lines) == 1 + 4
        assert any(",u2,learner,late,0.5,joined_late," in line for line in lines)

    async def test_unknown_session_404_and_auth(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient
    ) -> None:
        r = await api.get("/v1/sessions/nope/attendance")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        assert (await anon.get("/v1/sessions/nope/attendance")).status_code == 401

    async def test_a_late_import_makes_revision_2_and_keeps_history(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        await import_events(api, sid, class_events(start))
        await end(api, sid)
        first = await attendance(api, sid)
        late = [
            {"id": "j3", "type": "join", "user_id": "u3", "ts": at(start, 1)},
            {"id": "e3", "type": "engagement", "kind": "chat", "user_id": "u3", "ts": at(start, 2)},
            {"id": "l3", "type": "leave", "user_id": "u3", "ts": at(start, 60)},
        ]
        await import_events(api, sid, late)
        second = await attendance(api, sid, revision=2)
        recs = by_user(second)
        assert (recs["u3"]["status"], recs["u3"]["revision"]) == ("present", 2)
        assert recs["u1"]["revision"] == 1  # unchanged records keep their revision
        async with server.resources.engine.connect() as conn:
            history = (
                await conn.execute(
                    select(records.c.revision, records.c.status).where(
                        records.c.session_id == sid, records.c.user_id == "u3"
                    )
                )
            ).all()
        assert sorted(history) == [(1, "absent"), (2, "present")]
        assert by_user(first)["u3"]["status"] == "absent"


class TestLiveSession:
    async def test_websocket_traffic_to_records(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = datetime.now(UTC) - timedelta(seconds=0.2)
        await schedule(api, sid, start=start, minutes=5)
        async with live(server, sid, "u1") as (ws1, _), live(server, sid, "u2") as (ws2, _):
            await send_json(ws1, {"id": "h1", "type": "heartbeat", "camera": True})
            await send_json(ws1, {"id": "q1", "type": "engagement", "kind": "question"})
            await send_json(ws2, {"id": "h2", "type": "heartbeat", "camera": False})
            await asyncio.sleep(1.5)
            await end(api, sid)
            body = await attendance(api, sid)
        recs = by_user(body)
        assert recs["u1"]["status"] == "present"
        assert recs["u1"]["engagements"] == 1
        assert recs["u2"]["status"] == "partial"
        assert recs["u2"]["reasons"] == ["no_engagement"]
        assert recs["u3"]["reasons"] == ["never_joined"]
        assert recs["teacher"]["status"] == "absent"


class TestExactlyOnce:
    async def test_racing_finalisers_make_one_result(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        await import_events(api, sid, class_events(start))
        await end(api, sid)
        res = server.resources
        far = datetime.now(UTC).timestamp() + 60
        outcomes = await asyncio.gather(
            *(finalise_session(res, sid, now=far) for _ in range(4)), end(api, sid)
        )
        assert [o for o in outcomes[:4] if o == "finalised"] in ([], ["finalised"])
        await attendance(api, sid)
        async with res.engine.connect() as conn:
            results = await conn.scalar(
                select(func.count()).where(session_results.c.session_id == sid)
            )
            recs = await conn.scalar(select(func.count()).where(records.c.session_id == sid))
        assert results == 1
        assert recs == 4

    async def test_archiver_survives_terminated_connections(
        self, server: Server, api: httpx.AsyncClient, sid: str, database: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start, learners=50)
        dbname = database.rsplit("/", 1)[1]
        killer = await asyncpg.connect(PG)
        sent = 0
        try:
            for batch in range(10):
                evs = [
                    {
                        "id": f"b{batch}-{k}",
                        "type": "engagement",
                        "kind": "chat",
                        "user_id": f"u{k % 50 + 1}",
                        "ts": at(start, 1 + batch + k / 1000),
                    }
                    for k in range(200)
                ]
                for _ in range(20):  # the import itself may meet a dead connection: retry
                    r = await api.post(f"/v1/sessions/{sid}/events", json={"events": evs})
                    if r.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                assert r.status_code == 200
                sent += len(evs)
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    dbname,
                )
                await asyncio.sleep(0.05)
        finally:
            await killer.close()
        res = server.resources
        arch = Archiver(res, consumer="test-drain")
        for _ in range(100):
            try:
                if await arch.drain(sid):
                    break
            except Exception:
                pass
            await asyncio.sleep(0.1)
        async with res.engine.connect() as conn:
            stored = await conn.scalar(select(func.count()).where(events.c.session_id == sid))
        assert stored == sent
        pending = await res.redis.xpending(res.keys.session(sid).journal, GROUP)
        assert pending["pending"] == 0


async def test_auto_end_after_end_grace(server: Server, api: httpx.AsyncClient, sid: str) -> None:
    start = past_start()
    await schedule(api, sid, start=start, overrides={"end_grace": "1s"})
    await import_events(api, sid, class_events(start))
    body = await attendance(api, sid, wait=15)
    assert body["session"]["status"] == "finalised"
    r = await api.get(f"/v1/sessions/{sid}")
    assert r.json()["status"] == "finalised"
