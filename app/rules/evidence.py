"""Evidence: from one participant's events to intervals and totals (POLICY §1).

Events are de-duplicated by id and processed in (ts, type order, id) order, so
any shuffle or repetition of the same events gives the same evidence.  At one
instant closes come before joins (a leave and a re-join at 10:00 leave no
gap), and joins before state reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from app.rules.policy import Policy

__all__ = [
    "TYPE_ORDER",
    "Event",
    "EventType",
    "Evidence",
    "Interval",
    "Window",
    "event_order",
    "participant_evidence",
]

EventType = Literal["join", "leave", "drop", "heartbeat", "camera", "engagement"]

# Processing order of events at the same instant.
TYPE_ORDER: Final[dict[str, int]] = {
    "leave": 0,
    "drop": 1,
    "join": 2,
    "camera": 3,
    "heartbeat": 4,
    "engagement": 5,
}
INF: Final = float("inf")


@dataclass(frozen=True, slots=True)
class Event:
    """One validated attendance event (the ingest's single event model)."""

    id: str
    user_id: str
    type: EventType
    ts: float
    conn: str = ""
    camera: bool | None = None
    visible: bool | None = None
    kind: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window `[start, end)`, for example an outage."""

    start: float
    end: float
    cause: str = "declared"

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Interval:
    """Time connected, or a gap credited as present (§1 "credited gaps")."""

    start: float
    end: float
    kind: Literal["connected", "credited"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one participant's events show about one session window."""

    user_id: str
    first_join: float | None  # join time of the connection that reached the window
    # Start of the present stretch (connected or credited) that holds the first join:
    # a verified claim covering the time before the join moves the effective join back.
    first_present: float | None
    last_seen: float | None  # end of the last connected interval or credited gap
    connected_s: float
    present_s: float  # connected_s + credited_s
    credited_s: float
    camera_s: float
    active_s: float
    engagements: int
    intervals: tuple[Interval, ...]
    drops: int  # connected intervals that ended with a drop inside the window
    connected_at_end: bool
    dropped_in_outage_and_not_returned: bool


def event_order(event: Event) -> tuple[float, int, str]:
    """Sort key that makes processing independent of arrival order."""
    return (event.ts, TYPE_ORDER[event.type], event.id)


def _union(pairs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of half-open pairs, sorted, touching pairs merged, empty ones dropped."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(pairs):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def participant_evidence(
    events: Iterable[Event],
    window_start: float,
    window_end: float,
    policy: Policy,
    outage_windows: Sequence[Window] = (),
    technical_claims: Sequence[Window] = (),
) -> Evidence:
    """Evidence of one participant over the session window `[window_start, window_end]`.

    `outage_windows` are the session's platform outages (§3), credited to a
    participant who was connected when each began; `technical_claims` are the
    participant's accepted technical claims (§6), credited wherever they cover
    time not connected.
    """
    unique = {e.id: e for e in events}
    ordered = sorted(unique.values(), key=event_order)
    user_id = ordered[0].user_id if ordered else ""
    return evidence_from_scan(
        user_id,
        scan_events(ordered, window_start, window_end),
        window_start,
        window_end,
        policy.reconnect_grace,
        outage_windows,
        technical_claims,
    )


Scan = tuple[list[tuple[float, float, bool]], float, float, int]


def scan_events(
    ordered: Sequence[Event], ws: float, we: float, connection_events: list[Event] | None = None
) -> Scan:
    """One pass over a participant's unique events in `event_order`.

    Returns the unclipped connected intervals `(join, close, closed by a drop)`,
    `camera_s`, `active_s` and the engagement count; appends the joins, leaves
    and drops to `connection_events` when given (for mass-drop detection).
    This is the inner loop of `evaluate_session`: plain floats only.
    """
    open_conns: set[str] = set()
    opened = mark = 0.0
    raw: list[tuple[float, float, bool]] = []
    camera = False  # last reported value applies until the next report
    visible = True
    camera_s = active_s = 0.0
    engagements = 0
    for e in ordered:
        t = e.ts
        if t > we:
            break
        typ = e.type
        if typ == "heartbeat" or typ == "camera":
            cam, vis = e.camera, e.visible
            if (cam is not None and cam != camera) or (vis is not None and vis != visible):
                if open_conns:
                    a = mark if mark > ws else ws
                    if t > a:
                        if camera:
                            camera_s += t - a
                        if visible:
                            active_s += t - a
                    mark = t
                if cam is not None:
                    camera = cam
                if vis is not None:
                    visible = vis
            continue
        if typ == "engagement":
            if t >= ws:
                engagements += 1
            continue
        if connection_events is not None:
            connection_events.append(e)
        if typ == "join":
            # A join on a connection already open is ignored.
            if e.conn not in open_conns:
                if not open_conns:
                    opened = mark = t
                    if raw and raw[-1][1] == t:
                        # Half-open intervals: [a, t) and [t, b) are one interval.
                        opened = raw.pop()[0]
                open_conns.add(e.conn)
        elif e.conn in open_conns:  # leave or drop; one with no open connection is ignored
            open_conns.remove(e.conn)
            if not open_conns:
                a = mark if mark > ws else ws
                if t > a:
                    if camera:
                        camera_s += t - a
                    if visible:
                        active_s += t - a
                # seed 000 §7: only an abnormal close (or heartbeat timeout) is a drop.
                raw.append((opened, t, typ == "drop"))
    if open_conns:
        a = mark if mark > ws else ws
        if we > a:
            if camera:
                camera_s += we - a
            if visible:
                active_s += we - a
        raw.append((opened, INF, False))
    return raw, camera_s, active_s, engagements


def evidence_from_scan(
    user_id: str,
    scan: Scan,
    ws: float,
    we: float,
    reconnect_grace: float,
    outage_windows: Sequence[Window] = (),
    technical_claims: Sequence[Window] = (),
) -> Evidence:
    """Clip a scan to the window and credit its gaps (§1)."""
    raw, camera_s, active_s, engagements = scan
    # Keep what reaches into the window; clip to it (§1: joining early counts from the start).
    first_join: float | None = None
    conn: list[tuple[float, float, bool]] = []
    for a, b, dropped in raw:
        if b > ws and a < we and b > a:
            if first_join is None:
                first_join = a
            conn.append((max(a, ws), min(b, we), dropped))
    connected_at_end = bool(conn) and conn[-1][1] >= we

    # Outages credit only participants connected just before they began (§1 rule 2).
    credit_windows = [(w.start, w.end) for w in technical_claims]
    for w in outage_windows:
        for a, b, _ in raw:
            if a < w.start <= b:
                credit_windows.append((w.start, w.end))
                break
    credit_windows = _union(credit_windows)

    gaps: list[tuple[float, float]] = []
    cursor = ws
    for a, b, _ in conn:
        if a > cursor:
            gaps.append((cursor, a))
        cursor = b
    if cursor < we:
        gaps.append((cursor, we))
    reconnect: list[tuple[float, float]] = []
    for k in range(len(conn) - 1):
        b = conn[k][1]
        a = conn[k + 1][0]
        # §1 rule 1: a drop followed by a reconnect within the grace is credited whole.
        if conn[k][2] and a - b <= reconnect_grace:
            reconnect.append((b, a))
    credited = _union(
        reconnect
        + [
            (max(g0, c0), min(g1, c1))
            for g0, g1 in gaps
            for c0, c1 in credit_windows
            if c0 < g1 and g0 < c1
        ]
    )

    connected_pairs = [(a, b) for a, b, _ in conn]
    connected_s = sum(b - a for a, b in connected_pairs)
    credited_s = sum(b - a for a, b in credited)

    last_seen: float | None = None
    if conn:
        last_seen = conn[-1][1]
    if credited and (last_seen is None or credited[-1][1] > last_seen):
        last_seen = credited[-1][1]

    first_present: float | None = None
    if first_join is not None:
        joined = max(first_join, ws)
        first_present = next(a for a, b in _union(connected_pairs + credited) if b > joined)

    lost_in_outage = False
    if conn and conn[-1][2]:
        t = conn[-1][1]
        lost_in_outage = any(w.start <= t <= w.end for w in outage_windows)

    intervals = [Interval(a, b, "connected") for a, b in connected_pairs]
    intervals += [Interval(a, b, "credited") for a, b in credited]
    intervals.sort(key=lambda i: i.start)
    return Evidence(
        user_id=user_id,
        first_join=first_join,
        first_present=first_present,
        last_seen=last_seen,
        connected_s=connected_s,
        present_s=connected_s + credited_s,
        credited_s=credited_s,
        camera_s=camera_s,
        active_s=active_s,
        engagements=engagements,
        intervals=tuple(intervals),
        drops=sum(1 for _, _, d in conn if d),
        connected_at_end=connected_at_end,
        dropped_in_outage_and_not_returned=lost_in_outage,
    )
