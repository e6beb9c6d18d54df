"""Instructor panel: `GET /v1/live/{session_id}/panel?token=…` (CONTRACT.md "Instructor panel").

One `PanelHub` per watched session per server process follows the session's journal in Redis:
the journal's pub/sub notification wakes it, it reads the new entries (XRANGE from its last id,
so a missed notification loses nothing and every process sees every process's events), and at
most every 250 ms it re-evaluates the participants whose events changed with the rules engine
(`evaluate_session(..., now=…)`: the provisional outcome) and sends a coalesced delta to each
panel socket. Every few seconds it re-evaluates everyone, since outcomes also change with time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from fastapi import APIRouter, WebSocket
from sqlalchemy import select
from starlette.websockets import WebSocketState

from app.finalise import finaliser
from app.ingest import sessions as directory
from app.ingest.events import rules_event
from app.kit import clock, metrics
from app.kit.auth import TokenError, decode_token
from app.kit.db import outages
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources
from app.rules import compliance
from app.rules.evidence import Event, Window, event_order
from app.rules.outage import detect_mass_drops, fault_ratio, union
from app.rules.outcome import Participant, Record, SessionFacts, evaluate_session

log = logging.getLogger(__name__)
router = APIRouter()

PANEL_ROLES = frozenset({"instructor", "assistant", "observer"})
STAFF_ROLES = frozenset({"instructor", "assistant", "mentor"})
COALESCE_S = 0.1  # deltas at most every 100 ms (the contract allows 1 s)
FULL_REFRESH_S = 5.0
SEND_QUEUE = 64  # messages waiting for one slow panel before it is closed
PRESENCE = frozenset({"join", "leave", "drop"})
OVERLAP_S = 300.0  # archived events this recent may still be in the journal too


@dataclass
class UserLog:
    """A participant's events as the hub keeps them: heartbeats that only repeat the camera and
    visibility already known are dropped (they change no outcome; timeouts arrive as drops)."""

    events: list[Event] = field(default_factory=list)
    camera: bool | None = None
    visible: bool | None = None
    open_conns: set[str] = field(default_factory=set)
    last_end: str | None = None

    def add(self, e: Event) -> None:
        if e.type == "heartbeat":
            if e.camera == self.camera and e.visible == self.visible and self.events:
                return
            self.camera, self.visible = e.camera, e.visible
        elif e.type == "camera":
            self.camera = e.camera
        elif e.type == "join":
            self.open_conns.add(e.conn)
        elif e.type in ("leave", "drop") and e.conn in self.open_conns:
            self.open_conns.discard(e.conn)
            self.last_end = e.type
        self.events.append(e)

    @property
    def state(self) -> str:
        if self.open_conns:
            return "connected"
        if self.last_end == "drop":
            return "dropped"
        if self.last_end == "leave":
            return "left"
        return "never"


class PanelSocket:
    """One panel connection with its own bounded send queue: a slow reader never holds up the
    hub or the other panels; past SEND_QUEUE waiting messages it is closed."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(SEND_QUEUE)
        self.task = asyncio.create_task(self._pump())

    def send(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.stop()

    def stop(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        if self.queue.full():
            self.task.cancel()

    async def _pump(self) -> None:
        try:
            while (message := await self.queue.get()) is not None:
                await self.ws.send_text(message.decode())
        except Exception:
            pass
        finally:
            if self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(1008 if self.queue.full() else 1000)


class PanelHub:
    """Follows one session's journal for this process's panels."""

    def __init__(self, res: Resources, session_id: str) -> None:
        self.res = res
        self.session_id = session_id
        self.sockets: set[PanelSocket] = set()
        self.users: dict[str, UserLog] = {}
        self.gaps: list[Window] = []
        self.declared: list[Window] = []
        self.last_id = "0-0"
        self.overlap: set[tuple[str, str]] | None = None
        self.overlap_from = 0.0
        self.views: dict[str, dict[str, Any]] = {}
        self.session_view: dict[str, Any] = {}
        self.sent_session: dict[str, Any] = {}
        self.outage_view: dict[str, Any] = {}
        self.dirty: set[str] = set()
        self.presence_changed = True
        self.wake = asyncio.Event()
        self.finalised = False
        self.info: directory.SessionInfo | None = None
        self.task: asyncio.Task[None] | None = None
        self.listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.info = await directory.load(self.res, self.session_id, fresh=True)
        await self._bootstrap()
        await self._read_new()
        self.overlap = None
        await self._load_declared()
        self._evaluate(full=True)
        self.task = asyncio.create_task(self._run(), name=f"panel-{self.session_id}")
        self.listener = asyncio.create_task(self._listen(), name=f"panel-sub-{self.session_id}")

    async def stop(self) -> None:
        for task in (self.task, self.listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def snapshot(self) -> bytes:
        self.sent_session = self.session_view
        return orjson.dumps(
            {
                "type": "snapshot",
                "session": self.session_view,
                "participants": sorted(self.views.values(), key=lambda p: p["user_id"]),
            }
        )

    def on_control(self, op: str) -> None:
        if op == "finalised":
            self.finalised = True
            self.wake.set()
        elif op in ("ended", "outage"):
            self.presence_changed = True
            self.wake.set()

    async def _listen(self) -> None:
        channel = self.res.keys.session(self.session_id).channel
        while True:
            stop_if_cancelled()
            try:
                async with self.res.redis.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    self.wake.set()  # catch up on anything written while unsubscribed
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("panel feed for %s lost (%s); resubscribing", self.session_id, exc)
                await asyncio.sleep(1.0)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time() + FULL_REFRESH_S
        while True:
            stop_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_full - loop.time())):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self._read_new()
                full = loop.time() >= next_full
                if full:
                    self.info = await directory.load(self.res, self.session_id) or self.info
                    await self._load_declared()
                    next_full = loop.time() + FULL_REFRESH_S
                self._broadcast(self._evaluate(full=full))
                if self.finalised:
                    self._send_all(b'{"type":"finalised"}')
                    self.finalised = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("panel refresh failed for %s", self.session_id)
            await asyncio.sleep(COALESCE_S)

    async def _bootstrap(self) -> None:
        """Start from the archived events in PostgreSQL: once archived, the Redis journal keeps
        only a recent tail, so a hub that starts late in a session needs both."""
        assert self.info is not None
        async with self.res.engine.connect() as db:
            events, gaps = await finaliser.load_events(db, self.session_id, self.info.policy)
        events.sort(key=event_order)
        for event in events:
            self._add(event)
        self.gaps.extend(gaps)
        if events:
            # Journal entries this old are archived already; newer ones may be in both.
            self.overlap_from = events[-1].ts - OVERLAP_S
            self.overlap = {(e.user_id, e.id) for e in events if e.ts >= self.overlap_from}

    def _add(self, event: Event) -> None:
        self.users.setdefault(event.user_id, UserLog()).add(event)
        self.dirty.add(event.user_id)
        if event.type in PRESENCE:
            self.presence_changed = True

    async def _read_new(self) -> None:
        key = self.res.keys.session(self.session_id).journal
        while True:
            entries = await self.res.redis.xrange(key, min=f"({self.last_id}", count=5000)
            if not entries:
                return
            for entry_id, fields in entries:
                self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                body = orjson.loads(cast(dict[bytes, bytes], fields)[b"e"])
                event = rules_event(body)
                if self.overlap is not None and float(body.get("ts", 0.0)) < self.overlap_from:
                    continue
                if event is None:
                    if body.get("type") == "outage":
                        self.gaps.append(
                            Window(float(body["start"]), float(body["end"]), str(body["cause"]))
                        )
                        self.presence_changed = True
                    continue
                if self.overlap is not None and (event.user_id, event.id) in self.overlap:
                    continue
                self._add(event)
            if len(entries) < 5000:
                return

    async def _load_declared(self) -> None:
        async with self.res.engine.connect() as db:
            rows = (
                await db.execute(
                    select(outages.c.start, outages.c.end, outages.c.cause).where(
                        outages.c.session_id == self.session_id
                    )
                )
            ).all()
        declared = [Window(clock.from_dt(r.start), clock.from_dt(r.end), r.cause) for r in rows]
        if declared != self.declared:
            self.declared = declared
            self.presence_changed = True

    def _evaluate(self, *, full: bool) -> list[dict[str, Any]]:
        """Recompute views (all, or the dirty ones); returns the participants that changed."""
        info = self.info
        if info is None:
            return []
        now = clock.now()
        start, end = info.scheduled_start, info.scheduled_end
        policy = info.policy
        windows = self._windows(info, now)
        targets = set(info.roles) | set(self.users) if full else set(self.dirty)
        self.dirty.clear()
        changed: list[dict[str, Any]] = []
        if targets:
            # Outage windows are computed above from every participant; the per-participant
            # evaluation below takes them as given instead of re-detecting on a subset.
            facts = SessionFacts(
                session_id=self.session_id,
                kind=info.kind,
                mode=info.mode,
                start=start,
                duration_s=info.duration_s,
                ended_at=None,
                camera_required=info.camera_required,
                roster=tuple(
                    Participant(u, r, info.consent.get(u, False))
                    for u, r in info.roles.items()
                    if u in targets
                ),
                declared_outages=tuple(windows),
            )
            events = [e for u in targets if u in self.users for e in self.users[u].events]
            quiet = dataclasses.replace(policy, outage_min_participants=10**9)
            outcome = evaluate_session(facts, events, quiet, now=min(now, end))
            for record in outcome.records:
                view = self._view(info, record, now)
                if self.views.get(record.user_id) != view:
                    self.views[record.user_id] = view
                    changed.append(view)
        self._session(info, windows, now, start, end)
        return changed

    def _windows(self, info: directory.SessionInfo, now: float) -> list[Window]:
        start, end = info.scheduled_start, info.scheduled_end
        presence = [e for log_ in self.users.values() for e in log_.events if e.type in PRESENCE]
        until = min(now, end)
        mass = detect_mass_drops(presence, start, until, info.policy) if until > start else []
        gaps = [g for g in self.gaps if g.end - g.start > info.policy.service_gap]
        return union([*mass, *gaps, *self.declared])

    def _view(self, info: directory.SessionInfo, record: Record, now: float) -> dict[str, Any]:
        log_ = self.users.get(record.user_id)
        state = log_.state if log_ is not None else "never"
        # The provisional outcome counts a connected participant as staying to the end; the
        # panel shows the time present so far.
        present_so_far = record.present_s
        if state == "connected":
            present_so_far -= max(0.0, info.scheduled_end - max(now, info.scheduled_start))
        present_so_far = max(0.0, present_so_far)
        flags = list(record.flags)
        if "joined_late" in record.reasons:
            flags.append("late")
        if record.role == "guest":
            flags.append("guest")
        camera = bool(log_ and log_.camera)
        if info.camera_required and state == "connected" and not camera:
            flags.append("camera_off")
        if (
            record.role == "learner"
            and record.status in ("absent", "partial")
            and (state != "never" or now - info.scheduled_start > info.policy.late_after)
        ):
            flags.append("at_risk")
        return {
            "user_id": record.user_id,
            "name": info.names.get(record.user_id) or record.user_id,
            "role": record.role,
            "state": state,
            "joined_at": clock.iso(record.first_join),
            "present_s": round(present_so_far, 1),
            "camera": camera,
            "engagements": record.engagements,
            "flags": sorted(set(flags)),
            "provisional": {
                "status": record.status,
                "credit": record.credit,
                "reasons": list(record.reasons),
            },
        }

    def _session(
        self,
        info: directory.SessionInfo,
        windows: list[Window],
        now: float,
        start: float,
        end: float,
    ) -> None:
        open_window = any(w.start <= now < w.end or w.end >= min(now, end) for w in windows)
        ratio = fault_ratio(windows, start, end) if windows else 0.0
        outage = {
            "active": bool(windows) and open_window and now < end,
            "fault_ratio": round(ratio, 4),
            "windows": [
                {"start": clock.iso(w.start), "end": clock.iso(w.end), "cause": w.cause}
                for w in windows
            ],
        }
        learners = sum(1 for r in info.roles.values() if r == "learner")
        staff_present = sum(
            1
            for u, log_ in self.users.items()
            if info.roles.get(u) in ("instructor", "assistant") and log_.open_conns
        )
        self.session_view = {
            "id": self.session_id,
            "status": info.status,
            "started_at": clock.iso(info.started_at),
            "title": info.title,
            "kind": info.kind,
            "scheduled_start": clock.iso(start),
            "duration_s": info.duration_s,
            "camera_required": info.camera_required,
            "outage": outage,
            "capacity": {
                "learners": learners,
                "cap": info.policy.class_cap,
                "hard_cap": compliance.hard_cap(info.policy),
            },
            "staffing": {
                "required": compliance.instructors_required(learners, True, info.policy),
                "present": staff_present,
            },
        }
        if outage != self.outage_view:
            if self.outage_view:
                self._send_all(orjson.dumps({"type": "outage", **outage}))
            self.outage_view = outage

    def _broadcast(self, changed: list[dict[str, Any]]) -> None:
        """A delta when participants or the session itself (status, staffing, ...) changed."""
        if changed or self.session_view != self.sent_session:
            self.sent_session = self.session_view
            self._send_all(
                orjson.dumps(
                    {"type": "delta", "participants": changed, "session": self.session_view}
                )
            )

    def _send_all(self, message: bytes) -> None:
        for sock in list(self.sockets):
            sock.send(message)


async def stop_hubs(res: Resources) -> None:
    """Stop every panel hub of this process (server shutdown)."""
    for hub in list(res.extras.get("panel_hubs", {}).values()):
        await hub.stop()
    res.extras.get("panel_hubs", {}).clear()


def hubs(res: Resources) -> dict[str, PanelHub]:
    found: dict[str, PanelHub] = res.extras.setdefault("panel_hubs", {})
    if "panel_control" not in res.extras:
        res.extras["panel_control"] = True

        async def on_control(body: dict[str, object]) -> None:
            hub = found.get(str(body.get("session_id")))
            if hub is not None:
                hub.info = await directory.load(res, hub.session_id, fresh=True) or hub.info
                hub.on_control(str(body.get("op")))

        res.extras.setdefault("control_callbacks", []).append(on_control)
    return found


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    metrics.closes_total.labels(str(code)).inc()
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason)


