"""Redis killed and restarted during load: the journal writer retries, clients re-send."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.faults.support import (
    ServeProcess,
    crowd,
    finish,
    queue_offline,
    session_ids,
    until,
    verify,
)
from tests.support import free_port


class RedisProcess:
    """A redis-server of the test's own, fsyncing every write to its append-only file."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), Redis(port=self.port) as r:
                if r.ping():
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


async def test_redis_killed_and_restarted_loses_no_acked_event(
    database: str, redis_server: RedisProcess
) -> None:
    server = ServeProcess(database, redis_server.url, "fault")
    await server.start()
    try:
        c = await crowd([server], session_ids(2), participants=5, rate=400)
        pacer = asyncio.create_task(c.pace(time.perf_counter() + 12))
        await until(lambda: c.stats.acked > 300, 10)
        redis_server.kill()
        acked_at_kill = c.stats.acked
        await asyncio.sleep(2)
        queue_offline(c, 2)
        redis_server.start()
        await until(lambda: c.stats.acked > acked_at_kill + 300, 15)
        await pacer
        await finish(c)
        await verify(redis_server.url, "fault", c.participants)
    finally:
        await server.stop()


async def test_redis_down_past_the_retry_budget_closes_1011_and_clients_come_back(
    database: str, redis_server: RedisProcess
) -> None:
    server = ServeProcess(database, redis_server.url, "fault")
    await server.start()
    try:
        c = await crowd([server], session_ids(1), participants=4, rate=200)
        pacer = asyncio.create_task(c.pace(time.perf_counter() + 14))
        await until(lambda: c.stats.acked > 100, 10)
        redis_server.kill()
        await asyncio.sleep(6.5)  # the writer gives up after 5 s
        redis_server.start()
        await until(lambda: c.stats.closes.get(1011, 0) > 0, 10)
        await until(lambda: c.live() == len(c.participants), 15)
        await pacer
        await finish(c)
        await verify(redis_server.url, "fault", c.participants)
    finally:
        await server.stop()


async def test_an_open_panel_resyncs_after_redis_restarts(
    database: str, redis_server: RedisProcess
) -> None:
    import httpx
    import orjson
    from websockets.asyncio.client import connect

    from tests.support import ADMIN_KEY, schedule, token

    server = ServeProcess(database, redis_server.url, "fault")
    await server.start()
    try:
        [sid] = session_ids(1)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as api:
            await schedule(api, sid, learners=2, course_id=f"c-{sid}")
        ws = server.url.replace("http", "ws")
        teacher = token("teacher", sid, "instructor")
        async with connect(f"{ws}/v1/live/{sid}/panel?token={teacher}") as panel:
            assert orjson.loads(await panel.recv())["type"] == "snapshot"
            redis_server.kill()
            await asyncio.sleep(2)
            redis_server.start()
            # A learner who joins after the restart shows up on the same, still open panel.
            async with connect(f"{ws}/v1/live/{sid}?token={token('u2', sid)}") as learner:
                assert orjson.loads(await learner.recv())["type"] == "welcome"
                async with asyncio.timeout(10):
                    while True:
                        message = orjson.loads(await panel.recv())
                        people = {p["user_id"]: p for p in message.get("participants", [])}
                        if people.get("u2", {}).get("state") == "connected":
                            break
    finally:
        await server.stop()
