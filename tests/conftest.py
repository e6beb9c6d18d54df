"""Test fixtures over the real PostgreSQL and Redis of the machine.

Each run gets its own database (built with `alembic upgrade head`, so migrations are tested)
and its own Redis key prefix. Set TEST_POSTGRES_URL / TEST_REDIS_URL to use other servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from redis.asyncio import Redis

from app.kit import clock
from app.migrate import upgrade
from app.settings import Settings
from tests.support import (
    ADMIN_KEY,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    TOKEN_SECRET,
    WEBHOOK_SECRET,
    ZOOM_SECRET,
    Server,
    admin_client,
)

PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _dsn(database: str) -> str:
    base = PG.rsplit("/", 1)[0]
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database built with `alembic upgrade head`, dropped afterwards."""
    name = f"hadir_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = "postgresql+asyncpg://" + _dsn(name).split("://", 1)[1]
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database no other server of the test run works on (for background-work tests)."""
    with fresh_database() as url:
        yield url


async def delete_keys(prefix: str) -> None:
    """Delete the test Redis's keys under `prefix`."""
    r = Redis.from_url(REDIS)
    async for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        await r.delete(key)
    await r.aclose()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"t{secrets.token_hex(4)}"
    yield prefix
    asyncio.run(delete_keys(prefix))


def make_settings(database: str, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS,
        "HADIR_TOKEN_SECRET": TOKEN_SECRET,
        "HADIR_ADMIN_KEY": ADMIN_KEY,
        "HADIR_REDIS_PREFIX": prefix,
        "HADIR_HEARTBEAT_TIMEOUT_S": 3.0,
        "HADIR_FINALISE_DELAY_S": 0.5,
        "HADIR_RATE_LIMIT_PER_S": 20.0,
        "HADIR_ZOOM_SECRET": ZOOM_SECRET,
        "HADIR_LIVEKIT_API_KEY": LIVEKIT_KEY,
        "HADIR_LIVEKIT_API_SECRET": LIVEKIT_SECRET,
        "HADIR_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database: str, redis_prefix: str) -> Settings:
    return make_settings(database, redis_prefix)


@pytest.fixture(scope="session")
async def server(settings: Settings) -> AsyncIterator[Server]:
    srv = Server(settings)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client(server.http) as client:
        yield client


@pytest.fixture
async def anon(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        yield client


@pytest.fixture
def sid() -> str:
    """A fresh session id per test."""
    return f"s-{secrets.token_hex(5)}"


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.reset()
