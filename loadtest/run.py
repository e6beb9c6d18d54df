"""The load generator: `python -m loadtest.run ...` (BENCHMARKS.md has the exact commands).

Simulates S sessions × P participants against a running Hadir server (or the echo baseline,
`--target echo`), in one of two modes:

- throughput: every connection keeps up to `--window` unacked events in flight (or the crowd
  offers `--rate` events/s in total); reports events/s and ack latency p50/p95/p99;
- capacity: every participant heartbeats at the server's interval, toggles its camera and
  engages now and then; reports resident memory per connection, CPU and missed heartbeats.

Both may add drop-and-reconnect (`--drop-frac`), early leavers (`--leave-frac`) and a mass
drop (`--mass-drop-at`). Against Hadir the generator schedules its own sessions through the
API (admin key), mints its own tokens (HS256 with the server's secret), and at the end reads
every session's journal from Redis: events acked but not journaled (lost) and events
journaled twice must both be 0. One JSON object goes to stdout (or `--json`), progress to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import httpx
import jwt
import orjson
from redis.asyncio import Redis

from app.kit.keys import Keys
from loadtest import proc
from loadtest.client import Behaviour, Crowd, Participant

CLIENT_TYPES = frozenset({"heartbeat", "camera", "engagement", "leave"})


@dataclass
class Options:
    target: str
    url: str
    mode: str
    sessions: int
    participants: int
    duration: float
    warmup: float
    ramp: float
    window: int
    rate: float
    heartbeat_s: float | None
    drop_frac: float
    leave_frac: float
    mass_drop_at: float | None
    mass_drop_frac: float
    server_pid: int | None
    admin_key: str
    token_secret: str
    redis_url: str
    database_url: str | None
    redis_prefix: str
    run_id: str
    verify: bool
    concurrency: int
    quiet: bool


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__)
    p.add_argument("--target", choices=("hadir", "echo"), default="hadir")
    p.add_argument("--url", default="http://127.0.0.1:8100", help="server base URL")
    p.add_argument("--mode", choices=("throughput", "capacity"), default="throughput")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--participants", type=int, default=10, help="per session")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--ramp", type=float, default=1.0, help="seconds over which joins spread")
    p.add_argument("--window", type=int, default=8, help="unacked events per connection")
    p.add_argument("--rate", type=float, default=0.0, help="offered events/s; 0: window-bound")
    p.add_argument("--heartbeat-s", type=float, default=None, help="default: the server's")
    p.add_argument("--drop-frac", type=float, default=0.0, help="participants that drop once")
    p.add_argument("--leave-frac", type=float, default=0.0, help="participants that leave early")
    p.add_argument("--mass-drop-at", type=float, default=None, help="seconds into the window")
    p.add_argument("--mass-drop-frac", type=float, default=0.5)
    p.add_argument("--server-pid", type=int, default=None, help="for server CPU and memory")
    p.add_argument("--admin-key", default=os.environ.get("HADIR_ADMIN_KEY", ""))
    p.add_argument("--token-secret", default=os.environ.get("HADIR_TOKEN_SECRET", ""))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="also look for acked events in the archive (the journal is trimmed once archived)",
    )
    p.add_argument("--redis-prefix", default=os.environ.get("HADIR_REDIS_PREFIX", "hadir"))
    p.add_argument("--run-id", default=None, help="session ids are lt-<run id>-<n>")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--concurrency", type=int, default=200, help="handshakes at once")
    p.add_argument("--json", default=None, help="write the result here instead of stdout")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    a = p.parse_args(argv)
    o = Options(
        target=a.target,
        url=a.url.rstrip("/"),
        mode=a.mode,
        sessions=a.sessions,
        participants=a.participants,
        duration=a.duration,
        warmup=a.warmup,
        ramp=a.ramp,
        window=a.window,
        rate=a.rate,
        heartbeat_s=a.heartbeat_s,
        drop_frac=a.drop_frac,
        leave_frac=a.leave_frac,
        mass_drop_at=a.mass_drop_at,
        mass_drop_frac=a.mass_drop_frac,
        server_pid=a.server_pid,
        admin_key=a.admin_key,
        token_secret=a.token_secret,
        redis_url=a.redis_url,
        database_url=a.database_url,
        redis_prefix=a.redis_prefix,
        run_id=a.run_id or secrets.token_hex(4),
        verify=not a.no_verify and a.target == "hadir",
        concurrency=a.concurrency,
        quiet=a.quiet,
    )
    o_json: str | None = a.json
    _json_path[0] = o_json
    return o


_json_path: list[str | None] = [None]


def session_id(o: Options, n: int) -> str:
    return f"lt-{o.run_id}-{n}"


def mint(secret: str, user_id: str, sid: str) -> str:
    claims = {"sub": user_id, "sid": sid, "role": "learner", "exp": int(time.time()) + 86400}
    return jwt.encode(claims, secret, algorithm="HS256")


async def schedule(o: Options) -> None:
    await schedule_sessions(
        o.url, o.admin_key, [session_id(o, n) for n in range(o.sessions)], o.participants
    )


async def schedule_sessions(
    url: str, admin_key: str, session_ids: list[str], participants: int
) -> None:
    """A course and the sessions, started a minute ago, with learners u0..u<P-1>."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        r = await api.put(
            "/v1/courses/loadtest",
            json={
                "title": "Load test",
                "policy": "platform",
                "delivery": "synchronous",
                "starts_on": (start - timedelta(days=1)).date().isoformat(),
                "ends_on": (start + timedelta(days=1)).date().isoformat(),
            },
        )
        r.raise_for_status()
        roster = [{"user_id": f"u{i}", "role": "learner"} for i in range(participants)]
        for sid in session_ids:
            r = await api.put(
                f"/v1/sessions/{sid}",
                json={
                    "course_id": "loadtest",
                    "kind": "class",
                    "mode": "online",
                    "scheduled_start": start.isoformat().replace("+00:00", "Z"),
                    "duration_minutes": 240,
                    "roster": roster,
                },
            )
            r.raise_for_status()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def progress(o: Options, crowd: Crowd, started: float) -> None:
    if o.quiet:
        return
    s = crowd.stats
    sys.stderr.write(
        f"\r{time.perf_counter() - started:6.1f}s live={crowd.live():>6} sent={s.sent:>9} "
        f"acked={s.acked:>9} inflight={crowd.inflight():>6} recon={s.reconnects:>5} "
        f"missed_hb={s.missed_heartbeats:>4} errors={s.errors:>3}   "
    )
    sys.stderr.flush()


