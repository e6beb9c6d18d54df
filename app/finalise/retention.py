"""Retention (POLICY §8, seed 000 §10): raw events and records are deleted `retention` after
the session end (24 months by default, a course parameter).

Whole month partitions of the events table are dropped once every session that could have
events in them is past the longest retention in force; otherwise rows are deleted per course.
Idempotent: running it twice deletes nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.finalise import partitions
from app.kit import clock
from app.kit.db import courses
from app.rules import policy as rules_policy

log = logging.getLogger(__name__)

# Events of a session may precede its start (early joins) and follow it (late imports)
# by a little; a partition is dropped only this far past the longest retention.
PARTITION_SLACK_S = 2 * 86400.0

_SESSION_END = (
    "COALESCE(LEAST(s.ended_at, s.scheduled_start + make_interval(mins => s.duration_minutes)), "
    "s.scheduled_start + make_interval(mins => s.duration_minutes))"
)


@dataclass
class PurgeReport:
    dropped_partitions: list[str] = field(default_factory=list)
    events_deleted: int = 0
    records_deleted: int = 0
    results_deleted: int = 0
    outbox_deleted: int = 0


async def purge(conn: AsyncConnection, now: float | None = None) -> PurgeReport:
    """Delete what is past retention (in the caller's transaction)."""
    now = clock.now() if now is None else now
    report = PurgeReport()
    longest = rules_policy.PARAMETERS["retention"].default
    assert isinstance(longest, float)
    for c in (await conn.execute(select(courses))).all():
        try:
            retention = rules_policy.resolve(c.policy, c.overrides).retention
        except rules_policy.PolicyError:
            continue
        longest = max(longest, retention)
        cutoff = clock.to_dt(now - retention)
        expired = f"SELECT s.id FROM sessions s WHERE s.course_id = :c AND {_SESSION_END} < :cutoff"
        params = {"c": c.id, "cutoff": cutoff}
        result = await conn.execute(
            text(f"DELETE FROM events WHERE session_id IN ({expired})"), params
        )
        report.events_deleted += int(result.rowcount or 0)
        result = await conn.execute(
            text(f"DELETE FROM records WHERE session_id IN ({expired})"), params
        )
        report.records_deleted += int(result.rowcount or 0)
        result = await conn.execute(
            text(f"DELETE FROM session_results WHERE session_id IN ({expired})"), params
        )
        report.results_deleted += int(result.rowcount or 0)
    result = await conn.execute(
        text("DELETE FROM outbox WHERE created_at < :cutoff"),
        {"cutoff": clock.to_dt(now - longest)},
    )
    report.outbox_deleted = int(result.rowcount or 0)
    horizon = now - longest - PARTITION_SLACK_S
    for name, month in sorted((await partitions.existing(conn)).items()):
        upper = partitions.next_month(month)
        upper_ts = dt.datetime(upper.year, upper.month, 1, tzinfo=dt.UTC).timestamp()
        if upper_ts <= horizon:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            report.dropped_partitions.append(name)
    if report.dropped_partitions or report.events_deleted or report.records_deleted:
        log.info("retention purge: %s", report)
    return report


async def purge_with(engine: AsyncEngine, now: float | None = None) -> PurgeReport:
    async with engine.begin() as conn:
        return await purge(conn, now)