@router.websocket("/v1/live/{session_id}/panel")
async def panel(ws: WebSocket, session_id: str) -> None:
    res: Resources = ws.app.state.resources
    await ws.accept()
    try:
        who = decode_token(ws.query_params.get("token"), res.settings.token_secret)
    except TokenError as exc:
        await _close(ws, 4401, exc.reason)
        return
    if who.session_id != session_id or who.role not in PANEL_ROLES:
        await _close(ws, 4403, "the panel needs an instructor, assistant or observer token")
        return
    info = await directory.load(res, session_id, fresh=True)
    if info is None:
        await _close(ws, 4404, "unknown session")
        return
    found = hubs(res)
    hub = found.get(session_id)
    if hub is None:
        hub = PanelHub(res, session_id)
        found[session_id] = hub
        try:
            await hub.start()
        except Exception:
            found.pop(session_id, None)
            await hub.stop()
            await _close(ws, 1011, "live state unavailable, retry")
            return
    sock = PanelSocket(ws)
    sock.send(hub.snapshot())
    hub.sockets.add(sock)
    metrics.panel_connections.inc()
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
    finally:
        metrics.panel_connections.dec()
        hub.sockets.discard(sock)
        sock.stop()
        if not hub.sockets and found.get(session_id) is hub:
            found.pop(session_id, None)
            await hub.stop()