async def verify(o: Options, crowd: Crowd) -> dict[str, Any]:
    return await check_journal(
        o.redis_url, o.redis_prefix, crowd.participants, database_url=o.database_url
    )


async def archived_events(
    database_url: str, session_ids: list[str]
) -> Counter[tuple[str, str, str]]:
    """How often each client event (session, user, event id) of these sessions is in
    PostgreSQL."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT session_id, user_id, event_id, count(*) AS n FROM events"
            " WHERE session_id = ANY($1::text[]) AND type = ANY($2::text[]) GROUP BY 1, 2, 3",
            session_ids,
            sorted(CLIENT_TYPES),
        )
    finally:
        await conn.close()
    return Counter({(r["session_id"], r["user_id"], r["event_id"]): int(r["n"]) for r in rows})


async def check_journal(
    redis_url: str,
    prefix: str,
    participants: list[Participant],
    *,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Compare what the participants sent and had acked with their sessions' journals and,
    with `database_url`, the archive (the archiver trims archived entries from the journal)."""
    redis = Redis.from_url(redis_url)
    keys = Keys(prefix)
    journaled: Counter[tuple[str, str, str]] = Counter()
    outages: list[dict[str, Any]] = []
    try:
        for sid in sorted({p.session_id for p in participants}):
            stream = keys.session(sid).journal
            last = "-"
            while True:
                rows = cast(
                    list[tuple[bytes, dict[bytes, bytes]]],
                    await redis.xrange(stream, min=last, max="+", count=10_000),
                )
                if last != "-":
                    rows = rows[1:]
                if not rows:
                    break
                for _, fields in rows:
                    e = orjson.loads(fields[b"e"])
                    if e["type"] in CLIENT_TYPES:
                        journaled[(sid, e["user_id"], e["id"])] += 1
                    elif e["type"] == "outage":
                        e["session_id"] = sid
                        outages.append(e)
                last = rows[-1][0].decode()
    finally:
        await redis.aclose()
    archived: Counter[tuple[str, str, str]] = Counter()
    if database_url:
        archived = await archived_events(database_url, sorted({p.session_id for p in participants}))
    stored = set(journaled) | set(archived)
    sent = acked = lost = unacked_journaled = phantom = 0
    for p in participants:
        sent += len(p.sent_ids)
        acked += len(p.acked_ids)
        for eid in p.acked_ids:
            if (p.session_id, p.user_id, eid) not in stored:
                lost += 1
        for eid in p.sent_ids - p.acked_ids:
            if (p.session_id, p.user_id, eid) in stored:
                unacked_journaled += 1
    sent_keys = {(p.session_id, p.user_id, e) for p in participants for e in p.sent_ids}
    ours = {(p.session_id, p.user_id) for p in participants}
    phantom = sum(1 for k in journaled if k[:2] in ours and k not in sent_keys)
    client_ids = {k for k in archived if k[:2] in ours and k in sent_keys}
    return {
        "sent": sent,
        "acked": acked,
        "journaled": sum(1 for k in stored if k[:2] in ours),  # in the journal or archived
        "journaled_not_acked": unacked_journaled,  # in flight when a connection broke
        "lost": lost,  # acked, neither in the journal nor archived: must be 0
        # must be 0: twice in the journal, or twice in the archive
        "counted_twice": sum(1 for c in journaled.values() if c > 1)
        + sum(1 for k in client_ids if archived[k] > 1),
        "never_sent": phantom,
        "outage_entries": len(outages),
        "outages": outages,
        "archived": len(client_ids) if database_url else None,
    }


