"""Archiver benchmark: `python -m loadtest.bench_archive [--runs 3] [--per-pass 0|N]`.

Each repetition journals `--sessions` × `--events` events through the ingest path's own
`JournalWriter` (the same Lua script and payloads as live websocket traffic: a join per
participant, then 80% heartbeats, 10% camera toggles, 10% engagements, a leave at the end)
under a fresh Redis key prefix, into a fresh database built with `alembic upgrade head`, and
times one `Archiver` moving them into PostgreSQL: the process CPU time (`time.process_time`)
of the archiver's passes per event, and their wall time; beside it the CPU time of the Redis
server (INFO; the whole server) and of the database's PostgreSQL backends (/proc; a local
server) over the same passes. At the end every event must be in PostgreSQL exactly once,
with the columns and payload ingest gave it, and nothing pending in Redis. Prints each run
and the medians.

- backlog (`--per-pass 0`, the default): everything is journaled first, then drained
  (`run_once` until a pass reads nothing), as after a worker restart.
- live (`--per-pass N`): the sessions are live; N events per session are journaled, then
  one archiver pass runs, and so on, as when the worker keeps up with ingest (only the
  passes are timed). `--idle K` adds K live sessions that go quiet after their joins: every
  pass still visits them.

`--profile FILE` writes a cProfile of the archiver's passes for `python -m pstats`.
Uses `BENCH_POSTGRES_URL` (default the local test server) and `BENCH_REDIS_URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import random
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.asyncio import Redis

from app.finalise.archiver import GROUP, Archiver
from app.ingest.events import Entry
from app.ingest.journal import JournalWriter, op_for
from app.kit import clock
from app.kit.db import make_engine
from app.kit.keys import Keys
from app.kit.resources import Resources, make_redis
from app.migrate import upgrade
from app.settings import Settings
from loadtest import proc

PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ENGAGEMENTS = ("question", "chat", "poll_vote", "reaction", "hand_raise")
WRITE_CHUNK = 500  # events per JournalWriter.write, as a busy ingest batch


@dataclass(slots=True)
class Sample:
    events: int
    cpu_s: float
    wall_s: float
    redis_cpu_s: float
    pg_cpu_s: float

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def redis_us_per_event(self) -> float:
        return self.redis_cpu_s / self.events * 1e6

    @property
    def pg_us_per_event(self) -> float:
        return self.pg_cpu_s / self.events * 1e6


def session_entries(
    rng: random.Random, instance: str, events: int, participants: int
) -> list[tuple[Entry, str]]:
    """One session's journal: what `app.ingest.live` makes of websocket frames."""
    users = [f"u{k}" for k in range(participants)]
    conns = {u: f"{instance}-{k}" for k, u in enumerate(users)}
    camera = dict.fromkeys(users, True)
    now = time.time()
    out: list[tuple[Entry, str]] = []

    def add(user: str, etype: str, fields: dict[str, object]) -> None:
        ts = now + len(out) * 1e-3
        entry = Entry(str(uuid.uuid4()), etype, user, ts, conns[user], "ws", fields)
        out.append((entry, op_for(entry, learner=True)))

    for user in users:
        add(user, "join", {})
    while len(out) < events - participants:
        user = rng.choice(users)
        r = rng.random()
        if r < 0.8:
            fields: dict[str, object] = {"camera": camera[user], "mic": True, "visible": True}
            add(user, "heartbeat", {**fields, "client_ts": now + len(out) * 1e-3})
        elif r < 0.9:
            camera[user] = not camera[user]
            add(user, "camera", {"on": camera[user]})
        else:
            add(user, "engagement", {"kind": rng.choice(ENGAGEMENTS)})
    for user in users:
        if len(out) < events:
            add(user, "leave", {})
    return out


def journals(
    name: str, sessions: int, events: int, participants: int
) -> dict[str, list[tuple[Entry, str]]]:
    """Every session's journal entries, in order."""
    rng = random.Random(7)
    return {
        f"{name}-{s}": session_entries(rng, f"{name}{s}", events, participants)
        for s in range(sessions)
    }


async def write(
    res: Resources, todo: dict[str, list[tuple[Entry, str]]], start: int, n: int
) -> int:
    """Journal entries [start, start + n) of every session, as one ingest batch per session."""
    written = await asyncio.gather(
        *(res.writer.write(sid, entries[start : start + n]) for sid, entries in todo.items())
    )
    return sum(written)


async def verify(dsn: str, res: Resources, todo: dict[str, list[tuple[Entry, str]]]) -> None:
    """Every journaled event is in `events` exactly once, with the columns and payload the
    ingest path gave it, and nothing is left pending in Redis."""
    want = {
        (sid, e.event_id): (e.user_id, e.type, clock.to_dt(e.ts), e.conn, e.source, e.payload())
        for sid, entries in todo.items()
        for e, _ in entries
    }
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT session_id, event_id, user_id, type, ts, conn, source, payload::text, "
            "journal_id FROM events"
        )
    finally:
        await conn.close()
    assert len(rows) == len(want), f"{len(rows)} rows archived, {len(want)} events journaled"
    assert len({(r[0], r[8]) for r in rows}) == len(rows), "a journal entry archived twice"
    for r in rows:
        user, etype, ts, conn_id, source, payload = want.pop((r[0], r[1]))
        assert (r[2], r[3], r[4], r[5], r[6]) == (user, etype, ts, conn_id, source), r
        assert orjson.loads(r[7]) == orjson.loads(payload), r
    assert not want, f"{len(want)} events not archived"
    for sid in todo:
        pending = await res.redis.xpending(res.keys.session(sid).journal, GROUP)
        assert not pending["pending"], f"{sid}: {pending['pending']} entries still pending"


