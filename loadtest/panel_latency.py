"""Panel latency: time from a participant's event leaving the client to its delta on the
instructor's panel (`python -m loadtest.panel_latency`; BENCHMARKS.md has the command).

Against a running server: schedules one session of `--participants` learners, connects them
all (heartbeating), opens the panel websocket, then `--samples` times has a random learner send
an engagement and waits for the panel delta in which that learner's engagement count has grown.
Run it beside `loadtest.run` to measure under ingest load. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import orjson
from websockets.asyncio.client import ClientConnection, connect


def _token(secret: str, user: str, sid: str, role: str) -> str:
    claims = {"sub": user, "sid": sid, "role": role, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


async def _heartbeat(ws: ClientConnection, interval: float) -> None:
    with contextlib.suppress(Exception):
        while True:
            body = {"id": secrets.token_hex(8), "type": "heartbeat", "camera": True}
            await ws.send(orjson.dumps(body).decode())
            await asyncio.sleep(interval)


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    sid = f"panel-{secrets.token_hex(4)}"
    start = datetime.now(UTC) - timedelta(minutes=1)
    ws_base = args.url.replace("http://", "ws://")
    headers = {"Authorization": f"Bearer {args.admin_key}"}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=30) as api:
        r = await api.put(
            "/v1/courses/panel-latency",
            json={
                "title": "Panel latency",
                "policy": "platform",
                "delivery": "synchronous",
                "starts_on": (start - timedelta(days=1)).date().isoformat(),
                "ends_on": (start + timedelta(days=30)).date().isoformat(),
            },
        )
        r.raise_for_status()
        roster = [{"user_id": f"p{i}", "role": "learner"} for i in range(args.participants)]
        roster.append({"user_id": "teacher", "role": "instructor"})
        r = await api.put(
            f"/v1/sessions/{sid}",
            json={
                "course_id": "panel-latency",
                "scheduled_start": start.isoformat().replace("+00:00", "Z"),
                "duration_minutes": 120,
                "roster": roster,
            },
        )
        r.raise_for_status()
    async with contextlib.AsyncExitStack() as stack:
        sockets: list[ClientConnection] = []
        tasks: list[asyncio.Task[None]] = []
        for i in range(args.participants):
            tok = _token(args.token_secret, f"p{i}", sid, "learner")
            url = f"{ws_base}/v1/live/{sid}?token={tok}"
            ws = await stack.enter_async_context(connect(url, compression=None))
            welcome = orjson.loads(await ws.recv())
            sockets.append(ws)
            tasks.append(asyncio.create_task(_heartbeat(ws, welcome["heartbeat_interval_s"])))
            tasks.append(asyncio.create_task(_drain(ws)))
        teacher = _token(args.token_secret, "teacher", sid, "instructor")
        panel = await stack.enter_async_context(
            connect(f"{ws_base}/v1/live/{sid}/panel?token={teacher}", compression=None)
        )
        snapshot = orjson.loads(await panel.recv())
        counts = {p["user_id"]: p["engagements"] for p in snapshot["participants"]}
        await asyncio.sleep(1.5)  # let the join deltas pass
        latencies: list[float] = []
        rng = random.Random(7)
        for n in range(args.samples):
            i = rng.randrange(args.participants)
            user = f"p{i}"
            want = counts.get(user, 0) + 1
            sent = time.perf_counter()
            body = {"id": f"lat-{n}", "type": "engagement", "kind": "chat"}
            await sockets[i].send(orjson.dumps(body).decode())
            async with asyncio.timeout(10):
                while True:
                    message = orjson.loads(await panel.recv())
                    for p in message.get("participants", []):
                        counts[p["user_id"]] = p["engagements"]
                    if counts.get(user, 0) >= want:
                        break
            latencies.append((time.perf_counter() - sent) * 1000)
            if not args.quiet:
                print(f"\r{n + 1}/{args.samples} samples", end="", file=sys.stderr, flush=True)
            await asyncio.sleep(rng.uniform(0.05, 0.3))
        for task in tasks:
            task.cancel()
    latencies.sort()
    return {
        "session_id": sid,
        "participants": args.participants,
        "samples": len(latencies),
        "panel_p50_ms": statistics.median(latencies),
        "panel_p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "panel_max_ms": latencies[-1],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.panel_latency", description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8100")
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--admin-key", default=os.environ.get("HADIR_ADMIN_KEY", ""))
    p.add_argument("--token-secret", default=os.environ.get("HADIR_TOKEN_SECRET", ""))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    result = asyncio.run(measure(args))
    if not args.quiet:
        print(file=sys.stderr)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
