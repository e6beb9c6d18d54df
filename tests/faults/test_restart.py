"""A restart of the server process mid-session loses no acked event."""

from __future__ import annotations

from tests.conftest import REDIS
from tests.faults.support import (
    Serve,
    crowd,
    finish,
    queue_offline,
    session_ids,
    start_pacing,
    until_acked,
    until_all_live,
    verify,
)


async def test_graceful_restart_mid_session_loses_no_acked_event(serve: Serve, prefix: str) -> None:
    [server] = await serve()
    c = await crowd([server], session_ids(2), participants=5, rate=400)
    pacer = start_pacing(c, 10)
    await until_acked(c, 300, 10)
    await server.stop()  # SIGTERM: uvicorn closes the websockets (1012) and drains
    acked_at_stop = c.stats.acked
    queue_offline(c, 2)
    await server.start()
    await until_all_live(c, 15)
    await until_acked(c, acked_at_stop + 300, 10)
    await pacer
    await finish(c)
    await verify(REDIS, prefix, c.participants)
    assert c.stats.resent > 0
