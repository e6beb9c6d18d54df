"""The archiver on its own journals: reclaiming a dead consumer's entries, many journals per
pass, entries deleted while pending; every event lands in PostgreSQL exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot
from sqlalchemy import func, select

from app.finalise.archiver import GROUP, Archiver
from app.ingest.events import Entry
from app.ingest.journal import JournalWriter
from app.kit.db import events
from app.kit.keys import Keys
from app.kit.resources import Resources
from tests.support import Server


@pytest.fixture
async def res(server: Server) -> AsyncIterator[Resources]:
    """The test server's PostgreSQL and Redis under a key prefix of their own (the server's
    own archiver never reads these journals), trimming without a lag."""
    base = server.resources
    keys = Keys(f"arch{secrets.token_hex(4)}")
    writer = JournalWriter(redis=base.redis, keys=keys, ttl_s=600)
    await writer.start()
    settings = base.settings.model_copy(update={"journal_trim_lag_s": 0.0})
    yield Resources(
        settings=settings, engine=base.engine, redis=base.redis, keys=keys, writer=writer
    )
    await writer.stop()
    async for key in base.redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        await base.redis.delete(key)


async def journal(res: Resources, sid: str, ids: list[str]) -> None:
    entries = [
        Entry(eid, "engagement", f"u{k % 3}", 1_700_000_000.0 + k, "c1", "ws", {"kind": "chat"})
        for k, eid in enumerate(ids)
    ]
    assert await res.writer.write(sid, [(e, "x") for e in entries]) == len(ids)


async def archived(res: Resources, sid: str) -> list[str]:
    async with res.engine.connect() as conn:
        rows = await conn.execute(select(events.c.event_id).where(events.c.session_id == sid))
        return sorted(r.event_id for r in rows)


async def pending(res: Resources, sid: str) -> dict[str, Any]:
    found: dict[str, Any] = await res.redis.xpending(res.keys.session(sid).journal, GROUP)
    return found


async def test_a_dead_consumers_entries_are_reclaimed_once_idle_and_archived_once(
    res: Resources, sid: str
) -> None:
    first = [f"a{k:02d}" for k in range(30)]
    await journal(res, sid, first)
    dead = Archiver(res, consumer="dead")
    # It read everything, committed the first ten rows, and died before acknowledging.
    [batch] = await dead.read([sid], 100)
    assert (batch.size, len(batch.rows)) == (30, 30)
    batch.rows = batch.rows[:10]
    assert await dead.store([batch]) == 10
    later = [f"b{k}" for k in range(5)]
    await journal(res, sid, later)

    patient = Archiver(res, consumer="patient")  # the default claim idle time: 30 s
    quick = Archiver(res, consumer="quick", claim_idle_s=0.2)
    await asyncio.sleep(0.3)
    assert await patient.archive([sid]) == 5  # only the entries no one was given
    assert not await patient.caught_up(sid)
    assert (await pending(res, sid))["pending"] == 30
    # The trim after that acknowledgement kept the dead consumer's entries for the next one.
    assert await res.redis.xlen(res.keys.session(sid).journal) == 35

    assert await quick.drain(sid)
    assert quick.archived == 20  # the ten rows the dead consumer committed are not doubled
    assert await archived(res, sid) == sorted(first + later)
    assert (await pending(res, sid))["pending"] == 0
    async with res.engine.connect() as conn:
        total = await conn.scalar(select(func.count()).where(events.c.session_id == sid))
    assert total == 35


@pytest.mark.parametrize("cluster", [False, True])
async def test_a_pass_visits_every_journal_whatever_the_batch_size(
    res: Resources, cluster: bool
) -> None:
    """Journals are read in one call (one per hash slot on Cluster) until `archive_batch`
    entries are read; the rest of the pass carries on with the journals not reached."""
    res.settings = res.settings.model_copy(update={"archive_batch": 7})
    res.writer.cluster = cluster
    sizes = {"none": 0, "small": 3, "mid": 10, "one": 1, "big": 25}
    while True:  # one journal per hash slot, so that on Cluster each has a call of its own
        sids = {name: f"p-{name}-{secrets.token_hex(3)}" for name in sizes}
        slots = {key_slot(res.keys.session(sid).journal.encode()) for sid in sids.values()}
        if len(slots) == len(sids):
            break
    for name, n in sizes.items():
        if n:
            await journal(res, sids[name], [f"{name}{k}" for k in range(n)])
    arch = Archiver(res)
    first = await arch.archive(sids.values())
    assert first == (14 if not cluster else 3 + 7 + 1 + 7)
    passes = 1
    while await arch.archive(sids.values()):
        passes += 1
    assert passes < 10
    for name, n in sizes.items():
        assert await archived(res, sids[name]) == sorted(f"{name}{k}" for k in range(n))
        assert await arch.caught_up(sids[name])
    assert arch.archived == sum(sizes.values())
    assert not await res.redis.smembers(res.keys.unarchived)


async def test_an_entry_deleted_while_pending_is_acknowledged_not_archived(
    res: Resources, sid: str
) -> None:
    await journal(res, sid, ["d0", "d1", "d2"])
    arch = Archiver(res)
    [batch] = await arch.read([sid], 10)  # then the commit fails: all three stay pending
    middle = batch.ids.split(",")[1]
    assert await res.redis.xdel(res.keys.session(sid).journal, middle) == 1
    assert await arch.drain(sid)
    assert await archived(res, sid) == ["d0", "d2"]
    assert (await pending(res, sid))["pending"] == 0
