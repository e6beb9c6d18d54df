"""Service-gap windows and heartbeat timeouts of connections whose server process died."""

from __future__ import annotations

import time

import httpx

from app.ingest import live as ingest_live
from app.ingest.events import Entry
from app.ingest.journal import op_for
from tests.support import Server, journal, live, schedule, send_json


async def test_a_stop_of_the_service_is_an_outage_for_live_sessions(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid)
    async with live(server, sid, "u1"):
        pass  # the first connection makes the session live
    res = server.resources
    stopped = time.time() - 40
    await res.redis.set(res.keys.liveness, repr(stopped))
    await ingest_live.liveness_tick(res)
    gaps = [e for e in await journal(server, sid) if e["type"] == "outage"]
    assert len(gaps) == 1
    assert gaps[0]["cause"] == "service_gap"
    assert gaps[0]["start"] == stopped
    assert gaps[0]["end"] >= stopped + 40
    # a second process seeing the same gap records nothing more
    await ingest_live.liveness_tick(res)
    assert len([e for e in await journal(server, sid) if e["type"] == "outage"]) == 1


async def test_connections_of_a_dead_process_time_out_at_their_last_heartbeat(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid)
    async with live(server, sid, "u2") as (ws, _):
        await send_json(ws, {"id": "h", "type": "heartbeat", "camera": True})
        await ws.recv()
    res = server.resources
    # A join journaled by a process that then died: its connection stays open in Redis.
    last_heartbeat = time.time() - 60
    join = Entry(
        "join:deadbeef-1", "join", "u1", last_heartbeat, "deadbeef-1", "ws", {"role": "learner"}
    )
    await res.writer.write(sid, [(join, op_for(join, learner=True))])
    await ingest_live.sweep_timeouts(res)
    await ingest_live.sweep_timeouts(res)  # idempotent
    ends = [
        e for e in await journal(server, sid) if e["conn"] == "deadbeef-1" and e["type"] == "drop"
    ]
    assert len(ends) == 1
    assert ends[0]["ts"] == last_heartbeat
    assert ends[0]["reason"] == "heartbeat_timeout"
    assert await res.redis.zcard(res.keys.session(sid).conns) == 0
