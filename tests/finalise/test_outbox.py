"""Outbound to the LMS: signed (Standard Webhooks), retried while the LMS is down, drained in
order per session, nothing dropped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import fresh_database, make_settings
from tests.finalise.helpers import attendance, finalised_class, past_start
from tests.support import Server, admin_client, free_port

SECRET_BYTES = secrets.token_bytes(24)
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


class Receiver:
    """A small LMS: records what it is sent; `down` makes it answer 500."""

    def __init__(self) -> None:
        self.down = True
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.port = free_port()

        async def hook(request: Request) -> Response:
            body = await request.body()
            if self.down:
                self.refused += 1
                return Response(status_code=500)
            self.got.append((dict(request.headers), body))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture(scope="module")
def lms_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
async def lms(lms_database: str) -> AsyncIterator[tuple[Server, Receiver]]:
    receiver = Receiver()
    task = asyncio.create_task(receiver.server.serve())
    for _ in range(500):
        if receiver.server.started:
            break
        await asyncio.sleep(0.01)
    settings = make_settings(
        lms_database,
        f"t{secrets.token_hex(4)}",
        HADIR_LMS_WEBHOOK_URL=receiver.url,
        HADIR_LMS_WEBHOOK_SECRET=SECRET,
        HADIR_LMS_RETRY_BASE_S=0.05,
        HADIR_LMS_RETRY_MAX_S=0.3,
    )
    srv = Server(settings)
    await srv.start()
    try:
        yield srv, receiver
    finally:
        await srv.stop()
        receiver.server.should_exit = True
        await task


def verify(headers: dict[str, str], body: bytes) -> None:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_BYTES, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


async def test_lms_down_then_up_drains_everything_in_order(
    lms: tuple[Server, Receiver], sid: str
) -> None:
    server, receiver = lms
    async with admin_client(server.http) as api:
        await finalised_class(api, sid, past_start(), course_id="lms-course")
        r = await api.post(
            "/v1/excuses", json={"user_id": "u3", "session_id": sid, "category": "medical"}
        )
        await api.post(f"/v1/excuses/{r.json()['id']}/decision", json={"decision": "accepted"})
        await attendance(api, sid, revision=2)
        for _ in range(100):
            if receiver.refused >= 3:
                break
            await asyncio.sleep(0.05)
        assert receiver.refused >= 3  # retried while down
        assert receiver.got == []
        receiver.down = False
        for _ in range(200):
            types = [orjson.loads(b)["type"] for _, b in receiver.got]
            if len(types) >= 4:
                break
            await asyncio.sleep(0.05)
    bodies: list[dict[str, Any]] = [orjson.loads(b) for _, b in receiver.got]
    for headers, body in receiver.got:
        verify(headers, body)
    session_msgs = [b for b in bodies if b["type"] != "standing.warning"]
    assert [b["type"] for b in session_msgs] == ["session.finalised", "record.revised"]
    assert session_msgs[1]["data"]["user_id"] == "u3"
    assert session_msgs[1]["data"]["status"] == "excused"
    assert session_msgs[1]["data"]["previous"]["status"] == "absent"
    warnings = [b["data"] for b in bodies if b["type"] == "standing.warning"]
    assert [(w["user_id"], w["level"]) for w in warnings] == [("u3", 1), ("u3", 2)]
    ids = [h["webhook-id"] for h, _ in receiver.got]
    assert len(ids) == len(set(ids))
