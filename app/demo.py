"""`hadir demo`: the service on embedded (or configured) servers with a simulated live class.

A 3-minute class with 24 learners runs in real time through the real websocket protocol:
on-time joiners, late joiners, one who never comes and one who comes too late, cameras off in
a camera-required class, a drop and return within the reconnect grace, an early leaver, and a
short platform outage (a mass drop). The class's live-session thresholds are scaled to its
3 minutes (late after 20 s instead of 10 min, and so on) as session overrides, the way any
course may set its own; every rule applied is the real one. The demo prints the panel and
dashboard links, narrates what happens, ends the class, and prints the finalised table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from app.kit.auth import issue_token

DURATION_S = 180
OVERRIDES = {
    "late_after": "20s",
    "absent_after": "60s",
    "reconnect_grace": "15s",
    "outage_detect_window": "10s",
    "mentor_grace": "20s",
    "end_grace": "30s",
}
NAMES = [
    "Amal Nasser",
    "Badr Aziz",
    "Dana Haddad",
    "Faisal Omar",
    "Ghada Salem",
    "Hani Youssef",
    "Iman Qasim",
    "Jamal Saeed",
    "Khalid Mansour",
    "Lama Farouk",
    "Maha Saleh",
    "Nabil Karim",
    "Omar Hijazi",
    "Rana Khoury",
    "Sami Darwish",
    "Tala Mahmoud",
    "Umar Rashid",
    "Wafa Zein",
    "Yara Nassar",
    "Zaid Hamdan",
    "Huda Barakat",
    "Karim Fakhoury",
    "Lina Azzam",
    "Majed Tamimi",
]


@dataclass
class Script:
    """What one simulated learner does, in seconds after the start."""

    join: float | None
    leave: float | None = None
    camera: bool = True
    engages: bool = True
    drop_at: float | None = None
    back_after: float = 8.0
    in_outage: bool = False


def scripts(learners: int, rng: random.Random) -> dict[str, Script]:
    plan: dict[str, Script] = {}
    for i in range(learners):
        plan[f"learner-{i + 1:02d}"] = Script(join=rng.uniform(0, 12), in_outage=True)
    ids = list(plan)
    plan[ids[1]] = Script(join=rng.uniform(25, 45))  # late
    plan[ids[2]] = Script(join=rng.uniform(30, 50), engages=False)  # late, silent
    plan[ids[3]] = Script(join=None)  # never comes
    plan[ids[4]] = Script(join=75.0)  # after the absent threshold
    plan[ids[5]] = Script(join=3.0, camera=False)  # camera off all class
    plan[ids[6]] = Script(join=4.0, engages=False)  # no engagement
    plan[ids[7]] = Script(join=5.0, leave=100.0)  # leaves before 80%
    plan[ids[8]] = Script(join=2.0, drop_at=60.0, back_after=6.0)  # drop, back in grace
    plan[ids[9]] = Script(join=2.0, drop_at=70.0, back_after=40.0)  # drop, back too late
    return plan


class Narrator:
    def __init__(self, start: float) -> None:
        self.start = start

    def say(self, text: str) -> None:
        t = time.time() - self.start
        print(f"  [{int(t) // 60:02d}:{int(t) % 60:02d}] {text}", flush=True)


async def participant(
    ws_base: str,
    sid: str,
    user: str,
    name: str,
    script: Script,
    start: float,
    secret: str,
    outage: asyncio.Event,
    narrator: Narrator,
) -> None:
    if script.join is None:
        return
    await asyncio.sleep(max(0.0, start + script.join - time.time()))
    tok = issue_token(
        secret, user_id=user, role="learner", session_id=sid, exp=time.time() + 3600, name=name
    )
    url = f"{ws_base}/v1/live/{sid}?token={tok}"
    rng = random.Random(user)
    dropped_once = False
    while time.time() < start + DURATION_S:
        if dropped_once:
            narrator.say(f"{name} reconnected")
        else:
            narrator.say(f"{name} joined" + (" late" if script.join > 20 else ""))
        try:
            async with connect(url, compression=None) as ws:
                welcome = orjson.loads(await ws.recv())
                interval = float(welcome["heartbeat_interval_s"])
                reason = await _attend(ws, script, start, interval, rng, outage, dropped_once)
        except Exception as exc:
            reason = f"error:{exc}"
        if reason == "left":
            narrator.say(f"{name} left early")
            return
        if reason in ("dropped", "outage"):
            dropped_once = True
            narrator.say(
                f"{name} lost connection" + (" (platform outage)" if reason == "outage" else "")
            )
            await asyncio.sleep(script.back_after if reason == "dropped" else 6.0)
            continue
        return


async def _attend(
    ws: ClientConnection,
    script: Script,
    start: float,
    interval: float,
    rng: random.Random,
    outage: asyncio.Event,
    dropped_once: bool,
) -> str:
    camera = script.camera
    next_beat = 0.0
    engaged_at = time.time() + rng.uniform(10, 60)
    while True:
        now = time.time()
        elapsed = now - start
        if elapsed >= DURATION_S + 5:
            await ws.close()
            return "ended"
        if script.leave is not None and elapsed >= script.leave:
            await _send(ws, {"id": secrets.token_hex(8), "type": "leave"})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.recv(), 2)
            return "left"
        if script.drop_at is not None and not dropped_once and elapsed >= script.drop_at:
            ws.transport.abort()
            return "dropped"
        if script.in_outage and outage.is_set() and not dropped_once:
            ws.transport.abort()
            return "outage"
        if now >= next_beat:
            await _send(
                ws,
                {
                    "id": secrets.token_hex(8),
                    "type": "heartbeat",
                    "camera": camera,
                    "mic": True,
                    "visible": True,
                },
            )
            next_beat = now + interval
        if script.engages and now >= engaged_at:
            kind = rng.choice(["question", "chat", "poll_vote", "response", "hand_raise"])
            await _send(ws, {"id": secrets.token_hex(8), "type": "engagement", "kind": kind})
            engaged_at = now + rng.uniform(30, 90)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)


async def _send(ws: ClientConnection, body: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(body).decode())


async def instructor(ws_base: str, sid: str, secret: str, start: float) -> None:
    tok = issue_token(
        secret,
        user_id="instructor-1",
        role="instructor",
        session_id=sid,
        exp=time.time() + 3600,
        name="Dr. Salma Idris",
    )
    try:
        async with connect(f"{ws_base}/v1/live/{sid}?token={tok}", compression=None) as ws:
            interval = float(orjson.loads(await ws.recv())["heartbeat_interval_s"])
            next_beat = 0.0
            while time.time() < start + DURATION_S + 5:
                if time.time() >= next_beat:
                    beat = {"id": secrets.token_hex(8), "type": "heartbeat", "camera": True}
                    await _send(ws, beat)
                    next_beat = time.time() + interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.recv(), max(0.05, next_beat - time.time()))
    except Exception as exc:
        print(f"  instructor connection ended: {exc}", file=sys.stderr)


def print_table(body: dict[str, Any], names: dict[str, str]) -> None:
    session = body["session"]
    print(
        f"\nFinalised: status {session['status']}, fault ratio "
        f"{session['fault_ratio']:.1%}, revision {session['revision']}"
    )
    print(f"{'participant':<22} {'status':<10} {'credit':>6} {'present':>8}  reasons")
    for r in sorted(body["records"], key=lambda r: (r["role"] != "learner", r["user_id"])):
        name = names.get(r["user_id"], r["user_id"])
        print(
            f"{name:<22} {r['status']:<10} {r['credit']:>6.2f} {r['present_s']:>7.0f}s  "
            f"{', '.join(r['reasons']) or '-'}"
        )


async def simulate(base: str, admin_key: str, secret: str, learners: int, seed: int) -> int:
    ws_base = base.replace("http://", "ws://")
    sid = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    start_dt = datetime.now(UTC) + timedelta(seconds=5)
    start = start_dt.timestamp()
    rng = random.Random(seed)
    plan = scripts(learners, rng)
    names = {user: NAMES[i % len(NAMES)] for i, user in enumerate(plan)}
    names["instructor-1"] = "Dr. Salma Idris"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as api:
        r = await api.put(
            "/v1/courses/demo-course",
            json={
                "title": "Data Structures",
                "policy": "platform",
                "delivery": "blended",
                "starts_on": (start_dt - timedelta(days=14)).date().isoformat(),
                "ends_on": (start_dt + timedelta(days=60)).date().isoformat(),
            },
        )
        r.raise_for_status()
        roster = [{"user_id": u, "role": "learner", "name": names[u]} for u in plan]
        roster.append({"user_id": "instructor-1", "role": "instructor", "name": "Dr. Salma Idris"})
        r = await api.put(
            f"/v1/sessions/{sid}",
            json={
                "course_id": "demo-course",
                "kind": "class",
                "mode": "online",
                "scheduled_start": start_dt.isoformat().replace("+00:00", "Z"),
                "duration_minutes": DURATION_S // 60,
                "camera_required": True,
                "overrides": OVERRIDES,
                "roster": roster,
            },
        )
        r.raise_for_status()
        panel_tok = issue_token(
            secret,
            user_id="instructor-1",
            role="instructor",
            session_id=sid,
            exp=time.time() + 86400,
            name="Dr. Salma Idris",
        )
        me_tok = issue_token(
            secret, user_id="learner-02", role="learner", session_id=None, exp=time.time() + 86400
        )
        print(
            f"\nDemo class {sid}: {learners} learners, {DURATION_S // 60} minutes, camera required"
        )
        print(f"  Instructor's live panel:  {base}/panel/{sid}?token={panel_tok}")
        print(f"  A learner's dashboard:    {base}/me?token={me_tok}")
        print(f"  API key for this run:     {admin_key}\n", flush=True)
        narrator = Narrator(start)
        outage = asyncio.Event()

        async def platform_fault() -> None:
            await asyncio.sleep(max(0.0, start + 120 - time.time()))
            narrator.say("platform fault: most of the class drops at once")
            outage.set()

        tasks = [
            asyncio.create_task(
                participant(ws_base, sid, u, names[u], s, start, secret, outage, narrator)
            )
            for u, s in plan.items()
        ]
        tasks.append(asyncio.create_task(instructor(ws_base, sid, secret, start)))
        tasks.append(asyncio.create_task(platform_fault()))
        await asyncio.sleep(max(0.0, start + DURATION_S - time.time()))
        narrator.say("class time is over: ending the session")
        (await api.post(f"/v1/sessions/{sid}/end")).raise_for_status()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(120):
            r = await api.get(f"/v1/sessions/{sid}/attendance")
            if r.status_code == 200:
                print_table(r.json(), names)
                print(f"\nThe same as CSV: {base}/v1/sessions/{sid}/attendance?format=csv")
                return 0
            await asyncio.sleep(0.5)
        print(f"attendance not available: {r.status_code} {r.text}", file=sys.stderr)
        return 1


def run_demo(*, host: str, port: int, learners: int, seed: int, exit_after: bool) -> int:
    from app.cli import service_urls, uvicorn_options
    from app.main import create_app
    from app.migrate import upgrade
    from app.settings import get_settings

    os.environ.setdefault("HADIR_ADMIN_KEY", "demo-" + secrets.token_hex(12))
    os.environ.setdefault("HADIR_TOKEN_SECRET", secrets.token_hex(32))
    os.environ.setdefault("HADIR_FINALISE_DELAY_S", "2")
    with service_urls() as (db_url, _redis):
        upgrade(db_url)
        settings = get_settings()
        app = create_app(settings)
        options = uvicorn_options()
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))  # type: ignore[arg-type]

        async def main() -> int:
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    return 1
                await asyncio.sleep(0.05)
            base = f"http://{host}:{port}"
            print(f"Hadir is running at {base} (API docs: {base}/docs)", flush=True)
            code = await simulate(
                base, settings.admin_key or "", settings.token_secret, learners, seed
            )
            if not exit_after:
                print(
                    "\nThe service keeps running so you can look around; Ctrl-C stops it.",
                    flush=True,
                )
                await serving
            else:
                server.should_exit = True
                await serving
            return code

        return asyncio.run(main())
