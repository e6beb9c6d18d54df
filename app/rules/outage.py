"""Platform outages and the 30% rule (POLICY §3, seed 000 §7).

`MassDropDetector` is a sans-I/O state machine: feed it joins, leaves and
drops in time order and it answers with open/close transitions; the live
path uses it as events arrive, `detect_mass_drops` replays a whole session
through it, so both always agree.  Memory: one set of open connections per
participant and the drops of the last `outage_detect_window`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from app.rules.evidence import Event, Window, event_order
from app.rules.policy import Policy

__all__ = [
    "MassDropDetector",
    "Transition",
    "detect_mass_drops",
    "fault_ratio",
    "service_gaps",
    "union",
]

EPS: Final = 1e-9
_CONNECTION_EVENTS: Final = frozenset({"join", "leave", "drop"})


@dataclass(frozen=True, slots=True)
class Transition:
    """A mass-drop window opened (at its first drop) or closed."""

    kind: Literal["open", "close"]
    ts: float  # when the transition is known
    window_start: float  # the first drop of the window
    dropped: int  # participants counted as dropped in the window so far


class MassDropDetector:
    """Detect mass drops (§3.1) from connection events in time order.

    Participants of all roles count.  A participant with several connections
    drops when the last one closes abnormally; voluntary leaves never count.
    """

    def __init__(self, policy: Policy) -> None:
        self._span = policy.outage_detect_window
        self._fraction = policy.outage_min_fraction
        self._minimum = policy.outage_min_participants
        self._conns: dict[str, set[str]] = {}
        self._connected = 0
        # Recent drops: (ts, user, participants connected just before the drop).
        self._recent: deque[tuple[float, str, int]] = deque()
        self._recent_users: dict[str, int] = {}
        self._open_since: float | None = None
        self._dropped: set[str] = set()
        self._returned: set[str] = set()
        self._closed: list[Window] = []

    @property
    def connected(self) -> int:
        """Participants connected now."""
        return self._connected

    @property
    def open_since(self) -> float | None:
        """Start of the open mass-drop window, if one is open."""
        return self._open_since

    def windows(self, until: float) -> list[Window]:
        """Windows found so far; an open one is shown ending at `until`."""
        out = list(self._closed)
        if self._open_since is not None:
            out.append(Window(self._open_since, until, "mass_drop"))
        return out

    def feed(self, event: Event) -> list[Transition]:
        """Feed any event; only joins, leaves and drops matter."""
        if event.type == "join":
            return self.join(event.user_id, event.ts, event.conn)
        if event.type == "drop":
            return self.drop(event.user_id, event.ts, event.conn)
        if event.type == "leave":
            self.leave(event.user_id, event.ts, event.conn)
        return []

    def join(self, user_id: str, ts: float, conn: str = "") -> list[Transition]:
        conns = self._conns.setdefault(user_id, set())
        if conn in conns:
            return []
        conns.add(conn)
        if len(conns) > 1:
            return []
        self._connected += 1
        if self._open_since is not None and user_id in self._dropped:
            self._returned.add(user_id)
            return self._maybe_close(ts)
        return []

    def leave(self, user_id: str, ts: float, conn: str = "") -> None:
        """A voluntary leave: never part of a mass drop."""
        self._close(user_id, conn)

    def drop(self, user_id: str, ts: float, conn: str = "") -> list[Transition]:
        """An abnormal close or a heartbeat timeout (`ts` = last heartbeat)."""
        before = self._connected
        if not self._close(user_id, conn):
            return []
        if self._open_since is not None:
            self._dropped.add(user_id)
            return []
        recent = self._recent
        recent.append((ts, user_id, before))
        self._recent_users[user_id] = self._recent_users.get(user_id, 0) + 1
        while ts - recent[0][0] > self._span:
            _, old, _ = recent.popleft()
            left = self._recent_users[old] - 1
            if left:
                self._recent_users[old] = left
            else:
                del self._recent_users[old]
        count = len(self._recent_users)
        first, _, base = recent[0]
        # seed 000 §7 / POLICY §3.1: enough of those connected just before, and enough.
        if count < self._minimum or count + EPS < self._fraction * base:
            return []
        self._open_since = first
        self._dropped = set(self._recent_users)
        self._returned = {u for u in self._dropped if self._conns[u]}
        recent.clear()
        self._recent_users.clear()
        opened = Transition("open", ts, first, len(self._dropped))
        return [opened, *self._maybe_close(ts)]

    def finish(self, ts: float) -> list[Transition]:
        """The session ended at `ts`: an open window closes there."""
        if self._open_since is None:
            return []
        return self._close_window(ts)

    def _close(self, user_id: str, conn: str) -> bool:
        """Close one connection; True when it was the participant's last."""
        conns = self._conns.get(user_id)
        if conns is None or conn not in conns:
            return False
        conns.remove(conn)
        if conns:
            return False
        self._connected -= 1
        self._returned.discard(user_id)
        return True

    def _maybe_close(self, ts: float) -> list[Transition]:
        # Closes when at least half of the dropped participants are connected again.
        if 2 * len(self._returned) >= len(self._dropped):
            return self._close_window(ts)
        return []

    def _close_window(self, ts: float) -> list[Transition]:
        start = self._open_since
        assert start is not None
        self._closed.append(Window(start, ts, "mass_drop"))
        closed = Transition("close", ts, start, len(self._dropped))
        self._open_since = None
        self._dropped = set()
        self._returned = set()
        return [closed]


