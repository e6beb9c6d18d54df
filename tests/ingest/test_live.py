"""The live ingest websocket: protocol, close codes, bad input, idempotency."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.ingest import live as live_module
from tests.conftest import make_settings
from tests.support import (
    ADMIN_KEY,
    Server,
    journal,
    live,
    recv_json,
    schedule,
    send_json,
    token,
)


async def close_code(server: Server, path: str, **kwargs: Any) -> tuple[int, str]:
    async with connect(f"{server.ws}{path}", compression=None, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        return info.value.rcvd.code, info.value.rcvd.reason


def hb(event_id: str, camera: bool = True) -> dict[str, Any]:
    return {"id": event_id, "type": "heartbeat", "camera": camera, "mic": True, "visible": True}


class TestWelcomeAndAcks:
    async def test_welcome_names_the_session_user_and_interval(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (_, welcome):
            assert welcome["session_id"] == sid
            assert welcome["user_id"] == "u1"
            assert welcome["heartbeat_interval_s"] == 1.0
            assert welcome["server_time"].endswith("Z")

    async def test_each_event_type_is_journaled_and_acked(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, hb("e1"))
            assert await recv_json(ws) == {"type": "ack", "ids": ["e1"]}
            await send_json(ws, {"id": "e2", "type": "camera", "on": False})
            assert (await recv_json(ws))["ids"] == ["e2"]
            await send_json(ws, {"id": "e3", "type": "engagement", "kind": "question"})
            assert (await recv_json(ws))["ids"] == ["e3"]
            await send_json(ws, {"id": "e4", "type": "leave"})
            assert (await recv_json(ws))["ids"] == ["e4"]
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "heartbeat", "camera", "engagement", "leave"]
        assert {e["conn"] for e in events} == {events[0]["conn"]}
        assert events[2]["on"] is False
        assert events[3]["kind"] == "question"

    async def test_an_array_is_acked_together(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(
                ws, [hb("a"), hb("b"), {"id": "c", "type": "engagement", "kind": "chat"}]
            )
            assert (await recv_json(ws))["ids"] == ["a", "b", "c"]

    async def test_resent_ids_are_acked_again_and_counted_once(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, [hb("x1"), {"id": "x2", "type": "engagement", "kind": "chat"}])
            await recv_json(ws)
        # reconnect: the offline queue is flushed again, with one new event
        async with live(server, sid, "u1") as (ws, _):
            batch = [hb("x1"), {"id": "x2", "type": "engagement", "kind": "chat"}, hb("x3")]
            await send_json(ws, batch)
            assert (await recv_json(ws))["ids"] == ["x1", "x2", "x3"]
        events = await journal(server, sid)
        ids = [e["id"] for e in events if not e["id"].startswith(("join:", "end:"))]
        assert sorted(ids) == ["x1", "x2", "x3"]

    async def test_same_id_from_two_users_is_two_events(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (a, _), live(server, sid, "u2") as (b, _):
            await send_json(a, hb("same"))
            await send_json(b, hb("same"))
            await recv_json(a)
            await recv_json(b)
        beats = [e for e in await journal(server, sid) if e["type"] == "heartbeat"]
        assert sorted(e["user_id"] for e in beats) == ["u1", "u2"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("frame", "code"),
        [
            ("{not json", "invalid_json"),
            ('"a string"', "not_an_object"),
            ('{"type": "heartbeat", "camera": true}', "missing_id"),
            ('{"id": "has space", "type": "heartbeat", "camera": true}', "invalid_id"),
            ('{"id": "e", "type": "dance"}', "unknown_type"),
            ('{"id": "e", "type": "join"}', "unknown_type"),
            ('{"id": "e", "type": "heartbeat", "camera": "yes"}', "invalid_field"),
            ('{"id": "e", "type": "heartbeat"}', "invalid_field"),
            ('{"id": "e", "type": "camera", "on": 1}', "invalid_field"),
            ('{"id": "e", "type": "engagement", "kind": "nap"}', "invalid_field"),
            ('{"id": "e", "type": "heartbeat", "camera": true, "user_id": "u2"}', "invalid_field"),
            ('{"id": "e", "type": "heartbeat", "camera": true, "ts": {}}', "invalid_field"),
        ],
    )
    async def test_a_bad_event_gets_an_error_and_the_connection_stays_open(
        self, server: Server, api: httpx.AsyncClient, sid: str, frame: str, code: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await ws.send(frame)
            error = await recv_json(ws)
            assert error["type"] == "error"
            assert error["code"] == code
            assert error["detail"]
            await send_json(ws, hb("after"))
            assert (await recv_json(ws))["ids"] == ["after"]

    async def test_one_bad_element_does_not_lose_the_good_ones(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, [hb("g1"), {"id": "b1", "type": "nope"}, hb("g2")])
            error = await recv_json(ws)
            assert error == {
                "type": "error",
                "code": "unknown_type",
                "detail": error["detail"],
                "id": "b1",
            }
            assert (await recv_json(ws))["ids"] == ["g1", "g2"]
        ids = [e["id"] for e in await journal(server, sid) if e["type"] == "heartbeat"]
        assert ids == ["g1", "g2"]

    async def test_oversized_frame_closes_with_1009(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, hb("before"))
            await recv_json(ws)
            await ws.send("x" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "heartbeat", "drop"]

    async def test_flooding_closes_with_4429_and_spares_others(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u2") as (calm, _), live(server, sid, "u1") as (ws, _):

            async def flood() -> None:
                for i in range(200):
                    await send_json(ws, hb(f"f{i}"))
                while True:
                    await asyncio.wait_for(ws.recv(), 5)

            with pytest.raises(ConnectionClosed) as info:
                await flood()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4429
            await send_json(calm, hb("fine"))
            assert (await recv_json(calm))["ids"] == ["fine"]


class TestCloseCodes:
    async def test_missing_token_4401(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        assert (await close_code(server, f"/v1/live/{sid}"))[0] == 4401

    async def test_expired_token_4401(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        code, reason = await close_code(server, f"/v1/live/{sid}?token={token('u1', sid, ttl=-60)}")
        assert (code, reason) == (4401, "token expired")

    async def test_badly_signed_token_4401(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        bad = token("u1", sid, secret="not-the-secret-but-also-32-bytes-long")
        assert await close_code(server, f"/v1/live/{sid}?token={bad}") == (
            4401,
            "bad token signature",
        )

    async def test_token_for_another_session_4403(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        other = token("u1", "some-other-session")
        assert (await close_code(server, f"/v1/live/{sid}?token={other}"))[0] == 4403

    async def test_dashboard_token_and_observer_role_4403(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        assert (await close_code(server, f"/v1/live/{sid}?token={token('u1', None)}"))[0] == 4403
        observer = token("o1", sid, role="observer")
        assert (await close_code(server, f"/v1/live/{sid}?token={observer}"))[0] == 4403

    async def test_unknown_session_4404(self, server: Server) -> None:
        assert (await close_code(server, f"/v1/live/nope?token={token('u1', 'nope')}"))[0] == 4404

    async def test_ended_session_4409_and_open_connections_are_told(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            assert (await api.post(f"/v1/sessions/{sid}/end")).status_code == 200
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4409
        assert (await close_code(server, f"/v1/live/{sid}?token={token('u1', sid)}"))[0] == 4409
        types = [e["type"] for e in await journal(server, sid)]
        assert types == ["join", "leave"]

    async def test_class_full_4413(self, server: Server, api: httpx.AsyncClient, sid: str) -> None:
        await schedule(
            api,
            sid,
            learners=3,
            course_id="small-course",
            course_overrides={"enforce_capacity": True, "class_cap": 2, "cap_increase": 0},
        )
        async with live(server, sid, "u1"), live(server, sid, "u2"):
            code = await close_code(server, f"/v1/live/{sid}?token={token('u3', sid)}")
            assert code[0] == 4413
            # a second tab of someone already in does not count twice
            async with live(server, sid, "u1"):
                pass
            # staff are never refused
            async with live(server, sid, "teacher", role="instructor"):
                pass

    async def test_heartbeat_timeout_4408_ends_the_interval_at_the_last_heartbeat(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1") as (ws, _):
            await send_json(ws, hb("only"))
            await recv_json(ws)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4408
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "heartbeat", "drop"]
        assert events[2]["reason"] == "heartbeat_timeout"
        assert events[2]["ts"] == events[1]["ts"]

    async def test_close_1000_is_a_leave_and_abnormal_is_a_drop(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        await schedule(api, sid)
        async with live(server, sid, "u1"):
            pass  # closes with 1000
        async with live(server, sid, "u2") as (ws, _):
            ws.transport.abort()  # no close frame: abnormal
        for _ in range(50):
            events = await journal(server, sid)
            if len(events) == 4:
                break
            await asyncio.sleep(0.05)
        ends = {e["user_id"]: (e["type"], e.get("reason")) for e in events if e["type"] != "join"}
        assert ends == {"u1": ("leave", None), "u2": ("drop", "abnormal")}

    async def test_origin_allow_list(self, database: str, redis_prefix: str, sid: str) -> None:
        from tests.conftest import make_settings
        from tests.support import ADMIN_KEY

        srv = Server(
            make_settings(database, redis_prefix, HADIR_ALLOWED_ORIGINS="https://lms.example")
        )
        await srv.start()
        try:
            async with httpx.AsyncClient(
                base_url=srv.http, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as api:
                await schedule(api, sid)
            path = f"/v1/live/{sid}?token={token('u1', sid)}"
            code = await close_code(srv, path, origin="https://evil.example")
            assert code[0] == 4403
            async with connect(f"{srv.ws}{path}", origin="https://lms.example") as ws:  # type: ignore[arg-type]
                assert orjson.loads(await ws.recv())["type"] == "welcome"
        finally:
            await srv.stop()


class TestClientsThatStopReading:
    async def test_a_client_that_stops_reading_its_acks_is_dropped(
        self, database: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Acks normally go out without suspending; once the client's socket stops taking
        them, the send waits at most MAX_UNACKED_SEND_S, then the connection is a drop."""
        monkeypatch.setattr(live_module, "MAX_UNACKED_SEND_S", 1.0)
        srv = Server(make_settings(database, redis_prefix, HADIR_RATE_LIMIT_PER_S=1e6))
        await srv.start()
        sid = f"s-{secrets.token_hex(5)}"
        try:
            async with httpx.AsyncClient(
                base_url=srv.http, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as api:
                await schedule(api, sid)
            # A tiny receive buffer, and the client stops reading after one queued message.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", srv.port))
            url = f"{srv.ws}/v1/live/{sid}?token={token('u1', sid)}"
            async with (
                live(srv, sid, "u2") as (calm, _),
                connect(url, sock=sock, compression=None, max_queue=1, close_timeout=1) as stuck,
            ):

                async def calm_heartbeats() -> None:
                    for n in itertools.count():
                        await send_json(calm, hb(f"calm-{n}"))
                        assert (await recv_json(calm, wait=1.0))["ids"] == [f"calm-{n}"]
                        await asyncio.sleep(0.2)

                calm_task = asyncio.create_task(calm_heartbeats())
                long_id = "x" * 100
                for frame in range(200):  # frames of ~40 KB, acks of ~30 KB, never read
                    batch = [hb(f"{long_id}-{frame}-{i}") for i in range(250)]
                    try:
                        await asyncio.wait_for(send_json(stuck, batch), 0.5)
                    except (TimeoutError, ConnectionClosed):
                        break  # the server stopped reading too: at most 512 unacked events
                conn_of_u1 = None
                for _ in range(100):
                    events = await journal(srv, sid)
                    ends = [e for e in events if e["user_id"] == "u1" and e["type"] == "drop"]
                    if ends:
                        assert ends[0]["reason"] == "abnormal"
                        conn_of_u1 = ends[0]["conn"]
                        break
                    await asyncio.sleep(0.1)
                assert conn_of_u1 is not None, "the stuck client was never dropped"
                # The other participant was never held up.
                assert not calm_task.done(), calm_task
                calm_task.cancel()
        finally:
            await srv.stop()
