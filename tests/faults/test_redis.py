"""Redis killed and restarted during load: the journal writer retries, clients re-send."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from redis import Redis
from websockets.asyncio.client import connect

from tests.faults.support import (
    Serve,
    crowd,
    finish,
    live_url,
    open_panel,
    queue_offline,
    schedule_on,
    session_ids,
    start_pacing,
    until,
    until_acked,
    until_all_live,
    until_connected,
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


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


async def test_redis_killed_and_restarted_loses_no_acked_event(
    serve: Serve, redis_server: RedisProcess, prefix: str
) -> None:
    [server] = await serve()
    c = await crowd([server], session_ids(2), participants=5, rate=400)
    pacer = start_pacing(c, 12)
    await until_acked(c, 300, 10)
    redis_server.kill()
    acked_at_kill = c.stats.acked
    await asyncio.sleep(2)
    queue_offline(c, 2)
    redis_server.start()
    await until_acked(c, acked_at_kill + 300, 15)
    await pacer
    await finish(c)
    await verify(redis_server.url, prefix, c.participants)


async def test_redis_down_past_the_retry_budget_closes_1011_and_clients_come_back(
    serve: Serve, redis_server: RedisProcess, prefix: str
) -> None:
    [server] = await serve()
    c = await crowd([server], session_ids(1), participants=4, rate=200)
    pacer = start_pacing(c, 14)
    await until_acked(c, 100, 10)
    redis_server.kill()
    await asyncio.sleep(6.5)  # the writer gives up after 5 s
    redis_server.start()
    await until(lambda: c.stats.closes.get(1011, 0) > 0, 10)
    await until_all_live(c, 15)
    await pacer
    await finish(c)
    await verify(redis_server.url, prefix, c.participants)


async def test_an_open_panel_resyncs_after_redis_restarts(
    serve: Serve, redis_server: RedisProcess
) -> None:
    [server] = await serve()
    [sid] = session_ids(1)
    await schedule_on(server, sid, learners=2)
    async with open_panel(server, sid) as panel:
        redis_server.kill()
        await asyncio.sleep(2)
        redis_server.start()
        # A learner who joins after the restart shows up on the same, still open panel.
        async with connect(live_url(server, sid, "u2")) as learner:
            assert orjson.loads(await learner.recv())["type"] == "welcome"
            await until_connected(panel, "u2", 10)
