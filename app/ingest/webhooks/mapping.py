"""From a platform's meeting and participant to our session and user.

Sessions: a meeting id / room name is looked up in `session_refs`. One Zoom meeting id serves
every occurrence of a recurring meeting, so the occurrence is chosen by time: the session whose
window `[scheduled_start - 1h, scheduled_end + end_grace]` contains the event's platform time,
else the nearest one.

People: the roster's `external_ids[provider]` (Zoom: participant_uuid, the Zoom user id or the
per-meeting user_id; LiveKit: identity), then `email` (case-insensitive), then the user id itself
(a LiveKit identity equal to a roster user_id). Anyone else is a guest with a stable id such as
`guest:zoom:<participant id>`: visible, never counted as a learner (the rules engine treats users
not on the roster as guests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select

from app.ingest.events import valid_id
from app.kit import clock
from app.kit.db import courses, roster, session_refs, sessions
from app.kit.resources import Resources
from app.rules import policy as rules_policy

EARLY_S = 3600.0  # a meeting may open up to an hour before its session


@dataclass(frozen=True, slots=True)
class Target:
    """The session a platform event belongs to."""

    session_id: str
    status: str
    scheduled_start: float
    scheduled_end: float
    end_grace: float

    def distance(self, at: float) -> float:
        """0 inside the session's window, else the seconds to its nearer edge."""
        lo, hi = self.scheduled_start - EARLY_S, self.scheduled_end + self.end_grace
        if lo <= at <= hi:
            return 0.0
        return lo - at if at < lo else at - hi


@dataclass(frozen=True, slots=True)
class Person:
    user_id: str
    role: str
    email: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)


def pick_session(candidates: Sequence[Target], at: float) -> Target | None:
    """The occurrence whose window contains `at`, else the nearest (ties: the earlier one)."""
    if not candidates:
        return None
    return min(candidates, key=lambda t: (t.distance(at), t.scheduled_start))


async def resolve_session(
    res: Resources, provider: str, refs: Sequence[str], at: float
) -> Target | None:
    """The session of a meeting (any of `refs`: id, uuid, room name) at platform time `at`."""
    keys = sorted({r.strip() for r in refs if r and r.strip()})
    if not keys:
        return None
    compact = [k.replace(" ", "") for k in keys]
    async with res.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    sessions.c.id,
                    sessions.c.status,
                    sessions.c.scheduled_start,
                    sessions.c.duration_minutes,
                    sessions.c.overrides,
                    courses.c.policy.label("profile"),
                    courses.c.overrides.label("course_overrides"),
                )
                .distinct()
                .join(session_refs, session_refs.c.session_id == sessions.c.id)
                .join(courses, courses.c.id == sessions.c.course_id)
                .where(
                    session_refs.c.provider == provider,
                    or_(
                        session_refs.c.ref.in_(keys),
                        # "123 456 7890" as typed into an LMS is the meeting 1234567890.
                        func.replace(session_refs.c.ref, " ", "").in_(compact),
                    ),
                )
            )
        ).all()
    candidates = []
    for row in rows:
        start = clock.from_dt(row.scheduled_start)
        try:
            grace = rules_policy.resolve(row.profile, row.course_overrides, row.overrides).end_grace
        except rules_policy.PolicyError:
            grace = 300.0
        candidates.append(
            Target(row.id, row.status, start, start + row.duration_minutes * 60.0, grace)
        )
    return pick_session(candidates, at)


async def load_roster(res: Resources, session_id: str) -> list[Person]:
    async with res.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    roster.c.user_id, roster.c.role, roster.c.email, roster.c.external_ids
                ).where(roster.c.session_id == session_id)
            )
        ).all()
    return [
        Person(
            r.user_id,
            r.role,
            r.email.strip().lower() if r.email else None,
            {str(k): str(v) for k, v in (r.external_ids or {}).items()},
        )
        for r in rows
    ]


def match_person(
    people: Sequence[Person],
    provider: str,
    ids: Sequence[str | None],
    email: str | None = None,
    user_id: str | None = None,
) -> Person | None:
    """The roster entry of a platform participant: external id, then email, then user id."""
    wanted = {i.strip() for i in ids if i and i.strip()}
    if wanted:
        for p in people:
            ext = p.external_ids.get(provider)
            if ext is not None and ext.strip() in wanted:
                return p
    if email and email.strip():
        address = email.strip().lower()
        for p in people:
            if p.email == address:
                return p
    if user_id:
        for p in people:
            if p.user_id == user_id:
                return p
    return None


def stable_token(value: str) -> str:
    """`value` itself when it is a valid id fragment, else a short hash of it."""
    if valid_id(value) and len(value) <= 80:
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def guest_id(provider: str, participant: str | None, name: str | None) -> str:
    """A stable user id for someone not on the roster."""
    if participant and participant.strip():
        return f"guest:{provider}:{stable_token(participant.strip())}"
    digest = hashlib.sha256((name or "").strip().lower().encode()).hexdigest()[:16]
    return f"guest:{provider}:name-{digest}"
