"""What the live paths need to know about a session, cached briefly per process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import select

from app.kit import clock
from app.kit.db import courses, roster, sessions
from app.kit.resources import Resources
from app.rules import compliance
from app.rules import policy as rules_policy
from app.rules.outcome import Mode, Role, SessionKind

CACHE_S = 5.0


@dataclass(slots=True)
class SessionInfo:
    id: str
    course_id: str
    title: str
    kind: SessionKind
    mode: Mode
    status: str
    scheduled_start: float
    duration_s: float
    camera_required: bool
    started_at: float | None
    policy: rules_policy.Policy
    roles: dict[str, Role]
    names: dict[str, str | None]
    consent: dict[str, bool]
    fetched: float

    @property
    def scheduled_end(self) -> float:
        return self.scheduled_start + self.duration_s

    @property
    def hard_cap(self) -> int:
        return compliance.hard_cap(self.policy)


async def load(res: Resources, session_id: str, *, fresh: bool = False) -> SessionInfo | None:
    cache: dict[str, SessionInfo] = res.extras.setdefault("session_cache", {})
    hit = cache.get(session_id)
    if hit is not None and not fresh and time.monotonic() - hit.fetched < CACHE_S:
        return hit
    async with res.engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    sessions,
                    courses.c.policy.label("profile"),
                    courses.c.title,
                    courses.c.overrides.label("course_overrides"),
                )
                .join(courses, courses.c.id == sessions.c.course_id)
                .where(sessions.c.id == session_id)
            )
        ).first()
        if row is None:
            cache.pop(session_id, None)
            return None
        people = (
            await conn.execute(
                select(
                    roster.c.user_id, roster.c.role, roster.c.name, roster.c.proctoring_consent
                ).where(roster.c.session_id == session_id)
            )
        ).all()
    info = SessionInfo(
        id=row.id,
        course_id=row.course_id,
        title=row.title,
        kind=cast(SessionKind, row.kind),
        mode=cast(Mode, row.mode),
        status=row.status,
        scheduled_start=clock.from_dt(row.scheduled_start),
        duration_s=row.duration_minutes * 60.0,
        camera_required=row.camera_required,
        started_at=clock.from_dt(row.started_at) if row.started_at else None,
        policy=rules_policy.resolve(row.profile, row.course_overrides, row.overrides),
        roles={p.user_id: cast(Role, p.role) for p in people},
        names={p.user_id: p.name for p in people},
        consent={p.user_id: p.proctoring_consent for p in people},
        fetched=time.monotonic(),
    )
    cache[session_id] = info
    if len(cache) > 5000:
        cache.clear()
    return info


def forget(res: Resources, session_id: str) -> None:
    res.extras.get("session_cache", {}).pop(session_id, None)
