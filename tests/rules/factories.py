"""Builders for rules tests: a session starting at T0, times in minutes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from app.rules.evidence import Event, EventType, Window
from app.rules.outcome import Participant, Role, SessionFacts, SessionOutcome, evaluate_session
from app.rules.policy import Policy, resolve

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
M = 60.0
H = 3600.0
POLICY = resolve("platform")
_ids = itertools.count()


def at(minutes: float) -> float:
    return T0 + minutes * M


def ev(user: str, typ: EventType, minutes: float, conn: str = "c", **kw: Any) -> Event:
    return Event(f"e{next(_ids)}", user, typ, at(minutes), conn, **kw)


def attend(
    user: str,
    join: float,
    leave: float | None = None,
    engagements: int = 1,
    *,
    camera: bool | None = None,
    how: EventType = "leave",
    conn: str = "c",
) -> list[Event]:
    """Join at `join` minutes, engage, optionally report the camera, leave or drop."""
    out = [ev(user, "join", join, conn)]
    if camera is not None:
        out.append(ev(user, "camera", join, conn, camera=camera))
    out += [ev(user, "engagement", join + 1, conn, kind="chat") for _ in range(engagements)]
    if leave is not None:
        out.append(ev(user, how, leave, conn))
    return out


def facts(
    roster: Iterable[str | tuple[str, Role] | Participant] = ("a",),
    *,
    kind: str = "class",
    duration: float = 60,
    camera: bool = False,
    ended_at: float | None = None,
    **kw: Any,
) -> SessionFacts:
    people = []
    for r in roster:
        if isinstance(r, Participant):
            people.append(r)
        elif isinstance(r, str):
            people.append(Participant(r))
        else:
            people.append(Participant(r[0], r[1]))
    return SessionFacts(
        session_id="s1",
        kind=kind,  # type: ignore[arg-type]
        mode=kw.pop("mode", "online"),
        start=T0,
        duration_s=duration * M,
        ended_at=None if ended_at is None else at(ended_at),
        camera_required=camera,
        roster=tuple(people),
        **kw,
    )


def window(start: float, end: float, cause: str = "declared") -> Window:
    return Window(at(start), at(end), cause)


def run(
    events: Iterable[Event],
    f: SessionFacts | None = None,
    policy: Policy = POLICY,
    now: float | None = None,
) -> SessionOutcome:
    return evaluate_session(f or facts(), list(events), policy, now=now)
