"""Process-wide resources, created in the FastAPI lifespan and handed out by dependencies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.keys import Keys
from app.settings import Settings

if TYPE_CHECKING:
    from app.ingest.journal import JournalWriter


def make_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A client on a blocking pool: under load it waits for a connection instead of failing
    (MEASUREMENTS.md: the default pool raises MaxConnectionsError past 100)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=15
    )
    return Redis(connection_pool=pool)


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    keys: Keys
    writer: JournalWriter
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    extras: dict[str, Any] = field(default_factory=dict)