def _flatten(events: Mapping[str, Iterable[Event]] | Iterable[Event]) -> Iterable[Event]:
    if isinstance(events, Mapping):
        for per_user in events.values():
            yield from per_user
    else:
        yield from events


def detect_mass_drops(
    events: Mapping[str, Iterable[Event]] | Iterable[Event],
    window_start: float,
    window_end: float,
    policy: Policy,
) -> list[Window]:
    """Mass-drop windows of a session, clipped to `[window_start, window_end]`.

    `events` is a flat iterable or a mapping user → events; duplicates (same
    id) count once and the order given does not matter.
    """
    unique = {e.id: e for e in _flatten(events) if e.type in _CONNECTION_EVENTS}
    return replay_mass_drops(
        sorted(unique.values(), key=event_order), window_start, window_end, policy
    )


def replay_mass_drops(
    ordered: Sequence[Event], window_start: float, window_end: float, policy: Policy
) -> list[Window]:
    """`detect_mass_drops` for unique connection events already in `event_order`."""
    detector = MassDropDetector(policy)
    for e in ordered:
        if e.ts > window_end:
            break
        detector.feed(e)
    detector.finish(window_end)
    clipped = (
        Window(max(w.start, window_start), min(w.end, window_end), w.cause)
        for w in detector.windows(window_end)
    )
    return [w for w in clipped if w.end > w.start]


def service_gaps(ticks: Iterable[float], policy: Policy) -> list[Window]:
    """Outages where the service's liveness ticks stopped for more than `service_gap`."""
    out = []
    previous: float | None = None
    for t in sorted(ticks):
        if previous is not None and t - previous > policy.service_gap:
            out.append(Window(previous, t, "service_gap"))
        previous = t
    return out


def union(windows: Iterable[Window]) -> list[Window]:
    """Union of windows from all causes; merged windows name every cause, '+'-joined."""
    out: list[Window] = []
    causes: list[set[str]] = []
    for w in sorted(windows, key=lambda w: (w.start, w.end, w.cause)):
        if w.end <= w.start:
            continue
        if out and w.start <= out[-1].end:
            last = out[-1]
            causes[-1].add(w.cause)
            out[-1] = Window(last.start, max(last.end, w.end), "+".join(sorted(causes[-1])))
        else:
            out.append(w)
            causes.append({w.cause})
    return out


def fault_ratio(windows: Iterable[Window], start: float, end: float) -> float:
    """Share of `[start, end]` inside the union of the windows (0 for an empty session)."""
    if end <= start:
        return 0.0
    lost = sum(max(0.0, min(w.end, end) - max(w.start, start)) for w in union(windows))
    return lost / (end - start)
