"""Time-driven work: sessions end at their scheduled end plus `end_grace`, month partitions
are made ahead, and retention is purged daily.

CONTRACT "Schedule": a session ends automatically at the scheduled end plus `end_grace`,
counted from its creation when it was created after that.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, text

from app.finalise import partitions, retention
from app.finalise.ledger import course_policy
from app.kit import clock
from app.kit.db import courses, sessions
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources
from app.live.lifecycle import announce_ended, end_session
from app.rules.policy import PolicyError

log = logging.getLogger(__name__)

PARTITIONS_EVERY_S = 3600.0
PURGE_EVERY_S = 86400.0
_PAST_END = "sessions.scheduled_start + make_interval(mins => sessions.duration_minutes) < :now"


async def end_overdue(res: Resources, now: float | None = None) -> list[str]:
    """End every scheduled or live session past its scheduled end plus `end_grace`."""
    now = clock.now() if now is None else now
    ended: list[str] = []
    async with res.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(sessions, courses.c.policy, courses.c.overrides.label("course_overrides"))
                .join(courses, courses.c.id == sessions.c.course_id)
                .where(
                    sessions.c.status.in_(("scheduled", "live")),
                    text(_PAST_END).bindparams(now=clock.to_dt(now)),
                )
                .limit(200)
            )
        ).all()
    for row in rows:
        try:
            course = _CourseView(row.policy, row.course_overrides)
            grace = course_policy(course, row.overrides).end_grace
        except PolicyError:
            grace = 300.0
        scheduled_end = clock.from_dt(row.scheduled_start) + row.duration_minutes * 60.0
        due = max(scheduled_end, clock.from_dt(row.created_at)) + grace
        if due > now:
            continue
        async with res.engine.begin() as conn:
            try:
                done, _ = await end_session(res, conn, row.id, reason="scheduled_end", at=now)
            except LookupError:
                continue
        if done:
            await announce_ended(res, row.id)
            ended.append(row.id)
    return ended


class _CourseView:
    def __init__(self, policy: str, overrides: dict[str, object]) -> None:
        self.policy = policy
        self.overrides = overrides


async def loop(res: Resources, period_s: float = 1.0) -> None:
    last_partitions = last_purge = float("-inf")
    while True:
        stop_if_cancelled()
        try:
            now = clock.now()
            if now - last_partitions >= PARTITIONS_EVERY_S:
                async with res.engine.begin() as conn:
                    await partitions.ensure_ahead(conn, clock.to_dt(now).date())
                last_partitions = now
            await end_overdue(res, now)
            if now - last_purge >= PURGE_EVERY_S:
                await retention.purge_with(res.engine, now)
                last_purge = now
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("scheduler pass failed (%s); retrying", exc)
        await asyncio.sleep(period_s)
