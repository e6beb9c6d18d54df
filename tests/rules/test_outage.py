"""POLICY §3: mass drops, service gaps, union of windows, fault ratio."""

from __future__ import annotations

import pytest

from app.rules.evidence import Event, Window
from app.rules.outage import (
    MassDropDetector,
    Transition,
    detect_mass_drops,
    fault_ratio,
    service_gaps,
    union,
)
from app.rules.policy import resolve
from tests.rules.factories import POLICY, at, ev, window

S = 1 / 60


def joined(users: str, minute: float = 0) -> list[Event]:
    return [ev(u, "join", minute, f"c{u}") for u in users]


def drops(users: str, minute: float, step: float = 5 * S, typ: str = "drop") -> list[Event]:
    return [ev(u, typ, minute + i * step, f"c{u}") for i, u in enumerate(users)]  # type: ignore[arg-type]


def detect(events: list[Event] | dict[str, list[Event]], policy=POLICY) -> list[Window]:  # type: ignore[no-untyped-def]
    return detect_mass_drops(events, at(0), at(60), policy)


def test_mass_drop_opens_at_first_drop_and_closes_at_half_back() -> None:
    events = joined("abcdef") + drops("abc", 30) + joined("a", 33) + joined("b", 34)
    assert detect(events) == [Window(at(30), at(34), "mass_drop")]


def test_mass_drop_needs_fraction_of_those_connected() -> None:
    # 3 of 7 connected is below half: no outage; 3 of 6 is exactly half: outage.
    assert detect(joined("abcdefg") + drops("abc", 30)) == []
    assert len(detect(joined("abcdef") + drops("abc", 30))) == 1


def test_mass_drop_needs_minimum_participants() -> None:
    assert detect(joined("ab") + drops("ab", 30)) == []


def test_mass_drop_within_the_detect_window_only() -> None:
    assert detect(joined("abcd") + drops("abc", 30, step=10 * S)) != []  # spread over 20s
    assert detect(joined("abcd") + drops("abc", 30, step=10.5 * S)) == []  # over 21s


def test_voluntary_leaves_do_not_count() -> None:
    assert detect(joined("abcd") + drops("abc", 30, typ="leave")) == []


def test_unreturned_drop_closes_at_session_end_and_late_drops_join() -> None:
    events = joined("abcdef") + drops("abc", 30) + drops("de", 40) + joined("ab", 45)
    # 5 dropped; 2 back is less than half: open until the end
    assert detect(events) == [Window(at(30), at(60), "mass_drop")]
    back = events + joined("c", 50)
    assert detect(back) == [Window(at(30), at(50), "mass_drop")]


def test_second_tab_keeps_a_participant_connected() -> None:
    events = joined("abcd") + [ev("a", "join", 0, "extra")] + drops("abc", 30)
    assert detect(events) == []  # only b and c dropped


def test_quick_returns_before_detection_close_at_once() -> None:
    events = joined("abcd") + [
        ev("a", "drop", 30, "ca"),
        ev("a", "join", 30 + 2 * S, "ca"),
        ev("b", "drop", 30 + 4 * S, "cb"),
        ev("b", "join", 30 + 6 * S, "cb"),
        ev("c", "drop", 30 + 8 * S, "cc"),
    ]
    assert detect(events) == [Window(at(30), at(30 + 8 * S), "mass_drop")]


def test_windows_clipped_to_session_and_mapping_input() -> None:
    events = joined("abcd", -10) + drops("abc", -5)
    assert detect(events) == [Window(at(0), at(60), "mass_drop")]
    by_user = {"x": joined("abcd", 0), "y": drops("abc", 59.8)}
    assert detect(by_user) == [Window(at(59.8), at(60), "mass_drop")]
    assert detect(joined("abcd") + drops("abc", 61)) == []


def test_detector_transitions() -> None:
    d = MassDropDetector(resolve("platform", {}, {"outage_min_participants": 2}))
    assert d.feed(ev("a", "join", 0, "1")) == []
    d.join("b", at(0))
    d.join("c", at(0))
    d.join("c", at(0))  # already open
    assert d.connected == 3
    assert d.feed(ev("z", "heartbeat", 1)) == []
    assert d.drop("a", at(10), "1") == []
    assert d.feed(ev("b", "drop", 10.1, "")) == [Transition("open", at(10.1), at(10), 2)]
    assert d.open_since == at(10)
    assert d.drop("c", at(11)) == []  # joins the open window
    assert d.drop("nobody", at(11)) == []
    d.leave("c", at(11))  # nothing open
    assert d.join("q", at(12)) == []  # not one of the dropped
    assert d.windows(at(20)) == [Window(at(10), at(20), "mass_drop")]
    assert d.join("a", at(13), "1") == []  # 1 of 3 back
    assert d.feed(ev("b", "join", 14, "")) == [Transition("close", at(14), at(10), 3)]
    assert d.finish(at(60)) == []
    assert d.windows(at(60)) == [Window(at(10), at(14), "mass_drop")]


def test_service_gaps() -> None:
    ticks = [at(0), at(0.2), at(0.2) + 15, at(1)]
    assert service_gaps(reversed(ticks), POLICY) == [
        Window(at(0.2) + 15, at(1), "service_gap")
    ]


def test_union_and_fault_ratio() -> None:
    ws = [window(10, 20), window(15, 25, "mass_drop"), window(30, 30), window(40, 50), window(12, 14)]
    assert union(ws) == [window(10, 25, "declared+mass_drop"), window(40, 50)]
    assert fault_ratio(ws, at(0), at(60)) == pytest.approx(25 / 60)
    assert fault_ratio([window(-10, 70)], at(0), at(60)) == 1.0
    assert fault_ratio(ws, at(0), at(0)) == 0.0


def test_repeated_drops_of_one_participant_count_once() -> None:
    events = joined("abcd") + [
        ev("a", "drop", 30, "ca"),
        ev("a", "join", 30 + 5 * S, "ca"),
        ev("a", "drop", 30 + 15 * S, "ca"),
        ev("b", "drop", 30 + 25 * S, "cb"),  # the first drop of a is older than 20s now
    ]
    assert detect(events) == []
    more = [*events, ev("c", "drop", 30 + 30 * S, "cc")]
    assert detect(more) == [Window(at(30 + 15 * S), at(60), "mass_drop")]
