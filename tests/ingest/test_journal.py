"""The journal writer: many sessions in one round trip, duplicates flagged per event."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.ingest.events import Entry
from app.ingest.journal import op_for, pack_command
from tests.support import Server, journal


def entry(eid: str, user: str, ts: float) -> Entry:
    return Entry(eid, "engagement", user, ts, "c1", "ws", {"kind": "chat"})


@pytest.mark.parametrize("cluster", [False, True])
async def test_one_batch_for_several_sessions_counts_each_sessions_new_events(
    server: Server, cluster: bool
) -> None:
    writer = server.resources.writer
    writer.cluster = cluster
    try:
        sids = [f"j-{cluster}-{i}" for i in range(3)]
        first = [
            writer.write(sid, [(e, op_for(e, learner=True))])
            for sid in sids
            for e in (entry("a", "u1", 1.0), entry("b", "u1", 2.0))
        ]
        assert await asyncio.gather(*first) == [1] * 6
        again = [
            writer.write(sids[0], [(entry("a", "u1", 1.0), "x"), (entry("c", "u1", 3.0), "x")]),
            writer.write(sids[1], [(entry("b", "u1", 2.0), "x")]),
            writer.write(sids[2], [(entry("a", "u2", 1.0), "x")]),
        ]
        assert await asyncio.gather(*again) == [1, 0, 1]
        assert [e["id"] for e in await journal(server, sids[0])] == ["a", "b", "c"]
        assert [e["user_id"] for e in await journal(server, sids[2])] == ["u1", "u1", "u2"]
    finally:
        writer.cluster = False


async def test_stop_writes_what_is_queued_and_returns(server: Server) -> None:
    from app.ingest.journal import JournalWriter

    res = server.resources
    writer = JournalWriter(redis=res.redis, keys=res.keys, ttl_s=60)
    await writer.start()
    results: list[int | BaseException] = []
    for i in range(3):
        writer.submit("j-stop", [(entry(f"s{i}", "u1", float(i)), "x")], results.append)
    await asyncio.wait_for(writer.stop(), 5)
    assert results == [1, 1, 1]
    assert len(await journal(server, "j-stop")) == 3


def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them() -> None:
    parts = (
        "EVALSHA",
        "0123abcd",
        2,
        "hadir:{s:é-1}:journal",
        "hadir:{s:é-1}:seen",
        3600,
        1796172083.123456,
        -0.5,
        b"",
        b"h" + entry("a", "ü1", 1.5).payload(),
        b"x" * 70_000,  # redis-py sends a value this large as a chunk of its own
    )
    conn = Redis().connection_pool.make_connection()  # type: ignore[no-untyped-call]
    expected = b"".join(conn.pack_command(*parts))
    assert pack_command(parts) == expected
