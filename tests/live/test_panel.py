"""The instructor panel websocket: auth, snapshot, coalesced deltas, outages, several servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.settings import Settings
from tests.support import Server, live, recv_json, schedule, send_json, token, until_archived


@contextlib.asynccontextmanager
async def panel(
    server: Server, sid: str, role: str = "instructor"
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    url = f"{server.ws}/v1/live/{sid}/panel?token={token('teacher', sid, role)}"
    async with connect(url, compression=None) as ws:
        snapshot = await recv_json(ws)
        assert snapshot["type"] == "snapshot"
        yield ws, snapshot


async def until(
    ws: ClientConnection, predicate: Any, wait: float = 5.0
) -> tuple[dict[str, Any], float]:
    """Read panel messages until one satisfies `predicate`; returns it and the seconds waited."""
    started = time.monotonic()
    async with asyncio.timeout(wait):
        while True:
            message = orjson.loads(await ws.recv())
            if predicate(message):
                return message, time.monotonic() - started


def person(message: dict[str, Any], user: str) -> dict[str, Any] | None:
    return next((p for p in message.get("participants", []) if p["user_id"] == user), None)


def hb(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "heartbeat", "camera": True, "mic": True, "visible": True}


class TestPanelAuth:
    @pytest.mark.parametrize(("role", "code"), [("learner", 4403), ("mentor", 4403)])
    async def test_roles_outside_staff_are_refused(
        self, server: Server, api: httpx.AsyncClient, sid: str, role: str, code: int
    ) -> None:
        await schedule(api, sid)
        url = f"{server.ws}/v1/live/{sid}/panel?token={token('u1', sid, role)}"
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == code

    async def test_bad_token_and_unknown_session(self, server: Server) -> None:
        for url, code in (
            (f"{server.ws}/v1/live/x/panel?token=nope", 4401),
            (f"{server.ws}/v1/live/x/panel?token={token('t', 'x', 'observer')}", 4404),
        ):
            async with connect(url) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == code


class TestPanelFeed:
    async def test_snapshot_lists_the_roster_with_session_facts(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid, learners=3)
        async with panel(server, sid, "observer") as (_, snapshot):
            session = snapshot["session"]
            assert session["id"] == sid
            assert session["outage"] == {"active": False, "fault_ratio": 0.0, "windows": []}
            assert session["capacity"] == {"learners": 3, "cap": 35, "hard_cap": 43}
            assert session["staffing"] == {"required": 1, "present": 0}
            users = {p["user_id"]: p for p in snapshot["participants"]}
            assert set(users) == {"u1", "u2", "u3", "teacher"}
            assert users["u1"]["state"] == "never"
            assert users["u1"]["name"] == "Learner 1"
            assert users["u1"]["provisional"]["status"] == "absent"

    async def test_join_engagement_and_drop_arrive_as_deltas_within_a_second(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid, learners=2)
        async with panel(server, sid) as (pws, _):
            async with live(server, sid, "u1") as (ws, _):
                message, waited = await until(
                    pws, lambda m: (p := person(m, "u1")) is not None and p["state"] == "connected"
                )
                assert message["type"] == "delta"
                assert waited < 1.0
                await send_json(ws, {"id": "q", "type": "engagement", "kind": "question"})
                await recv_json(ws)
                message, waited = await until(
                    pws, lambda m: (p := person(m, "u1")) is not None and p["engagements"] == 1
                )
                assert waited < 1.0
                ws.transport.abort()
            message, _ = await until(
                pws, lambda m: (p := person(m, "u1")) is not None and p["state"] == "dropped"
            )
            assert person(message, "u1")["joined_at"] is not None  # type: ignore[index]

    async def test_a_mass_drop_opens_an_outage_window(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid, learners=4)
        async with panel(server, sid) as (pws, _), contextlib.AsyncExitStack() as stack:
            sockets = [
                (await stack.enter_async_context(live(server, sid, f"u{i}")))[0]
                for i in range(1, 5)
            ]
            for ws in sockets[:3]:
                ws.transport.abort()
            message, _ = await until(pws, lambda m: m["type"] == "outage" and m["active"])
            assert message["windows"][0]["cause"] == "mass_drop"
            # the open window grows with time, and the running fault ratio with it
            message, _ = await until(
                pws, lambda m: m["type"] == "outage" and m["fault_ratio"] > 0, wait=8.0
            )
            assert message["active"]

    async def test_a_panel_on_one_server_sees_participants_of_another(
        self, server: Server, api: httpx.AsyncClient, settings: Settings, sid: str
    ) -> None:
        await schedule(api, sid, learners=2)
        other = Server(settings)
        await other.start()
        try:
            async with panel(server, sid) as (pws, _), live(other, sid, "u2") as (ws, _):
                await send_json(ws, hb("h1"))
                await recv_json(ws)
                _, waited = await until(
                    pws,
                    lambda m: (p := person(m, "u2")) is not None and p["state"] == "connected",
                )
                assert waited < 1.0
        finally:
            await other.stop()

    async def test_end_and_finalisation_reach_the_panel(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid, learners=1)
        async with panel(server, sid) as (pws, _):
            async with live(server, sid, "u1"):
                await until(
                    pws, lambda m: (p := person(m, "u1")) is not None and p["state"] == "connected"
                )
            assert (await api.post(f"/v1/sessions/{sid}/end")).status_code == 200
            message, _ = await until(pws, lambda m: m.get("session", {}).get("status") == "ended")
            assert message["type"] == "delta"
            await until(pws, lambda m: m["type"] == "finalised", wait=10.0)

    async def test_a_session_change_alone_is_a_delta(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid, learners=1)
        async with panel(server, sid) as (pws, snapshot):
            assert snapshot["session"]["status"] == "scheduled"
            assert (await api.post(f"/v1/sessions/{sid}/end")).status_code == 200
            message, _ = await until(pws, lambda m: m.get("session", {}).get("status") == "ended")
            assert message["participants"] == []


async def test_a_panel_opened_after_the_journal_was_trimmed_starts_from_the_archive(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid, learners=2)
    async with live(server, sid, "u1") as (ws, _):
        await send_json(ws, {"id": "q1", "type": "engagement", "kind": "question"})
        await recv_json(ws)
        await until_archived(server, sid, 2)
        res = server.resources
        # Everything archived so far leaves the journal (as the archiver's trim does later).
        await res.redis.xtrim(res.keys.session(sid).journal, maxlen=0, approximate=False)
        async with panel(server, sid) as (_, snapshot):
            u1 = next(p for p in snapshot["participants"] if p["user_id"] == "u1")
            assert u1["state"] == "connected"
            assert u1["engagements"] == 1
            assert u1["joined_at"] is not None
