"""Live ingest: `GET /v1/live/{session_id}?token=…` (CONTRACT.md "Live ingest").

The connection is the participant's presence: opening it journals a join, a close with
1000/1001 or a `leave` message a leave, anything else a drop. Each frame is parsed once; its
valid events go to the shared journal writer and are acked when durable. A connection without
heartbeats for `HADIR_HEARTBEAT_TIMEOUT_S` is closed (4408) and its interval ends at its last
heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from app.ingest import sessions as directory
from app.ingest.events import MAX_BATCH, Entry, EventError, parse_event
from app.ingest.journal import op_for
from app.kit import clock, eager, metrics
from app.kit.auth import TokenError, decode_token
from app.kit.resources import Resources
from app.live.lifecycle import ENDED_STATUSES, mark_live
from app.rules import compliance

log = logging.getLogger(__name__)
router = APIRouter()

LIVE_ROLES = frozenset({"learner", "instructor", "assistant", "mentor"})
MAX_UNACKED_SEND_S = 10.0
MAX_PENDING = 512  # events of one connection awaiting their ack

# Close codes (CONTRACT.md): the 44xx ones are sent after accept so browsers can read them.
BAD_TOKEN, FORBIDDEN, UNKNOWN_SESSION, HEARTBEAT_TIMEOUT = 4401, 4403, 4404, 4408
SESSION_ENDED, CLASS_FULL, RATE_LIMITED = 4409, 4413, 4429
SERVER_ERROR = 1011

_conn_counter = itertools.count(1)
# A websocket connection's id: `<process instance>-<counter>`. Connections opened by trusted
# sources (imports, platform webhooks) have other ids and no heartbeats: they stay open until
# their leave, drop or the session end (CONTRACT.md), so the orphan sweep leaves them alone.
WS_CONN_RE = re.compile(r"^[0-9a-f]{8}-[0-9]+$")


@dataclass(eq=False, slots=True)
class LiveConnection:
    ws: WebSocket
    session_id: str
    user_id: str
    role: str
    conn: str
    last_heartbeat: float
    learner: bool
    tokens: float
    refilled: float = field(default_factory=time.monotonic)
    ended: bool = False
    # Pipelined acks: the reader keeps reading while earlier frames are being journaled.
    pending: int = 0  # events submitted whose ack is not sent yet
    unsent: list[str] = field(default_factory=list)  # durable ids waiting for the ack frame
    flusher: asyncio.Task[None] | None = None
    waiter: asyncio.Future[None] | None = None
    reader: asyncio.Task[Any] | None = None
    failure: BaseException | None = None

    def take(self, n: int, rate: float) -> bool:
        """Token bucket: `rate` events/s, bursts of 5× allowed."""
        now = time.monotonic()
        self.tokens = min(rate * 5, self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        self.tokens -= n
        return self.tokens >= 0

    def durable(self, ids: list[str], result: int | BaseException) -> None:
        """The writer's callback for one frame: its events are journaled (or never will be)."""
        if isinstance(result, BaseException):
            if self.failure is None:
                self.failure = result
                asyncio.get_running_loop().create_task(
                    close(self.ws, SERVER_ERROR, "journal unavailable, retry")
                )
            self.wake()
            return
        _events_ws.inc(result)
        if result < len(ids):
            metrics.duplicates_total.inc(len(ids) - result)
        self.unsent.extend(ids)
        if self.flusher is None:
            self.send_acks()

    def send_acks(self) -> None:
        """Send one ack frame for everything durable so far, right here in the writer's
        callback: a socket that takes the bytes completes the send without suspending (no task,
        no timer). Only a send that has to wait for the client to read goes on in the flusher
        task, which gives the client `MAX_UNACKED_SEND_S` to read."""
        while self.unsent and self.flusher is None:
            ids, self.unsent = self.unsent, []
            data = b'{"type":"ack","ids":' + orjson.dumps(ids) + b"}"
            try:
                rest = eager.start(self.ws.send_text(data.decode()))
            except Exception as exc:  # the socket is gone: the reader sees the disconnect
                log.debug("ack to %s failed: %s", self.conn, exc)
                return
            if rest is None:
                self.acked(len(ids))
            else:
                self.flusher = asyncio.get_running_loop().create_task(self._finish(rest, len(ids)))

    async def _finish(self, send: eager.Continuation, n: int) -> None:
        try:
            async with asyncio.timeout(MAX_UNACKED_SEND_S):
                await send
        except TimeoutError:
            # A client that stops reading must not hold its connection forever.
            self.failure = TimeoutError("client stopped reading")
            if self.reader is not None:
                self.reader.cancel()
            return
        except Exception as exc:  # the socket is gone: the reader sees the disconnect
            log.debug("ack to %s failed: %s", self.conn, exc)
            return
        finally:
            self.flusher = None
        self.acked(n)
        self.send_acks()

    def acked(self, n: int) -> None:
        self.pending -= n
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_acked(self, at_most: int) -> None:
        """Until no more than `at_most` events await their ack (or the journal failed)."""
        while self.pending > at_most and self.failure is None:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        self.waiter = None


