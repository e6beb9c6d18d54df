"""Two server processes (same PostgreSQL and Redis) serving one session."""

from __future__ import annotations

import asyncio
import time

import orjson
from redis.asyncio import Redis

from app.kit.keys import Keys
from tests.conftest import REDIS
from tests.faults.support import ServeProcess, crowd, finish, session_ids, until, verify


async def test_two_processes_serve_one_session_without_loss_or_doubles(
    database: str, prefix: str
) -> None:
    a = ServeProcess(database, REDIS, prefix)
    b = ServeProcess(database, REDIS, prefix)
    await asyncio.gather(a.start(), b.start())
    try:
        [sid] = session_ids(1)
        c = await crowd([a, b], [sid], participants=10, rate=600)
        pacer = asyncio.create_task(c.pace(time.perf_counter() + 4))
        await until(lambda: c.stats.acked > 1000, 10)
        # A participant moves from one process to the other and re-sends what is unacked.
        for p in c.participants[:4]:
            p.url = p.url.replace(str(a.port), str(b.port))
            p.drop(0.1)
        await pacer
        await finish(c)
        await verify(REDIS, prefix, c.participants)
        r = Redis.from_url(REDIS)
        rows = await r.xrange(Keys(prefix).session(sid).journal)
        await r.aclose()
        joins = [orjson.loads(f[b"e"]) for _, f in rows]
        instances = {e["conn"].rsplit("-", 1)[0] for e in joins if e["type"] == "join"}
        assert len(instances) == 2
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_a_panel_on_one_process_sees_participants_of_the_other(
    database: str, prefix: str
) -> None:
    import httpx
    from websockets.asyncio.client import connect

    from tests.support import ADMIN_KEY, schedule, token

    a = ServeProcess(database, REDIS, prefix)
    b = ServeProcess(database, REDIS, prefix)
    await asyncio.gather(a.start(), b.start())
    try:
        [sid] = session_ids(1)
        async with httpx.AsyncClient(
            base_url=a.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as api:
            await schedule(api, sid, learners=2, course_id=f"c-{sid}")
        ws_a, ws_b = a.url.replace("http", "ws"), b.url.replace("http", "ws")
        teacher = token("teacher", sid, "instructor")
        async with (
            connect(f"{ws_a}/v1/live/{sid}/panel?token={teacher}") as panel,
            connect(f"{ws_b}/v1/live/{sid}?token={token('u1', sid)}") as learner,
        ):
            assert orjson.loads(await panel.recv())["type"] == "snapshot"
            await learner.recv()  # welcome
            started = time.monotonic()
            async with asyncio.timeout(5):
                while True:
                    message = orjson.loads(await panel.recv())
                    people = {p["user_id"]: p for p in message.get("participants", [])}
                    if people.get("u1", {}).get("state") == "connected":
                        break
            assert time.monotonic() - started < 1.5
    finally:
        await asyncio.gather(a.stop(), b.stop())
