"""POLICY §1: intervals, union of connections, clipping, credited gaps, totals."""

from __future__ import annotations

from app.rules.evidence import Event, Interval, Window, participant_evidence
from app.rules.policy import resolve
from tests.rules.factories import POLICY, M, at, ev, window


def evidence(events: list[Event], outages=(), claims=(), policy=POLICY):  # type: ignore[no-untyped-def]
    return participant_evidence(events, at(0), at(60), policy, outages, claims)


def test_no_events() -> None:
    e = evidence([])
    assert (e.user_id, e.first_join, e.last_seen, e.present_s, e.intervals) == ("", None, None, 0, ())
    assert e.first_present is None


def test_half_open_intervals_clipped_to_the_window() -> None:
    e = evidence([ev("a", "join", -5), ev("a", "drop", 10), ev("a", "join", 70)])
    assert e.first_join == at(-5)
    assert e.intervals == (Interval(at(0), at(10), "connected"),)
    assert (e.connected_s, e.drops, e.last_seen) == (10 * M, 1, at(10))
    assert not e.connected_at_end


def test_connection_closed_before_the_start_does_not_count() -> None:
    e = evidence([ev("a", "join", -20), ev("a", "leave", 0), ev("a", "join", 5)])
    assert e.first_join == at(5)
    assert e.connected_s == 55 * M
    assert e.connected_at_end and e.last_seen == at(60)


def test_parallel_connections_are_unioned() -> None:
    e = evidence(
        [
            ev("a", "join", 0, "tab1"),
            ev("a", "join", 10, "tab2"),
            ev("a", "leave", 20, "tab1"),
            ev("a", "join", 25, "tab2"),  # already open: ignored
            ev("a", "leave", 30, "tab2"),
            ev("a", "leave", 40, "tab2"),  # nothing open: ignored
            ev("a", "drop", 45, "tab3"),  # never opened: ignored
        ]
    )
    assert e.intervals == (Interval(at(0), at(30), "connected"),)


def test_leave_and_rejoin_at_one_instant_leave_no_gap() -> None:
    e = evidence([ev("a", "join", 0), ev("a", "join", 30), ev("a", "leave", 30)])
    assert e.intervals == (Interval(at(0), at(60), "connected"),)


def test_reconnect_grace_boundary() -> None:
    within = evidence([ev("a", "join", 0), ev("a", "drop", 10), ev("a", "join", 11)])
    assert within.present_s == 60 * M and within.credited_s == M
    late = evidence([ev("a", "join", 0), ev("a", "drop", 10), ev("a", "join", 11 + 1 / M)])
    assert late.credited_s == 0
    voluntary = evidence([ev("a", "join", 0), ev("a", "leave", 10), ev("a", "join", 10.5)])
    assert voluntary.credited_s == 0


def test_outage_credit_only_if_connected_when_it_began() -> None:
    drop_in = [ev("a", "join", 0), ev("a", "drop", 25), ev("a", "join", 40)]
    e = evidence(drop_in, outages=(window(20, 30),))
    assert e.credited_s == 5 * M
    assert not e.dropped_in_outage_and_not_returned
    joined_after = evidence([ev("a", "join", 22), ev("a", "drop", 25)], outages=(window(20, 30),))
    assert joined_after.credited_s == 0
    first_dropper = evidence([ev("a", "join", 0), ev("a", "drop", 20)], outages=(window(20, 30),))
    assert first_dropper.credited_s == 10 * M
    assert first_dropper.dropped_in_outage_and_not_returned
    assert first_dropper.last_seen == at(30)


def test_technical_claim_credits_any_uncovered_time() -> None:
    e = evidence([ev("a", "join", 10), ev("a", "leave", 20)], claims=(window(0, 15), window(50, 70)))
    assert e.credited_s == 20 * M
    assert e.first_present == at(0)
    assert e.last_seen == at(60)
    assert [i.kind for i in e.intervals] == ["credited", "connected", "credited"]


def test_camera_and_visibility() -> None:
    e = evidence(
        [
            ev("a", "heartbeat", -10, camera=True, visible=False),  # before joining
            ev("a", "join", 0),
            ev("a", "heartbeat", 10, camera=True, visible=True),
            ev("a", "heartbeat", 15, camera=True),  # unchanged
            ev("a", "camera", 20, camera=False),
            ev("a", "heartbeat", 25, visible=False),
            ev("a", "leave", 30),
            ev("a", "camera", 40, camera=True),  # while away
            ev("a", "join", 50),
        ]
    )
    # camera on 0-20 and 50-60; visible off 0-10 (reported before joining), 25-30, 50-60
    assert e.camera_s == 30 * M
    assert e.active_s == 15 * M
    default = evidence([ev("a", "join", 0)])
    assert (default.camera_s, default.active_s) == (0, 60 * M)


def test_engagements_counted_inside_the_window_only() -> None:
    events = [ev("a", "join", -5), *(ev("a", "engagement", t, kind="poll") for t in (-1, 0, 59, 61))]
    assert evidence(events).engagements == 2


def test_heartbeat_timeout_is_a_drop_at_the_last_heartbeat() -> None:
    e = evidence(
        [
            ev("a", "join", 0),
            ev("a", "heartbeat", 10),
            ev("a", "drop", 10, reason="heartbeat_timeout"),
            ev("a", "join", 10.5),
        ]
    )
    assert e.present_s == 60 * M


def test_duplicates_and_order_do_not_matter() -> None:
    events = [ev("a", "join", 0), ev("a", "drop", 10), ev("a", "join", 10.5), ev("a", "leave", 50)]
    shuffled = [events[3], events[1], events[0], events[2], events[1]]
    assert evidence(shuffled) == evidence(events)


def test_window_defaults_and_custom_policy() -> None:
    strict = resolve("platform", {}, {"reconnect_grace": "0s"})
    e = evidence([ev("a", "join", 0), ev("a", "drop", 10), ev("a", "join", 10.5)], policy=strict)
    assert e.credited_s == 0
    assert Window(5, 3).length == 0 and Window(3, 5).length == 2


def test_claim_edge_cases() -> None:
    e = evidence(
        [ev("a", "join", 40), ev("a", "join", 60)],  # the second join is at the window end
        claims=(window(10, 10), window(0, 30), window(5, 10)),
    )
    assert e.credited_s == 30 * M
    at_end = evidence([ev("a", "join", 60)])
    assert (at_end.first_join, at_end.connected_s) == (None, 0)
