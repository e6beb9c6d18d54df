"""Month partitions of the events table (range on `ts`), so retention drops whole months.

The migration made `events_default`; months are created ahead of time. A month whose rows
already landed in the default partition is still created: its rows move into it first.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

NAME_RE = re.compile(r"^events_(\d{4})_(\d{2})$")


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"events_{month.year:04d}_{month.month:02d}"


async def existing(conn: AsyncConnection) -> dict[str, dt.date]:
    """Month partitions of `events`: name → first day of the month."""
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
        )
    )
    out: dict[str, dt.date] = {}
    for (name,) in rows:
        m = NAME_RE.match(name)
        if m:
            out[name] = dt.date(int(m.group(1)), int(m.group(2)), 1)
    return out


async def ensure_month(conn: AsyncConnection, month: dt.date) -> bool:
    """Create the partition of `month` unless it exists; True when created."""
    month = month_start(month)
    name = partition_name(month)
    if name in await existing(conn):
        return False
    lo, hi = month.isoformat(), next_month(month).isoformat()
    # Serialise creators (several server processes) on one advisory lock per month.
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": f"hadir:{name}"})
    if name in await existing(conn):
        return False
    # ATTACH alone leaves readers of `events` free to plan without the new partition; one
    # that then waits on the moved rows finds them in neither partition. Hold them off until
    # the commit (creating a month is rare: ahead of time, or on a new database).
    await conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    bounds = f"ts >= '{lo}T00:00:00Z' AND ts < '{hi}T00:00:00Z'"
    await conn.execute(text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)"))
    await conn.execute(
        text(
            f"WITH moved AS (DELETE FROM events_default WHERE {bounds} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        )
    )
    await conn.execute(
        text(
            f"ALTER TABLE events ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lo}T00:00:00Z') TO ('{hi}T00:00:00Z')"
        )
    )
    return True


async def ensure_ahead(conn: AsyncConnection, today: dt.date, months: int = 2) -> list[str]:
    """This month's partition and the next `months` ones."""
    made = []
    month = month_start(today)
    for _ in range(months + 1):
        if await ensure_month(conn, month):
            made.append(partition_name(month))
        month = next_month(month)
    return made