_events_ws = metrics.events_total.labels("ws")


@dataclass
class LiveRegistry:
    """This process's open live connections."""

    by_conn: dict[str, LiveConnection] = field(default_factory=dict)

    def add(self, c: LiveConnection) -> None:
        self.by_conn[c.conn] = c
        metrics.connections.set(len(self.by_conn))

    def remove(self, c: LiveConnection) -> None:
        self.by_conn.pop(c.conn, None)
        metrics.connections.set(len(self.by_conn))

    def of_session(self, session_id: str) -> list[LiveConnection]:
        return [c for c in self.by_conn.values() if c.session_id == session_id]


def registry(res: Resources) -> LiveRegistry:
    reg: LiveRegistry = res.extras.setdefault("live_registry", LiveRegistry())
    return reg


async def close(ws: WebSocket, code: int, reason: str) -> None:
    metrics.closes_total.labels(str(code)).inc()
    if ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=reason[:120])


def _entry(c: LiveConnection, etype: str, event_id: str, ts: float, **fields: Any) -> Entry:
    return Entry(
        event_id=event_id,
        type=etype,
        user_id=c.user_id,
        ts=ts,
        conn=c.conn,
        source="ws",
        fields=fields,
    )


async def end_connection(
    res: Resources,
    c: LiveConnection,
    etype: str,
    ts: float,
    *,
    reason: str | None = None,
    timed_out: bool = False,
) -> None:
    """Journal the end of a connection once (leave, drop or heartbeat timeout)."""
    if c.ended:
        return
    c.ended = True
    fields: dict[str, Any] = {"reason": reason} if reason else {}
    entry = _entry(c, etype, f"end:{c.conn}", ts, **fields)
    try:
        await res.writer.write(
            c.session_id, [(entry, op_for(entry, learner=c.learner, timeout=timed_out))]
        )
    except Exception as exc:
        # The orphan reaper closes it later at its last heartbeat.
        log.warning("could not journal the end of %s: %s", c.conn, exc)


