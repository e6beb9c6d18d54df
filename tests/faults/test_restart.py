"""A restart of the server process mid-session loses no acked event."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import REDIS
from tests.faults.support import (
    ServeProcess,
    crowd,
    finish,
    queue_offline,
    session_ids,
    until,
    verify,
)


async def test_graceful_restart_mid_session_loses_no_acked_event(
    database: str, prefix: str
) -> None:
    server = ServeProcess(database, REDIS, prefix)
    await server.start()
    try:
        c = await crowd([server], session_ids(2), participants=5, rate=400)
        pacer = asyncio.create_task(c.pace(time.perf_counter() + 10))
        await until(lambda: c.stats.acked > 300, 10)
        await server.stop()  # SIGTERM: uvicorn closes the websockets (1012) and drains
        acked_at_stop = c.stats.acked
        queue_offline(c, 2)
        await server.start()
        await until(lambda: c.live() == len(c.participants), 15)
        await until(lambda: c.stats.acked > acked_at_stop + 300, 10)
        await pacer
        await finish(c)
        await verify(REDIS, prefix, c.participants)
        assert c.stats.resent > 0
    finally:
        await server.stop()
