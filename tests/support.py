"""Helpers for tests: a real server on a free port, tokens, schedule shortcuts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import uvicorn
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect

from app.cli import uvicorn_options
from app.kit.auth import issue_token
from app.kit.db import events
from app.main import create_app
from app.settings import Settings

TOKEN_SECRET = "test-token-secret-with-at-least-32-bytes"
ADMIN_KEY = "test-admin-key"
ZOOM_SECRET = "test-zoom-webhook-secret"
LIVEKIT_KEY = "APItestkey"
LIVEKIT_SECRET = "test-livekit-api-secret-with-32-bytes"
WEBHOOK_SECRET = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1rZXktMzJi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A real uvicorn server with the production websocket settings, in this event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings, freeze_heap=False)  # the test process lives on
        options = uvicorn_options()
        options["log_level"] = "error"
        self.config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]
        self.server = uvicorn.Server(self.config)
        self.task: asyncio.Task[None] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self, wait: float = 30.0) -> None:
        self.server.should_exit = True
        if self.task is None:
            return
        done, _ = await asyncio.wait({self.task}, timeout=wait)
        if not done:
            # A shutdown that hangs is a bug: show where every task is stuck.
            for task in asyncio.all_tasks():
                print(f"--- {task.get_name()} {'cancelling' if task.cancelling() else ''}")
                awaited: Any = task.get_coro()
                while awaited is not None:
                    frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
                    if frame is not None:
                        code = frame.f_code
                        print(f"    {code.co_filename}:{frame.f_lineno} {code.co_name}")
                    awaited = getattr(awaited, "cr_await", None) or getattr(
                        awaited, "ag_await", None
                    )
            raise AssertionError(f"server did not stop within {wait} s")
        self.task.result()

    @property
    def resources(self) -> Any:
        return self.app.state.resources


def token(
    user_id: str,
    session_id: str | None,
    role: str = "learner",
    *,
    secret: str = TOKEN_SECRET,
    ttl: float = 3600,
    name: str | None = None,
) -> str:
    return issue_token(
        secret, user_id=user_id, role=role, session_id=session_id, exp=time.time() + ttl, name=name
    )


def admin_client(base_url: str) -> httpx.AsyncClient:
    """An HTTP client that sends the admin key."""
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def schedule(
    api: httpx.AsyncClient,
    session_id: str,
    *,
    learners: int = 3,
    staff: tuple[str, ...] = ("teacher",),
    start: datetime | None = None,
    minutes: int = 60,
    course_id: str = "course-1",
    policy: str = "platform",
    course_overrides: dict[str, Any] | None = None,
    **session_fields: Any,
) -> dict[str, Any]:
    """Create (or update) a course and a session with learners `u1..uN` and staff."""
    start = start or datetime.now(UTC) - timedelta(minutes=1)
    r = await api.put(
        f"/v1/courses/{course_id}",
        json={
            "title": "Course",
            "policy": policy,
            "delivery": "blended",
            "starts_on": (start - timedelta(days=30)).date().isoformat(),
            "ends_on": (start + timedelta(days=60)).date().isoformat(),
            "overrides": course_overrides or {},
        },
    )
    assert r.status_code in (200, 201), r.text
    roster = [
        {"user_id": f"u{i}", "role": "learner", "name": f"Learner {i}"}
        for i in range(1, learners + 1)
    ]
    roster += [{"user_id": s, "role": "instructor", "name": s.title()} for s in staff]
    body: dict[str, Any] = {
        "course_id": course_id,
        "kind": "class",
        "mode": "online",
        "scheduled_start": iso(start),
        "duration_minutes": minutes,
        "roster": roster,
    }
    body.update(session_fields)
    r = await api.put(f"/v1/sessions/{session_id}", json=body)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


@contextlib.asynccontextmanager
async def live(
    server: Server, session_id: str, user: str, role: str = "learner"
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """An open live connection and its welcome message."""
    async with connect(
        f"{server.ws}/v1/live/{session_id}?token={token(user, session_id, role)}",
        compression=None,
    ) as ws:
        welcome = orjson.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        yield ws, welcome


async def recv_json(ws: ClientConnection, wait: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        data: dict[str, Any] = orjson.loads(await ws.recv())
    return data


async def send_json(ws: ClientConnection, body: Any) -> None:
    await ws.send(orjson.dumps(body).decode())


async def journal(server: Server, session_id: str) -> list[dict[str, Any]]:
    res = server.resources
    entries = await res.redis.xrange(res.keys.session(session_id).journal)
    return [orjson.loads(fields[b"e"]) for _, fields in entries]


async def until_archived(server: Server, session_id: str, count: int, wait: float = 10.0) -> None:
    """Wait until at least `count` events of the session are in PostgreSQL."""
    res = server.resources
    query = select(func.count()).select_from(events).where(events.c.session_id == session_id)
    async with asyncio.timeout(wait):
        while True:
            async with res.engine.connect() as db:
                if (await db.execute(query)).scalar_one() >= count:
                    return
            await asyncio.sleep(0.1)
