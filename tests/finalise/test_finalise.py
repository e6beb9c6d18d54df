"""From journal to records: imports and live traffic, archived and finalised exactly once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import func, select

from app.finalise.archiver import GROUP, Archiver
from app.finalise.finaliser import finalise_session, load_events
from app.ingest.events import Entry, rules_event
from app.ingest.live import service_gap_entry
from app.kit import clock
from app.kit.db import events, records, session_results
from app.rules.evidence import Window, event_order
from app.rules.policy import resolve
from tests.conftest import PG
from tests.finalise.helpers import (
    at,
    attendance,
    by_user,
    class_events,
    end,
    ended_class,
    finalised_class,
    import_events,
    past_start,
)
from tests.support import (
    Server,
    journal,
    live,
    recv_json,
    schedule,
    send_json,
    until_archived,
)


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
        await finalised_class(api, sid, past_start())
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
        first = await finalised_class(api, sid, start)
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


class TestArchivedEvents:
    async def test_archived_rows_give_the_events_the_journal_gives(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        """The finaliser (archived rows) and the live panel (journal entries) see one event
        alike, at the time PostgreSQL stores (to the microsecond)."""
        start = datetime.now(UTC) - timedelta(minutes=10)
        await schedule(api, sid, start=start)
        await import_events(
            api,
            sid,
            [
                {"id": "j1", "type": "join", "user_id": "u1", "ts": at(start, 0), "conn": "c1"},
                {
                    "id": "h1",
                    "type": "heartbeat",
                    "user_id": "u1",
                    "ts": at(start, 1),
                    "camera": True,
                    "mic": False,
                    "visible": False,
                },
                {"id": "c1", "type": "camera", "on": False, "user_id": "u1", "ts": at(start, 2)},
                {
                    "id": "e1",
                    "type": "engagement",
                    "kind": "poll_vote",
                    "user_id": "u1",
                    "ts": at(start, 3),
                },
                {
                    "id": "d1",
                    "type": "drop",
                    "reason": "heartbeat_timeout",
                    "user_id": "u1",
                    "ts": at(start, 4),
                },
                {"id": "l2", "type": "leave", "user_id": "u2", "ts": at(start, 5)},
            ],
        )
        res = server.resources
        now = clock.now()
        for gap_start, gap_end in ((now - 100, now - 90), (now - 80, now - 60)):  # 10 s, 20 s
            await res.writer.write(sid, [(service_gap_entry(gap_start, gap_end), "x")])
        # A live event's time is finer than the microsecond PostgreSQL keeps.
        fine = Entry("h4", "heartbeat", "u4", int(now) - 30.4999996, "c4", "ws", {"camera": False})
        await res.writer.write(sid, [(fine, "h")])
        async with live(server, sid, "u3") as (ws, _):
            await send_json(ws, {"id": "h3", "type": "heartbeat", "camera": True})
            await recv_json(ws)
            entries = await journal(server, sid)
            await until_archived(server, sid, len(entries))
            async with res.engine.connect() as conn:
                archived, gaps = await load_events(conn, sid, resolve("platform"))
        from_journal = [e for e in map(rules_event, entries) if e is not None]
        stored = [replace(e, ts=clock.from_dt(clock.to_dt(e.ts))) for e in from_journal]
        assert sorted(archived, key=event_order) == sorted(stored, key=event_order)
        assert len(archived) == 9  # six imported, u4's heartbeat, u3's join and heartbeat
        by_id = {e.id: e for e in archived}
        assert (by_id["h1"].camera, by_id["h1"].visible) == (True, False)
        assert (by_id["c1"].camera, by_id["c1"].visible) == (False, None)
        assert (by_id["e1"].kind, by_id["d1"].reason) == ("poll_vote", "heartbeat_timeout")
        assert (by_id["j1"].conn, by_id["l2"].conn) == ("c1", "import:u2")
        assert by_id["h4"].ts == int(now) - 30.5
        assert gaps == [Window(now - 80, now - 60, "service_gap")]  # policy: longer than 15 s


class TestExactlyOnce:
    async def test_racing_finalisers_make_one_result(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await ended_class(api, sid, past_start())
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