@router.websocket("/v1/live/{session_id}")
async def live(ws: WebSocket, session_id: str) -> None:
    res: Resources = ws.app.state.resources
    settings = res.settings
    await ws.accept()
    origins = settings.origins
    origin = ws.headers.get("origin")
    if origins is not None and origin is not None and origin.rstrip("/") not in origins:
        await close(ws, FORBIDDEN, "origin not allowed")
        return
    try:
        who = decode_token(ws.query_params.get("token"), settings.token_secret)
    except TokenError as exc:
        await close(ws, BAD_TOKEN, exc.reason)
        return
    if who.session_id != session_id:
        await close(ws, FORBIDDEN, "token is not for this session")
        return
    if who.role not in LIVE_ROLES:
        await close(ws, FORBIDDEN, f"role {who.role} does not take part in live sessions")
        return
    info = await directory.load(res, session_id)
    if info is None:
        await close(ws, UNKNOWN_SESSION, "unknown session")
        return
    if info.status in ENDED_STATUSES:
        await close(ws, SESSION_ENDED, "session already ended")
        return
    role = info.roles.get(who.user_id, who.role)
    learner = role == "learner"
    keys = res.keys.session(session_id)
    if learner and info.policy.enforce_capacity:
        connected = await res.redis.hlen(keys.learners)
        full = not compliance.admit(connected, info.policy)
        if full and not await res.redis.hexists(keys.learners, who.user_id):
            await close(ws, CLASS_FULL, f"class full ({info.hard_cap} learners)")
            return
    now = clock.now()
    c = LiveConnection(
        ws=ws,
        session_id=session_id,
        user_id=who.user_id,
        role=role,
        conn=f"{res.instance}-{next(_conn_counter)}",
        last_heartbeat=now,
        learner=learner,
        tokens=settings.rate_limit_per_s * 5,
    )
    join = _entry(c, "join", f"join:{c.conn}", now, role=role)
    try:
        await res.writer.write(session_id, [(join, op_for(join, learner=learner))])
    except Exception:
        await close(ws, SERVER_ERROR, "journal unavailable, retry")
        return
    if info.status == "scheduled":
        info.status = "live"
        await mark_live(res, session_id, now, info.scheduled_end + info.policy.end_grace)
    reg = registry(res)
    reg.add(c)
    try:
        await _send(
            ws,
            {
                "type": "welcome",
                "session_id": session_id,
                "user_id": who.user_id,
                "heartbeat_interval_s": settings.heartbeat_interval_s,
                "server_time": clock.iso(now),
            },
        )
        code = await _serve(res, c)
    except asyncio.CancelledError:
        if not isinstance(c.failure, TimeoutError):
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        code = 1006  # the client stopped reading its acks: a drop
    except Exception as exc:  # a broken socket is a drop
        log.debug("live connection %s failed: %s", c.conn, exc)
        code = 1006
    finally:
        reg.remove(c)
    if not c.ended:
        if code in (1000, 1001):
            await end_connection(res, c, "leave", clock.now())
        else:
            await end_connection(res, c, "drop", clock.now(), reason="abnormal")


