"""Shortcuts for the finalisation tests: past sessions from imports, waiting for results."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import iso, schedule


def at(start: datetime, minutes: float) -> str:
    return iso(start + timedelta(minutes=minutes))


def past_start(hours: float = 3.0) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)


def class_events(start: datetime, minutes: int = 60) -> list[dict[str, Any]]:
    """u1 present, u2 late, u3 absent, the teacher present (POLICY §2)."""
    return [
        {"id": "j1", "type": "join", "user_id": "u1", "ts": at(start, -2)},
        {"id": "e1", "type": "engagement", "kind": "question", "user_id": "u1", "ts": at(start, 5)},
        {"id": "l1", "type": "leave", "user_id": "u1", "ts": at(start, minutes + 1)},
        {"id": "j2", "type": "join", "user_id": "u2", "ts": at(start, 15)},
        {"id": "l2", "type": "leave", "user_id": "u2", "ts": at(start, minutes)},
        {"id": "jt", "type": "join", "user_id": "teacher", "ts": at(start, 0)},
        {"id": "lt", "type": "leave", "user_id": "teacher", "ts": at(start, minutes)},
    ]


async def import_events(api: httpx.AsyncClient, sid: str, events: list[dict[str, Any]]) -> None:
    r = await api.post(f"/v1/sessions/{sid}/events", json={"events": events})
    assert r.status_code == 200, r.text
    assert not r.json()["rejected"], r.json()


async def end(api: httpx.AsyncClient, sid: str) -> None:
    r = await api.post(f"/v1/sessions/{sid}/end")
    assert r.status_code == 200, r.text


async def attendance(
    api: httpx.AsyncClient, sid: str, *, revision: int = 1, wait: float = 10.0
) -> dict[str, Any]:
    """Poll until the session's result has at least `revision`."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        r = await api.get(f"/v1/sessions/{sid}/attendance")
        if r.status_code == 200 and r.json()["session"]["revision"] >= revision:
            body: dict[str, Any] = r.json()
            return body
        assert r.status_code in (200, 409), r.text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no revision {revision} of {sid}: {r.status_code} {r.text}")
        await asyncio.sleep(0.05)


async def ended_class(
    api: httpx.AsyncClient, sid: str, start: datetime, **schedule_fields: Any
) -> None:
    """A class at `start` with the events of `class_events`, ended."""
    await schedule(api, sid, start=start, **schedule_fields)
    await import_events(api, sid, class_events(start))
    await end(api, sid)


async def finalised_class(
    api: httpx.AsyncClient, sid: str, start: datetime, **schedule_fields: Any
) -> dict[str, Any]:
    """`ended_class`, and its first result."""
    await ended_class(api, sid, start, **schedule_fields)
    return await attendance(api, sid)


def by_user(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["user_id"]: r for r in body["records"]}
