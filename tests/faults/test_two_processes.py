"""Two server processes (same PostgreSQL and Redis) serving one session."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from app.kit.keys import Keys
from tests.conftest import REDIS
from tests.faults.support import (
    Serve,
    crowd,
    finish,
    live_url,
    open_panel,
    schedule_on,
    session_ids,
    start_pacing,
    until_acked,
    until_connected,
    verify,
)


async def test_two_processes_serve_one_session_without_loss_or_doubles(
    serve: Serve, prefix: str
) -> None:
    a, b = await serve(2)
    [sid] = session_ids(1)
    c = await crowd([a, b], [sid], participants=10, rate=600)
    pacer = start_pacing(c, 4)
    await until_acked(c, 1000, 10)
    # A participant moves from one process to the other and re-sends what is unacked.
    for p in c.participants[:4]:
        p.url = p.url.replace(str(a.port), str(b.port))
        p.drop(0.1)
    await pacer
    await finish(c)
    await verify(REDIS, prefix, c.participants)
    r = Redis.from_url(REDIS)
    rows: Any = await r.xrange(Keys(prefix).session(sid).journal)
    await r.aclose()
    joins = [orjson.loads(f[b"e"]) for _, f in rows]
    instances = {e["conn"].rsplit("-", 1)[0] for e in joins if e["type"] == "join"}
    assert len(instances) == 2


async def test_a_panel_on_one_process_sees_participants_of_the_other(serve: Serve) -> None:
    a, b = await serve(2)
    [sid] = session_ids(1)
    await schedule_on(a, sid, learners=2)
    async with open_panel(a, sid) as panel, connect(live_url(b, sid, "u1")) as learner:
        await learner.recv()  # welcome
        started = time.monotonic()
        await until_connected(panel, "u1", 5)
        assert time.monotonic() - started < 1.5
