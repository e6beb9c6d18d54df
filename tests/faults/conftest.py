"""Fixtures of the fault tests: a Redis key prefix of their own, cleaned afterwards, and
`hadir serve` processes on it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from tests.conftest import REDIS, delete_keys
from tests.faults.support import Serve, ServeProcess


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Not the suite's prefix: the in-process test server's liveness ticks would hide a gap."""
    value = f"fault{secrets.token_hex(4)}"
    yield value
    await delete_keys(value)


@pytest.fixture
def redis_url() -> str:
    """The Redis the processes use (a test module may name its own)."""
    return REDIS


@pytest.fixture
async def serve(database: str, redis_url: str, prefix: str) -> AsyncIterator[Serve]:
    """Starts `hadir serve` processes on the test database, `redis_url` and `prefix`."""
    started: list[ServeProcess] = []

    async def start(n: int = 1, **env: str) -> list[ServeProcess]:
        servers = [ServeProcess(database, redis_url, prefix, **env) for _ in range(n)]
        started.extend(servers)
        await asyncio.gather(*(s.start() for s in servers))
        return servers

    yield start
    await asyncio.gather(*(s.stop() for s in started))