async def run(o: Options) -> dict[str, Any]:
    if o.target == "hadir":
        await schedule(o)
    crowd = Crowd(o.rate if o.mode == "throughput" else 0.0)
    behaviour = Behaviour(
        mode=o.mode,
        window=o.window,
        heartbeat_s=o.heartbeat_s if o.target == "hadir" else (o.heartbeat_s or 10.0),
        expects_welcome=o.target == "hadir",
    )
    ws_base = o.url.replace("http://", "ws://", 1)
    for n in range(o.sessions):
        sid = session_id(o, n)
        for i in range(o.participants):
            uid = f"u{i}"
            url = f"{ws_base}/v1/live/{sid}"
            if o.target == "hadir":
                url += f"?token={mint(o.token_secret, uid, sid)}"
            crowd.participants.append(
                Participant(crowd, len(crowd.participants), sid, uid, url, behaviour)
            )
    total = len(crowd.participants)
    pid = o.server_pid
    rss_idle = proc.rss_bytes(pid) if pid else 0
    started = time.perf_counter()

    # Staggered joins, at most `concurrency` handshakes at once.
    gate = asyncio.Semaphore(o.concurrency)

    async def join(p: Participant, at: float) -> None:
        await asyncio.sleep(at)
        async with gate:
            await p.connect()

    joins = [
        asyncio.create_task(join(p, o.ramp * i / total)) for i, p in enumerate(crowd.participants)
    ]
    deadline = time.perf_counter() + o.ramp + 60
    while time.perf_counter() < deadline and crowd.live() < total:
        progress(o, crowd, started)
        await asyncio.sleep(0.25)
    await asyncio.gather(*joins)
    connected_s = time.perf_counter() - started
    connected = crowd.live()

    # Behaviours scheduled within the measured window.
    rnd = random.Random(7)
    window_start = time.perf_counter() + o.warmup
    window_end = window_start + o.duration
    for p in crowd.participants:
        if rnd.random() < o.drop_frac:
            at = o.warmup + rnd.random() * o.duration * 0.8
            crowd.later(at, functools.partial(p.drop, 0.5 + rnd.random() * 2))
        if rnd.random() < o.leave_frac:
            at = o.warmup + rnd.random() * o.duration * 0.9
            crowd.later(at, p.leave)
    if o.mass_drop_at is not None:
        victims = [p for p in crowd.participants if rnd.random() < o.mass_drop_frac]

        def mass_drop() -> None:
            for v in victims:
                v.drop(0.5 + rnd.random() * 4)

        crowd.later(o.warmup + o.mass_drop_at, mass_drop)

    pacer = None
    if o.mode == "throughput" and o.rate > 0:
        pacer = asyncio.create_task(crowd.pace(window_end))
    await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
    # The window: server CPU, generator CPU, memory.
    rss_loaded = proc.rss_bytes(pid) if pid else 0
    cpu0 = proc.cpu_s(pid) if pid else 0.0
    gen0 = sum(os.times()[:2])
    crowd.stats.window_open = True
    t0 = time.perf_counter()
    while time.perf_counter() < window_end:
        progress(o, crowd, started)
        await asyncio.sleep(min(0.5, max(0.0, window_end - time.perf_counter())))
    crowd.stats.window_open = False
    elapsed = time.perf_counter() - t0
    cpu1 = proc.cpu_s(pid) if pid else 0.0
    gen1 = sum(os.times()[:2])
    rss_end = proc.rss_bytes(pid) if pid else 0
    if pacer is not None:
        await pacer
    # Let what is in flight be acked (bounded), then leave.
    crowd.stopping = True
    settle = time.perf_counter() + 10
    while crowd.inflight() and time.perf_counter() < settle:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    for p in crowd.participants:
        p.finish()
    await asyncio.sleep(1.0)
    if not o.quiet:
        progress(o, crowd, started)
        sys.stderr.write("\n")

    s = crowd.stats
    lat = s.latencies
    events = s.acked_in_window
    result: dict[str, Any] = {
        "target": o.target,
        "mode": o.mode,
        "run_id": o.run_id,
        "sessions": o.sessions,
        "participants": o.participants,
        "connections": total,
        "connected": connected,
        "connect_s": round(connected_s, 2),
        "window_s": round(elapsed, 2),
        "offered_rate": o.rate,
        "events_per_s": events / elapsed if elapsed else 0.0,
        "events_in_window": events,
        "ack_p50_ms": percentile(lat, 0.50) * 1000,
        "ack_p95_ms": percentile(lat, 0.95) * 1000,
        "ack_p99_ms": percentile(lat, 0.99) * 1000,
        "ack_mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
        "server_cpu_s": cpu1 - cpu0,
        "server_cpu_pct": 100 * (cpu1 - cpu0) / elapsed if elapsed else 0.0,
        "server_cpu_us_per_event": (cpu1 - cpu0) / events * 1e6 if events else float("nan"),
        "generator_cpu_pct": 100 * (gen1 - gen0) / elapsed if elapsed else 0.0,
        "server_rss_idle_mib": rss_idle / 2**20,
        "server_rss_loaded_mib": rss_loaded / 2**20,
        "server_rss_end_mib": rss_end / 2**20,
        "rss_per_connection_kib": (
            (rss_loaded - rss_idle) / 1024 / connected if pid and connected else None
        ),
        "sent": s.sent,
        "resent": s.resent,
        "acked": s.acked,
        "heartbeats": s.heartbeats,
        "missed_heartbeats": s.missed_heartbeats,
        "errors": s.errors,
        "connect_failures": s.connect_failures,
        "drops": s.drops,
        "reconnects": s.reconnects,
        "lost_connections": s.lost_connections,
        "server_closes": {str(k): v for k, v in sorted(s.closes.items())},
    }
    if o.verify:
        result["check"] = await verify(o, crowd)
    return result


def main(argv: list[str] | None = None) -> int:
    o = parse(argv)
    import uvloop

    result = uvloop.run(run(o))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if _json_path[0]:
        with open(_json_path[0], "w") as f:
            f.write(text)
    else:
        print(text)
    if not o.quiet:
        print(
            f"{o.target} {o.mode}: {result['events_per_s']:.0f} events/s, "
            f"p99 {result['ack_p99_ms']:.1f} ms, "
            f"server {result['server_cpu_us_per_event']:.1f} µs/event",
            file=sys.stderr,
        )
    check = result.get("check")
    if check and (check["lost"] or check["counted_twice"]):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