class Timed:
    """CPU time (this process; the Redis server; the database's PostgreSQL backends, read
    from /proc, so 0 unless the server is local) and wall time of the archiver's passes, and
    nothing else."""

    def __init__(
        self, arch: Archiver, profile: cProfile.Profile | None, admin: Any, database: str
    ) -> None:
        self.arch, self.profile, self.admin, self.database = arch, profile, admin, database
        self.cpu_s = self.wall_s = self.redis_cpu_s = self.pg_cpu_s = 0.0

    async def servers_cpu_s(self) -> tuple[float, float]:
        info = await self.arch.res.redis.info("cpu")
        backends = await self.admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
        )
        redis_s = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return redis_s, sum(proc.cpu_s(int(b["pid"])) for b in backends)

    async def run_once(self) -> int:
        redis0, pg0 = await self.servers_cpu_s()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if self.profile is not None:
            self.profile.enable()
        n = await self.arch.run_once()
        if self.profile is not None:
            self.profile.disable()
        self.cpu_s += time.process_time() - cpu0
        self.wall_s += time.perf_counter() - wall0
        redis1, pg1 = await self.servers_cpu_s()
        self.redis_cpu_s += redis1 - redis0
        self.pg_cpu_s += pg1 - pg0
        return n


async def one_run(args: argparse.Namespace, profile: cProfile.Profile | None) -> Sample:
    name = f"hadir_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{PG.rsplit('/', 1)[0]}/{name}"
    url = "postgresql+asyncpg://" + dsn.split("://", 1)[1]
    prefix = f"ba{secrets.token_hex(4)}"
    settings = Settings(DATABASE_URL=url, REDIS_URL=REDIS, HADIR_REDIS_PREFIX=prefix)
    engine = make_engine(url)
    redis = make_redis(REDIS)
    keys = Keys(prefix)
    writer = JournalWriter(redis=redis, keys=keys, ttl_s=settings.journal_ttl_s)
    try:
        await asyncio.to_thread(upgrade, url)
        await writer.start()
        res = Resources(settings=settings, engine=engine, redis=redis, keys=keys, writer=writer)
        busy = journals("bench", args.sessions, args.events, args.participants)
        quiet = journals("idle", args.idle, args.participants, args.participants)
        todo = busy | quiet
        timed = Timed(Archiver(res, consumer="bench"), profile, admin, name)
        async with engine.connect() as conn:  # open the pool's connection outside the timing
            await conn.exec_driver_sql("SELECT 1")
        journaled = 0
        if args.per_pass:
            end = time.time() + 3600
            await redis.zadd(keys.live_sessions, dict.fromkeys(todo, end))
            journaled += await write(res, quiet, 0, args.participants)
            for start in range(0, args.events, args.per_pass):
                journaled += await write(res, busy, start, args.per_pass)
                gc.collect()
                await timed.run_once()
        else:
            for start in range(0, args.events, WRITE_CHUNK):
                journaled += await write(res, busy, start, WRITE_CHUNK)
            gc.collect()
        await redis.zrem(keys.live_sessions, *todo)
        while await timed.run_once():
            pass
        assert journaled == sum(len(entries) for entries in todo.values())
        await verify(dsn, res, todo)
        return Sample(journaled, timed.cpu_s, timed.wall_s, timed.redis_cpu_s, timed.pg_cpu_s)
    finally:
        await writer.stop()
        await engine.dispose()
        await _delete_prefix(redis, prefix)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _delete_prefix(redis: Redis, prefix: str) -> None:
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await redis.delete(*batch)
            batch = []
    if batch:
        await redis.delete(*batch)


async def main(args: argparse.Namespace) -> None:
    profile = cProfile.Profile() if args.profile else None
    samples: list[Sample] = []
    for k in range(args.runs):
        s = await one_run(args, profile)
        samples.append(s)
        print(
            f"run {k + 1}: {s.events} events archived exactly once, "
            f"{s.cpu_us_per_event:.1f} µs CPU/event, {s.events_per_s:,.0f} events/s "
            f"({s.wall_s:.2f} s wall); Redis {s.redis_us_per_event:.1f}, "
            f"PostgreSQL {s.pg_us_per_event:.1f} µs CPU/event",
            flush=True,
        )
    cpu = statistics.median(s.cpu_us_per_event for s in samples)
    rate = statistics.median(s.events_per_s for s in samples)
    redis_us = statistics.median(s.redis_us_per_event for s in samples)
    pg_us = statistics.median(s.pg_us_per_event for s in samples)
    mode = f"live, {args.per_pass} events per session per pass" if args.per_pass else "backlog"
    if args.per_pass and args.idle:
        mode += f", {args.idle} idle live sessions"
    print(
        f"median of {len(samples)}: {cpu:.1f} µs CPU/event, {rate:,.0f} events/s; "
        f"Redis {redis_us:.1f}, PostgreSQL {pg_us:.1f} µs CPU/event "
        f"({args.sessions} sessions × {args.events} events, {mode})"
    )
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"profile of the drains: {args.profile}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--runs", type=int, default=3, help="repetitions (fresh database each)")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--events", type=int, default=2000, help="events per session")
    p.add_argument("--participants", type=int, default=40, help="participants per session")
    p.add_argument(
        "--per-pass",
        type=int,
        default=0,
        metavar="N",
        help="live mode: N events per session journaled between passes (0: backlog)",
    )
    p.add_argument(
        "--idle",
        type=int,
        default=0,
        metavar="K",
        help="live mode: K more live sessions, quiet after their participants joined",
    )
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the drains here")
    parsed = p.parse_args()
    if parsed.idle and not parsed.per_pass:
        p.error("--idle needs --per-pass")
    asyncio.run(main(parsed))
