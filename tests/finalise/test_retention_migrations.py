"""Retention purge (whole month partitions, rows otherwise) and the ledger migration."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import func, insert, select, text

from app.finalise import partitions
from app.finalise.retention import purge_with
from app.kit import clock
from app.kit.db import events, records
from app.migrate import alembic_config, upgrade
from tests.conftest import PG, _dsn
from tests.finalise.helpers import finalised_class, past_start
from tests.support import Server


async def test_purge_deletes_expired_rows_and_partitions(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    start = past_start(72)
    await finalised_class(
        api, sid, start, course_id=f"c-{sid}", course_overrides={"retention": "1d"}
    )
    keep = f"{sid}-keep"
    await finalised_class(api, keep, start, course_id=f"c-{keep}")
    engine = server.resources.engine
    async with engine.begin() as conn:
        await partitions.ensure_month(conn, dt.date(2020, 1, 1))
        await conn.execute(
            insert(events).values(
                session_id="ancient",
                user_id="u",
                event_id="e",
                type="join",
                ts=clock.to_dt(dt.datetime(2020, 1, 15, tzinfo=dt.UTC).timestamp()),
                source="import",
                payload={},
            )
        )
    report = await purge_with(engine)
    assert "events_2020_01" in report.dropped_partitions
    async with engine.connect() as conn:

        async def count(table: object, session_id: str) -> int:
            q = select(func.count()).where(table.c.session_id == session_id)  # type: ignore[attr-defined]
            return int(await conn.scalar(q) or 0)

        assert await count(events, sid) == 0
        assert await count(records, sid) == 0
        assert await count(events, keep) == 7
        assert await count(records, keep) == 4
        assert await count(events, "ancient") == 0
        assert "events_2020_01" not in await partitions.existing(conn)
    again = await purge_with(engine)
    assert (again.events_deleted, again.records_deleted, again.dropped_partitions) == (0, 0, [])


async def test_partition_created_after_rows_landed_in_default(server: Server) -> None:
    engine = server.resources.engine
    ts = dt.datetime(2021, 3, 10, tzinfo=dt.UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(events).values(
                session_id="old", user_id="u", event_id="x", type="join", ts=ts, source="import",
                payload={},
            )
        )  # fmt: skip
        assert await partitions.ensure_month(conn, dt.date(2021, 3, 1))
        where = await conn.scalar(
            text("SELECT tableoid::regclass::text FROM events WHERE session_id = 'old'")
        )
        assert where == "events_2021_03"
        await conn.execute(text("DROP TABLE events_2021_03"))


async def test_a_query_while_rows_move_into_a_new_partition_sees_them(server: Server) -> None:
    """A query that waits on the move must not be planned without the new partition: it would
    find the rows in neither (the finaliser once read a session's events as none)."""
    engine = server.resources.engine
    ts = dt.datetime(2019, 6, 10, tzinfo=dt.UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(events).values(
                session_id="moving", user_id="u", event_id="x", type="join", ts=ts,
                source="import", payload={},
            )
        )  # fmt: skip
    query = select(events.c.event_id).where(events.c.session_id == "moving")

    async def read() -> list[tuple[str]]:
        async with engine.connect() as conn:
            return [(r.event_id,) for r in await conn.execute(query)]

    try:
        assert await read() == [("x",)]
        async with engine.begin() as creator:
            assert await partitions.ensure_month(creator, dt.date(2019, 6, 1))
            reader = asyncio.create_task(read())
            await asyncio.sleep(0.3)  # the reader now waits for the creator's commit
        assert await reader == [("x",)]
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS events_2019_06"))
            await conn.execute(events.delete().where(events.c.session_id == "moving"))


async def test_migration_downgrades_and_upgrades_again() -> None:
    from alembic import command

    name = f"hadir_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = "postgresql+asyncpg://" + _dsn(name).split("://", 1)[1]
        cfg = alembic_config(url)
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(command.downgrade, cfg, "0001")
        conn = await asyncpg.connect(_dsn(name))
        try:
            assert await conn.fetchval("SELECT to_regclass('outbox')") is None
            assert await conn.fetchval("SELECT to_regclass('events')") is not None
        finally:
            await conn.close()
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(_dsn(name))
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0002"
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
