"""Finalisation benchmark: `python -m loadtest.bench_finalise [--runs 3] [--learners 1000]`.

For a 2-hour session of `--learners` learners whose events are imported in batches, measures
(1) archiver throughput: imported events per second until all are in PostgreSQL, and
(2) the time from `POST /end` to results available, less `HADIR_FINALISE_DELAY_S`.
Uses a fresh database on `BENCH_POSTGRES_URL` (default the local test server) and Redis on
`BENCH_REDIS_URL`; writes the medians to docs/bench_finalise.md.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import uvicorn
from sqlalchemy import func, select

from app.kit.db import events
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
KEY = "bench-admin-key"
DELAY_S = 1.0


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def learner_events(uid: str, start: datetime, n: int) -> list[dict[str, Any]]:
    """A plausible 2-hour trace: early join, a drop and rejoin, camera changes, engagements."""
    k = int(uid[1:])

    def m(minutes: float) -> str:
        return iso(start + timedelta(minutes=minutes))

    out: list[dict[str, Any]] = [
        {"id": "j1", "type": "join", "user_id": uid, "ts": m(-1 + (k % 5))},
        {"id": "c1", "type": "camera", "on": True, "user_id": uid, "ts": m(1)},
        {"id": "d1", "type": "drop", "user_id": uid, "ts": m(40 + k % 7)},
        {"id": "j2", "type": "join", "user_id": uid, "ts": m(40.5 + k % 7)},
        {"id": "c2", "type": "camera", "on": False, "user_id": uid, "ts": m(80)},
        {"id": "l1", "type": "leave", "user_id": uid, "ts": m(115 + k % 10)},
    ]
    for e in range(n):
        out.append(
            {
                "id": f"e{e}",
                "type": "engagement",
                "kind": "chat",
                "user_id": uid,
                "ts": m(5 + e * 10),
            }
        )
    return out


async def one_run(learners: int) -> tuple[float, float, int]:
    name = f"hadir_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+asyncpg://" + PG.rsplit("/", 1)[0].split("://", 1)[1] + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        HADIR_ADMIN_KEY=KEY,
        HADIR_REDIS_PREFIX=f"b{secrets.token_hex(4)}",
        HADIR_FINALISE_DELAY_S=DELAY_S,
    )
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
        ) as api:
            start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
            await api.put(
                "/v1/courses/bench",
                json={
                    "title": "Bench",
                    "policy": "platform",
                    "delivery": "blended",
                    "starts_on": (start - timedelta(days=30)).date().isoformat(),
                    "ends_on": (start + timedelta(days=60)).date().isoformat(),
                },
            )
            roster = [{"user_id": f"u{i}", "role": "learner"} for i in range(learners)]
            roster.append({"user_id": "teacher", "role": "instructor"})
            r = await api.put(
                "/v1/sessions/bench-s",
                json={
                    "course_id": "bench",
                    "scheduled_start": iso(start),
                    "duration_minutes": 120,
                    "roster": roster,
                },
            )
            assert r.status_code in (200, 201), r.text
            all_events = [e for i in range(learners) for e in learner_events(f"u{i}", start, 12)]
            t0 = time.perf_counter()
            for i in range(0, len(all_events), 5000):
                r = await api.post(
                    "/v1/sessions/bench-s/events", json={"events": all_events[i : i + 5000]}
                )
                assert r.status_code == 200, r.text
            engine = app.state.resources.engine
            while True:
                async with engine.connect() as conn:
                    stored = await conn.scalar(select(func.count()).select_from(events))
                if stored >= len(all_events):
                    break
                await asyncio.sleep(0.02)
            throughput = len(all_events) / (time.perf_counter() - t0)
            t1 = time.perf_counter()
            r = await api.post("/v1/sessions/bench-s/end")
            assert r.status_code == 200
            while True:
                r = await api.get("/v1/sessions/bench-s/attendance")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.01)
            after_delay = time.perf_counter() - t1 - DELAY_S
            assert len(r.json()["records"]) == learners + 1
            return throughput, after_delay, len(all_events)
    finally:
        server.should_exit = True
        await task
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(runs: int, learners: int) -> str:
    rows = []
    for k in range(runs):
        rate, finalise, n = await one_run(learners)
        rows.append((rate, finalise))
        print(f"run {k + 1}: {n} events, archiver {rate:,.0f} events/s, end→results "
              f"{finalise:.2f} s after the {DELAY_S:g} s delay")  # fmt: skip
    rate = statistics.median(r for r, _ in rows)
    fin = statistics.median(f for _, f in rows)
    text = f"""# Finalisation benchmark

Command: `python -m loadtest.bench_finalise --runs {runs} --learners {learners}`
(PostgreSQL 15 and Redis 7 on the same machine; one server process.)

A 2-hour class of {learners} learners, {n} imported events (join, drop and rejoin, camera
changes, 12 engagements and a leave each), imported in batches of 5,000.

| measure | median of {runs} runs |
|---|---|
| archiver throughput (import start → all events in PostgreSQL) | {rate:,.0f} events/s |
| `POST /end` → results available, after the {DELAY_S:g} s finalise delay | {fin:.2f} s |

Target: results within 2 s after the finalise delay.
"""
    return text


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--learners", type=int, default=1000)
    a = p.parse_args()
    report = asyncio.run(main(a.runs, a.learners))
    Path("docs").mkdir(exist_ok=True)
    Path("docs/bench_finalise.md").write_text(report)
    print(report)
