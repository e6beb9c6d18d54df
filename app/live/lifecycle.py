"""Session lifecycle shared by the API, the webhooks and the schedulers: start, end, control.

Ending a session (API `end`, a platform's `ended` event, or the scheduled end plus
`end_grace`) records the end, queues finalisation after `HADIR_FINALISE_DELAY_S`, and tells
every server process to close the session's live connections (4409).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit import clock
from app.kit.db import sessions
from app.kit.resources import Resources

FINAL_STATUSES = frozenset({"finalised", "cancelled_platform_fault", "mentor_absent", "cancelled"})
ENDED_STATUSES = FINAL_STATUSES | {"ended"}


async def publish_control(res: Resources, op: str, session_id: str, **extra: Any) -> None:
    await res.redis.publish(
        res.keys.control, orjson.dumps({"op": op, "session_id": session_id, **extra})
    )


async def mark_live(res: Resources, session_id: str, at: float, live_until: float) -> None:
    """First presence in a scheduled session: it is live from `at`, and in the live set (for
    heartbeat sweeps and service-gap windows) until `live_until` or its end."""
    async with res.engine.begin() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.status == "scheduled")
            .values(status="live", started_at=clock.to_dt(at), updated_at=clock.to_dt(at))
        )
    async with res.redis.pipeline(transaction=False) as pipe:
        pipe.zadd(res.keys.live_sessions, {session_id: live_until})
        pipe.expire(res.keys.live_sessions, res.keys.SERVICE_TTL_S)
        await pipe.execute()


async def end_session(
    res: Resources, conn: AsyncConnection, session_id: str, *, reason: str, at: float | None = None
) -> tuple[bool, str]:
    """End a session now (or at `at`) in the caller's transaction; once it has committed,
    the caller announces it with `announce_ended`. Returns (ended by this call, status after)."""
    at = clock.now() if at is None else at
    row = (
        await conn.execute(
            select(sessions.c.status).where(sessions.c.id == session_id).with_for_update()
        )
    ).first()
    if row is None:
        raise LookupError(session_id)
    if row.status in ENDED_STATUSES:
        return False, str(row.status)
    due = at + res.settings.finalise_delay_s
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            status="ended",
            ended_at=clock.to_dt(at),
            end_reason=reason,
            finalise_after=clock.to_dt(due),
            updated_at=clock.to_dt(clock.now()),
        )
    )
    await schedule_finalisation(res, session_id, due)
    await res.redis.zrem(res.keys.live_sessions, session_id)
    return True, "ended"


async def announce_ended(res: Resources, session_id: str) -> None:
    """Tell every server process that the session ended (they close its live connections and
    reload its status). Called after the transaction of `end_session` has committed: a process
    that reloads the session earlier would cache its old status."""
    await publish_control(res, "ended", session_id)


async def schedule_finalisation(res: Resources, session_id: str, due: float) -> None:
    """Queue (or re-queue) a session for the finaliser at `due` (POSIX seconds)."""
    async with res.redis.pipeline(transaction=False) as pipe:
        pipe.zadd(res.keys.finalise_queue, {session_id: due})
        pipe.expire(res.keys.finalise_queue, res.keys.SERVICE_TTL_S)
        await pipe.execute()
