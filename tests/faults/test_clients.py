"""A client that never reads its acks and a flooding client: bounded memory, others unaffected."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import connect

from loadtest import proc
from loadtest.client import Behaviour, Crowd, Participant
from loadtest.run import percentile
from tests.conftest import REDIS
from tests.faults.support import (
    Serve,
    crowd,
    finish,
    live_url,
    session_ids,
    start_pacing,
    verify,
)

MiB = 2**20


async def calm_latencies(c: Crowd, seconds: float) -> list[float]:
    c.stats.window_open = True
    await start_pacing(c, seconds)
    c.stats.window_open = False
    return c.stats.latencies


async def test_a_client_that_never_reads_holds_bounded_memory(serve: Serve, prefix: str) -> None:
    [server] = await serve()
    [sid] = session_ids(1)
    c = await crowd([server], [sid], participants=4, rate=200)
    baseline = await calm_latencies(c, 2)
    rss_before = proc.rss_bytes(server.pid)
    url = live_url(server, sid, "u9")
    # max_queue=1: the client stops reading the socket once one message is waiting.
    async with connect(url, compression=None, max_queue=1, write_limit=2**16) as slow:
        frame = '{"id":"s%d","type":"heartbeat","camera":true}'

        async def flood() -> None:
            for i in range(50_000):
                await slow.send(frame % i)

        c.stats.latencies = []
        flooding = asyncio.create_task(flood())
        during = await calm_latencies(c, 5)
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await flooding
        rss_after = proc.rss_bytes(server.pid)
    assert rss_after - rss_before < 40 * MiB
    assert percentile(during, 0.99) < max(0.5, 10 * percentile(baseline, 0.99))
    await finish(c)
    await verify(REDIS, prefix, c.participants)


async def test_a_flooding_client_is_bounded_and_spares_the_others(
    serve: Serve, prefix: str
) -> None:
    [server] = await serve(HADIR_RATE_LIMIT_PER_S="1000000")
    [sid] = session_ids(1)
    c = await crowd([server], [sid], participants=4, rate=200)
    rss_before = proc.rss_bytes(server.pid)
    flood_crowd = Crowd(0)
    flooder = Participant(
        flood_crowd,
        0,
        sid,
        "u8",
        live_url(server, sid, "u8"),
        Behaviour(mode="throughput", window=5000),
    )
    flood_crowd.participants.append(flooder)
    await flooder.connect()
    during = await calm_latencies(c, 5)
    rss_peak = proc.rss_bytes(server.pid)
    flood_crowd.stopping = True
    flooder.finish()
    assert flood_crowd.stats.acked > 1000  # it was served, not starved
    assert rss_peak - rss_before < 40 * MiB
    assert percentile(during, 0.99) < 1.0
    await finish(c)
    await verify(REDIS, prefix, c.participants)
