"""kill -9 of the server process during load, then a restart on the same port."""

from __future__ import annotations

import asyncio

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


async def test_kill_9_loses_no_acked_event_and_records_the_service_gap(
    serve: Serve, prefix: str
) -> None:
    [server] = await serve()
    sids = session_ids(2)
    c = await crowd([server], sids, participants=5, rate=400)
    pacer = start_pacing(c, 14)
    await until_acked(c, 300, 10)
    server.kill()
    acked_at_kill = c.stats.acked
    await asyncio.sleep(1)
    queue_offline(c, 3)
    await asyncio.sleep(4.5)  # down longer than the 5 s a service gap needs
    await server.start()
    await until_all_live(c, 15)
    await until_acked(c, acked_at_kill + 300, 10)
    await pacer
    await finish(c)
    result = await verify(REDIS, prefix, c.participants)
    assert c.stats.resent > 0  # unacked events were re-sent after the reconnect
    gaps = [o for o in result["outages"] if o.get("cause") == "service_gap"]
    assert {o["session_id"] for o in gaps} == set(sids)
    assert all(o["end"] - o["start"] > 5 for o in gaps)
