"""Simulated participants on `picows` websocket connections.

A `Participant` is one user in one session; it outlives its connections: a drop and reconnect
opens a new connection and re-sends every event not yet acked, as one JSON array (the browser
client's offline queue). All sending happens in picows callbacks and `loop.call_later` timers,
never one task per connection, so one generator process drives thousands of connections
without measuring itself (MEASUREMENTS.md: a pure-Python client saturates near 20-30k msg/s).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

# Close codes after which a real client does not reconnect (CONTRACT.md "Live ingest").
FINAL_CLOSES = frozenset({1000, 4401, 4403, 4404, 4409, 4413})
ENGAGEMENTS = (b"question", b"chat", b"poll_vote", b"response", b"reaction", b"hand_raise")


@dataclass
class Stats:
    """Counters of the whole generator process."""

    sent: int = 0  # events sent, first time only
    resent: int = 0  # events sent again after a reconnect
    acked: int = 0  # distinct events acked
    acked_in_window: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, in the window only
    heartbeats: int = 0
    missed_heartbeats: int = 0  # not acked within one heartbeat interval
    errors: int = 0  # {"type": "error"} frames
    connects: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    drops: int = 0  # connections this generator dropped on purpose
    closes: dict[int, int] = field(default_factory=dict)  # close codes the server sent
    lost_connections: int = 0  # connections that ended without our asking
    window_open: bool = False


@dataclass
class Behaviour:
    """What participants do. Probabilities are per heartbeat."""

    mode: str = "throughput"  # or "capacity"
    window: int = 8  # unacked events per connection (throughput)
    heartbeat_s: float | None = None  # None: the server's interval from the welcome
    p_camera: float = 0.05
    p_engagement: float = 0.1
    expects_welcome: bool = True  # the echo baseline sends none


class Link(WSListener):
    """One websocket connection of a participant."""

    def __init__(self, participant: Participant) -> None:
        self.p = participant
        self.transport: WSTransport | None = None
        self.close_code: int | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.p.behaviour.expects_welcome:
            self.p.ready(self, None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            self.p.received(self, frame.get_payload_as_bytes())
        elif kind == WSMsgType.CLOSE:
            self.close_code = int(frame.get_close_code().value)
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.p.disconnected(self)


class Participant:
    """One user of one session; reconnects until told to stop."""

    def __init__(
        self,
        crowd: Crowd,
        index: int,
        session_id: str,
        user_id: str,
        url: str,
        behaviour: Behaviour,
    ) -> None:
        self.crowd = crowd
        self.index = index
        self.session_id = session_id
        self.user_id = user_id
        self.url = url
        self.behaviour = behaviour
        self.link: Link | None = None
        self.live = False  # welcomed and sending
        self.seq = 0
        self.unacked: dict[str, tuple[float, bytes, bool]] = {}  # id → (sent at, body, resent)
        self.sent_ids: set[str] = set()
        self.acked_ids: set[str] = set()
        self.camera = True
        self.leaving = False
        self.done = False  # left, or the run is over
        self.interval = behaviour.heartbeat_s or 10.0
        self.timer: asyncio.TimerHandle | None = None
        self.backoff = 0.2

    # connection lifecycle

    async def connect(self) -> None:
        if self.done:
            return
        try:
            _, listener = await ws_connect(
                lambda: Link(self), self.url, websocket_handshake_timeout=10
            )
        except Exception:
            self.crowd.stats.connect_failures += 1
            self._retry()
            return
        assert isinstance(listener, Link)
        self.link = listener
        self.crowd.stats.connects += 1
        self.backoff = 0.2

    def _retry(self) -> None:
        if self.done or self.crowd.stopping:
            return
        delay = self.backoff * (0.5 + random.random())
        self.backoff = min(self.backoff * 2, 2.0)
        self.crowd.later(delay, lambda: self.crowd.spawn(self.connect()))

    def ready(self, link: Link, welcome: dict[str, Any] | None) -> None:
        if link is not self.link and self.link is not None:
            return
        self.link = link
        self.live = True
        if welcome is not None and self.behaviour.heartbeat_s is None:
            self.interval = float(welcome["heartbeat_interval_s"])
        if self.unacked:
            # The offline queue: everything not acked, again, as one array.
            now = time.perf_counter()
            bodies = [body for _, body, _ in self.unacked.values()]
            for eid, (_, body, _) in list(self.unacked.items()):
                self.unacked[eid] = (now, body, True)
            self.crowd.stats.resent += len(bodies)
            self._send(b"[" + b",".join(bodies) + b"]")
        if self.behaviour.mode == "throughput":
            if self.crowd.rate == 0:
                self.fill()
        else:
            self._schedule(random.random() * self.interval if self.timer is None else None)

    def disconnected(self, link: Link) -> None:
        if link is not self.link:
            return
        self.live = False
        self.link = None
        code = link.close_code
        stats = self.crowd.stats
        if code is not None:
            stats.closes[code] = stats.closes.get(code, 0) + 1
        if self.done or self.crowd.stopping:
            return
        if code == 1000 and self.leaving:
            self.done = True
            return
        if code in FINAL_CLOSES:
            self.done = True
            return
        stats.lost_connections += 1
        stats.reconnects += 1
        self._retry()

    def drop(self, reconnect_after: float) -> None:
        """Break the connection without a close frame (a drop), then come back."""
        link = self.link
        if link is None or link.transport is None or self.done:
            return
        self.link = None
        self.live = False
        self.crowd.stats.drops += 1
        link.transport.disconnect(graceful=False)
        self.crowd.stats.reconnects += 1
        self.crowd.later(reconnect_after, lambda: self.crowd.spawn(self.connect()))

    def leave(self) -> None:
        if self.done or self.leaving or not self.live:
            return
        self.leaving = True
        self._event(b'"leave"', b"")

    def finish(self) -> None:
        """The run is over: close normally (the server journals a leave)."""
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        link = self.link
        if link is not None and link.transport is not None:
            link.transport.send_close()
            link.transport.disconnect()

    # events

    def _send(self, data: bytes) -> None:
        link = self.link
        if link is not None and link.transport is not None:
            link.transport.send(WSMsgType.TEXT, data)

    def _event(self, etype: bytes, rest: bytes) -> str:
        self.seq += 1
        eid = f"e{self.seq}"
        body = b'{"id":"' + eid.encode() + b'","type":' + etype + rest + b"}"
        self.unacked[eid] = (time.perf_counter(), body, False)
        self.sent_ids.add(eid)
        self.crowd.stats.sent += 1
        self._send(body)
        return eid

    def heartbeat(self) -> None:
        self.crowd.stats.heartbeats += 1
        cam = b"true" if self.camera else b"false"
        self._event(b'"heartbeat"', b',"camera":' + cam + b',"mic":true,"visible":true')

    def some_event(self) -> None:
        """The throughput mix: mostly heartbeats, some camera toggles and engagements."""
        r = random.random()
        if r < 0.8:
            self.heartbeat()
        elif r < 0.9:
            self.camera = not self.camera
            self._event(b'"camera"', b',"on":' + (b"true" if self.camera else b"false"))
        else:
            kind = random.choice(ENGAGEMENTS)
            self._event(b'"engagement"', b',"kind":"' + kind + b'"')

    def fill(self) -> None:
        while self.can_send():
            self.some_event()

    def can_send(self) -> bool:
        return (
            self.live
            and not self.done
            and not self.crowd.stopping
            and self.crowd.offering
            and len(self.unacked) < self.behaviour.window
        )

    def received(self, link: Link, data: bytes) -> None:
        msg = orjson.loads(data)
        ids: list[str]
        if isinstance(msg, list):
            ids = [m.get("id", "") for m in msg if isinstance(m, dict)]
        elif msg.get("type") == "ack":
            ids = msg["ids"]
        elif msg.get("type") == "welcome":
            self.ready(link, msg)
            return
        elif msg.get("type") == "error":
            self.crowd.stats.errors += 1
            return
        else:
            ids = [msg.get("id", "")]  # the echo baseline returns the event itself
        stats = self.crowd.stats
        now = time.perf_counter()
        for eid in ids:
            item = self.unacked.pop(eid, None)
            if item is None:
                continue
            if eid not in self.acked_ids:
                self.acked_ids.add(eid)
                stats.acked += 1
                if stats.window_open:
                    stats.acked_in_window += 1
                    if not item[2]:
                        stats.latencies.append(now - item[0])
        if self.behaviour.mode == "throughput" and self.crowd.rate == 0:
            self.fill()

    # the capacity mode's timers

    def _schedule(self, delay: float | None) -> None:
        self.timer = self.crowd.later(self.interval if delay is None else delay, self.tick)

    def tick(self) -> None:
        self.timer = None
        if self.done:
            return
        if self.live:
            now = time.perf_counter()
            for sent_at, body, _ in self.unacked.values():
                if b'"heartbeat"' in body and now - sent_at > self.interval:
                    self.crowd.stats.missed_heartbeats += 1
            self.heartbeat()
            if random.random() < self.behaviour.p_camera:
                self.camera = not self.camera
                self._event(b'"camera"', b',"on":' + (b"true" if self.camera else b"false"))
            if random.random() < self.behaviour.p_engagement:
                kind = random.choice(ENGAGEMENTS)
                self._event(b'"engagement"', b',"kind":"' + kind + b'"')
        self._schedule(None)


class Crowd:
    """Every participant of this generator process and the timers that drive them."""

    def __init__(self, rate: float) -> None:
        self.rate = rate  # offered events/s (throughput mode); 0 = as fast as acks allow
        self.stats = Stats()
        self.participants: list[Participant] = []
        self.stopping = False  # the run is over: no new events, no reconnects
        self.offering = True  # False: no new events, but unacked ones are still re-sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    def later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, fn)

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def live(self) -> int:
        return sum(1 for p in self.participants if p.live)

    def inflight(self) -> int:
        return sum(len(p.unacked) for p in self.participants)

    async def pace(self, until: float) -> None:
        """Offer `rate` events/s in total, round robin over the connections with window room."""
        start = time.perf_counter()
        issued = 0
        n = len(self.participants)
        cursor = 0
        while not self.stopping and time.perf_counter() < until:
            await asyncio.sleep(0.002)
            due = int((time.perf_counter() - start) * self.rate) - issued
            tried = 0
            while due > 0 and tried < n:
                p = self.participants[cursor]
                cursor = (cursor + 1) % n
                tried += 1
                if p.can_send():
                    p.some_event()
                    issued += 1
                    due -= 1
                    tried = 0
            if due > 0:
                issued += due  # every window is full: the offered excess is not sent