async def _serve(res: Resources, c: LiveConnection) -> int:
    """Read frames until the connection closes; returns the close code.

    Frames are submitted to the shared journal writer without waiting for them: the writer's
    callback sends the connection one ack for all of its events that became durable together,
    so an ack still only ever follows durability. At most `MAX_PENDING`
    events of a connection wait for their ack; beyond that the reader stops reading (and
    uvicorn stops reading the socket), so a flooding or non-reading client holds bounded memory.
    """
    ws = c.ws
    rate = res.settings.rate_limit_per_s
    writer = res.writer
    receive = ws.receive
    c.reader = asyncio.current_task()
    while True:
        if c.pending >= MAX_PENDING:
            await c.wait_acked(MAX_PENDING // 2)
        if c.failure is not None:
            return SERVER_ERROR
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return int(message.get("code") or 1005)
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes")
        received = time.perf_counter()
        try:
            data = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            metrics.rejected_total.labels("invalid_json").inc()
            await _send(ws, EventError("invalid_json", "frame is not valid JSON").message())
            continue
        items = data if isinstance(data, list) else [data]
        if len(items) > MAX_BATCH:
            metrics.rejected_total.labels("batch_too_large").inc()
            await _send(
                ws,
                EventError("batch_too_large", f"at most {MAX_BATCH} events per frame").message(),
            )
            continue
        if not c.take(len(items), rate):
            metrics.rejected_total.labels("rate_limited").inc()
            await close(ws, RATE_LIMITED, "rate limit exceeded")
            return RATE_LIMITED
        now = clock.now()
        pairs: list[tuple[Entry, str]] = []
        ids: list[str] = []
        errors: list[dict[str, Any]] = []
        leave = False
        for obj in items:
            try:
                event_id, etype, fields, _, _ = parse_event(obj, trusted=False, user_id=c.user_id)
            except EventError as exc:
                metrics.rejected_total.labels(exc.code).inc()
                errors.append(exc.message())
                continue
            if c.ended:
                errors.append(
                    EventError("connection_ended", "this connection has left", event_id).message()
                )
                continue
            if etype == "heartbeat":
                c.last_heartbeat = now
            entry = Entry(event_id, etype, c.user_id, now, c.conn, "ws", fields)
            if etype == "leave":
                if leave:
                    continue
                leave = True
            pairs.append((entry, op_for(entry, learner=c.learner)))
            ids.append(event_id)
        for error in errors:
            await _send(ws, error)
        if not pairs:
            continue
        c.pending += len(ids)
        writer.submit(c.session_id, pairs, functools.partial(c.durable, ids), received)
        if leave:
            await c.wait_acked(0)
            if c.failure is not None:
                return SERVER_ERROR
            c.ended = True
            await close(ws, 1000, "left")
            return 1000


async def _send(ws: WebSocket, body: dict[str, Any]) -> None:
    await _send_raw(ws, orjson.dumps(body))


async def _send_raw(ws: WebSocket, data: bytes) -> None:
    # A client that stops reading must not hold its connection forever.
    async with asyncio.timeout(MAX_UNACKED_SEND_S):
        await ws.send_text(data.decode())


async def sweep_timeouts(res: Resources) -> None:
    """Close this process's silent connections (4408) at their last heartbeat, and journal
    heartbeat timeouts for connections whose server process died (orphans)."""
    timeout = res.settings.heartbeat_timeout_s
    reg = registry(res)
    now = clock.now()
    for c in list(reg.by_conn.values()):
        if not c.ended and now - c.last_heartbeat > timeout:
            await end_connection(
                res, c, "drop", c.last_heartbeat, reason="heartbeat_timeout", timed_out=True
            )
            await close(c.ws, HEARTBEAT_TIMEOUT, "heartbeat timeout")
    # Orphans: open in Redis, silent for longer than the timeout plus a margin, not ours.
    live = await res.redis.zrange(res.keys.live_sessions, 0, -1)
    cutoff = now - timeout - 5.0
    for raw_sid in live:
        sid = raw_sid.decode() if isinstance(raw_sid, bytes) else str(raw_sid)
        stale = cast(
            list[tuple[bytes, float]],
            await res.redis.zrangebyscore(
                res.keys.session(sid).conns, "-inf", cutoff, withscores=True
            ),
        )
        entries: list[tuple[Entry, str]] = []
        for member, score in stale:
            text = member.decode() if isinstance(member, bytes) else str(member)
            conn, _, user = text.partition("|")
            if conn in reg.by_conn or not WS_CONN_RE.match(conn):
                continue
            info = await directory.load(res, sid)
            learner = info is not None and info.roles.get(user) == "learner"
            entry = Entry(
                f"end:{conn}",
                "drop",
                user,
                float(score),
                conn,
                "ws",
                {"reason": "heartbeat_timeout"},
            )
            entries.append((entry, op_for(entry, learner=learner, timeout=True)))
        if entries:
            await res.writer.write(sid, entries)


SERVICE_GAP_MIN_S = 5.0


def service_gap_entry(start: float, end: float) -> Entry:
    """The journal entry of a stop of the service from `start` to `end`."""
    return Entry(
        f"gap:{int(start * 1000)}",
        "outage",
        "_service",
        start,
        "",
        "service",
        {"start": start, "end": end, "cause": "service_gap"},
    )


async def liveness_tick(res: Resources) -> None:
    """Record that the service is running; a gap since the previous tick of any process is a
    service-gap outage for every live session (POLICY.md §3.2; the policy's `service_gap`
    threshold is applied when the session is finalised)."""
    now = clock.now()
    previous = await res.redis.set(res.keys.liveness, repr(now), get=True, ex=7 * 86400)
    if previous is None:
        return
    prev = float(previous)
    if now - prev <= SERVICE_GAP_MIN_S:
        return
    # Sessions still live when the gap began (scored by scheduled end plus end_grace).
    live = await res.redis.zrangebyscore(res.keys.live_sessions, prev, "+inf")
    for raw_sid in live:
        sid = raw_sid.decode() if isinstance(raw_sid, bytes) else str(raw_sid)
        await res.writer.write(sid, [(service_gap_entry(prev, now), "x")])
    log.warning("service gap of %.1f s recorded for %d live session(s)", now - prev, len(live))


async def close_session_connections(res: Resources, session_id: str) -> None:
    """The session ended: its live connections leave now (4409 tells clients not to retry)."""
    for c in registry(res).of_session(session_id):
        await end_connection(res, c, "leave", clock.now(), reason="session_ended")
        await close(c.ws, SESSION_ENDED, "session ended")
