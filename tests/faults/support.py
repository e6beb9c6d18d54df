"""Fault tests: real `hadir serve` subprocesses driven by the load generator's participants."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from loadtest.client import Behaviour, Crowd, Participant
from loadtest.run import check_journal, mint, schedule_sessions
from tests.support import ADMIN_KEY, TOKEN_SECRET, admin_client, free_port, schedule, token

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """`hadir serve` in a subprocess, on a fixed port so it can be restarted in place."""

    def __init__(self, database_url: str, redis_url: str, prefix: str, **env: str) -> None:
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            HADIR_REDIS_PREFIX=prefix,
            HADIR_ADMIN_KEY=ADMIN_KEY,
            HADIR_TOKEN_SECRET=TOKEN_SECRET,
            HADIR_RATE_LIMIT_PER_S="10000",
        )
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, within: float = 20.0) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (a fixture's start, once)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, "hadir serve exited"
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("hadir serve did not start")

    def kill(self) -> None:
        """kill -9: no shutdown, nothing flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Serve(Protocol):
    """The `serve` fixture: starts `n` processes (with extra environment), stopped after the
    test."""

    async def __call__(self, n: int = 1, **env: str) -> list[ServeProcess]: ...


def session_ids(n: int) -> list[str]:
    tag = secrets.token_hex(3)
    return [f"f-{tag}-{i}" for i in range(n)]


async def crowd(
    servers: list[ServeProcess], sids: list[str], participants: int, rate: float
) -> Crowd:
    """Participants spread over the servers round robin, connected and welcomed."""
    await schedule_sessions(servers[0].url, ADMIN_KEY, sids, participants)
    c = Crowd(rate)
    behaviour = Behaviour(mode="throughput", window=8)
    n = 0
    for sid in sids:
        for i in range(participants):
            url = live_url(servers[n % len(servers)], sid, f"u{i}")
            c.participants.append(Participant(c, n, sid, f"u{i}", url, behaviour))
            n += 1
    await asyncio.gather(*(p.connect() for p in c.participants))
    await until_all_live(c, 10)
    return c


def live_url(server: ServeProcess, sid: str, user: str) -> str:
    """A learner's live websocket on `server`."""
    return f"{server.ws}/v1/live/{sid}?token={mint(TOKEN_SECRET, user, sid)}"


def start_pacing(c: Crowd, seconds: float) -> asyncio.Task[None]:
    """The crowd offers events at its rate for `seconds`, in the background."""
    return asyncio.create_task(c.pace(time.perf_counter() + seconds))


def queue_offline(c: Crowd, n: int) -> None:
    """Participants whose connection is down queue heartbeats, as the browser client does."""
    for p in c.participants:
        if not p.live:
            for _ in range(n):
                p.heartbeat()


async def until(cond: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def until_acked(c: Crowd, count: int, within: float) -> None:
    """More than `count` events of the crowd acknowledged."""
    await until(lambda: c.stats.acked > count, within)


async def until_all_live(c: Crowd, within: float) -> None:
    """Every participant of the crowd connected."""
    await until(lambda: c.live() == len(c.participants), within)


async def finish(c: Crowd, settle: float = 15.0) -> None:
    """Stop offering events, let what is unacked be acked (reconnecting as needed), leave."""
    c.offering = False
    try:
        await until(lambda: c.inflight() == 0, settle)
    except TimeoutError:
        stuck = [
            (p.index, p.live, p.link is not None, sorted(p.unacked)[:5], len(p.unacked))
            for p in c.participants
            if p.unacked
        ]
        raise AssertionError(f"unacked after {settle} s: {stuck} {c.stats}") from None
    c.stopping = True
    for p in c.participants:
        p.finish()
    await asyncio.sleep(0.5)


async def verify(redis_url: str, prefix: str, participants: Iterable[Participant]) -> Any:
    result = await check_journal(redis_url, prefix, list(participants))
    assert result["acked"] > 0
    assert result["lost"] == 0, result
    assert result["counted_twice"] == 0, result
    assert result["never_sent"] == 0, result
    return result


async def schedule_on(server: ServeProcess, sid: str, learners: int) -> None:
    """A session with learners `u1..uN` and a teacher, in a course of its own."""
    async with admin_client(server.url) as api:
        await schedule(api, sid, learners=learners, course_id=f"c-{sid}")


@contextlib.asynccontextmanager
async def open_panel(server: ServeProcess, sid: str) -> AsyncIterator[ClientConnection]:
    """The teacher's panel, past its snapshot."""
    teacher = token("teacher", sid, "instructor")
    async with connect(f"{server.ws}/v1/live/{sid}/panel?token={teacher}") as panel:
        assert orjson.loads(await panel.recv())["type"] == "snapshot"
        yield panel


async def until_connected(panel: ClientConnection, user: str, within: float) -> None:
    """Read panel messages until one shows `user` connected."""
    async with asyncio.timeout(within):
        while True:
            message = orjson.loads(await panel.recv())
            people = {p["user_id"]: p for p in message.get("participants", [])}
            if people.get(user, {}).get("state") == "connected":
                return
