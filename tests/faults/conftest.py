"""Fixtures of the fault tests: a Redis key prefix of their own, cleaned afterwards."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Not the suite's prefix: the in-process test server's liveness ticks would hide a gap."""
    value = f"fault{secrets.token_hex(4)}"
    yield value
    r = Redis.from_url(REDIS)
    async for key in r.scan_iter(match=f"{value}:*", count=1000):
        await r.delete(key)
    await r.aclose()
