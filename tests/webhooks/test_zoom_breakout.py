"""Zoom breakout rooms: `meeting.participant_joined_breakout_room` and
`meeting.participant_left_breakout_room`, with payloads shaped like Zoom's documented examples.

A move between the main room and a breakout room keeps the participant connected; leaving the
meeting from a breakout room ends the connection at that time, even when the breakout event is
the only one Zoom sends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.ingest.webhooks.zoom import classify_leave
from app.kit import clock
from tests.finalise.helpers import attendance
from tests.support import Server, journal, schedule
from tests.webhooks.helpers import fixture, post_zoom, zoom_event
from tests.webhooks.test_zoom import ROSTER, meeting_id, zoom_session

M = 60.0
BREAKOUT_ROOM = "FkQbpP2UR028mDrwzEahqw=="  # the room's uuid in Zoom's example

# Reasons as Zoom words them (see LEAVE_REASONS in app/ingest/webhooks/zoom.py).
TO_BREAKOUT = "left the meeting.<br>Reason : left the meeting to join breakout room"
TO_MAIN = "left the meeting.<br>Reason : leave breakout room to join main meeting"
LEAVE_ROOM = "Leave breakout room."
LEFT = "left the meeting.<br>Reason : left the meeting"
LOST = "got disconnected from the meeting.<br>Reason : Network connection error."
HOST_ENDED = "left the meeting.<br>Reason: Host ended the meeting."


def person(
    zoom_id: str, uuid: str, user_id: str, email: str = "", name: str = "Someone"
) -> dict[str, Any]:
    """A participant as the main meeting's events describe them."""
    return {
        "id": zoom_id,
        "participant_uuid": uuid,
        "user_id": user_id,
        "email": email,
        "user_name": name,
    }


def in_room(p: dict[str, Any], room_user: str) -> dict[str, Any]:
    """The same participant in a breakout room: the room has its own `user_id`, and
    `parent_user_id` is the main meeting's."""
    return p | {"user_id": room_user, "parent_user_id": p["user_id"]}


class Deliveries:
    """Builds the webhooks of one meeting at minutes after `start`."""

    def __init__(self, meeting: str, start: float) -> None:
        self.meeting = meeting
        self.start = start

    def event(
        self, event: str, minute: float, p: dict[str, Any], reason: str = ""
    ) -> dict[str, Any]:
        part = p | {"leave_reason": reason} if reason else p
        return zoom_event(event, self.meeting, at=self.start + minute * M, participant=part)

    def joined(self, p: dict[str, Any], minute: float) -> dict[str, Any]:
        return self.event("meeting.participant_joined", minute, p)

    def left(self, p: dict[str, Any], minute: float, reason: str) -> dict[str, Any]:
        return self.event("meeting.participant_left", minute, p, reason)

    def joined_room(self, p: dict[str, Any], minute: float) -> dict[str, Any]:
        return self.event("meeting.participant_joined_breakout_room", minute, p)

    def left_room(self, p: dict[str, Any], minute: float, reason: str) -> dict[str, Any]:
        return self.event("meeting.participant_left_breakout_room", minute, p, reason)

    def to_breakout(
        self, p: dict[str, Any], room: dict[str, Any], minute: float
    ) -> list[dict[str, Any]]:
        """Zoom's notifications of a move from the main room into a breakout room."""
        return [
            self.left(p, minute, TO_BREAKOUT),
            self.joined_room(room, minute),
            self.joined(p, minute),
        ]

    def to_main(
        self, p: dict[str, Any], room: dict[str, Any], minute: float
    ) -> list[dict[str, Any]]:
        """Zoom's notifications of a move from a breakout room back to the main room."""
        return [
            self.left_room(room, minute, LEAVE_ROOM),
            self.left(p, minute, TO_MAIN),
            self.joined(p, minute),
        ]


async def post_all(anon: httpx.AsyncClient, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for doc in docs:
        r = await post_zoom(anon, doc)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    return answers


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (LEAVE_ROOM, "stay"),
        (TO_MAIN, "stay"),
        (TO_BREAKOUT, "stay"),
        ("Jill Chill " + LEFT, "leave"),
        ("Jill Chill " + HOST_ENDED, "leave"),
        ("Jill Chill " + LOST, "drop"),
        (None, "leave"),
    ],
)
def test_breakout_leave_reasons(reason: str | None, kind: str) -> None:
    assert classify_leave(reason) == kind


def test_fixtures_carry_the_main_meeting_and_the_room() -> None:
    for name in ("joined", "left"):
        obj = fixture(f"zoom_meeting_participant_{name}_breakout_room")["payload"]["object"]
        main = fixture(f"zoom_meeting_participant_{name}")["payload"]["object"]
        assert (obj["id"], obj["uuid"]) == (main["id"], main["uuid"])
        assert obj["breakout_room_uuid"] != obj["uuid"]
        assert obj["participant"]["participant_uuid"] == main["participant"]["participant_uuid"]
        assert obj["participant"]["parent_user_id"] == main["participant"]["user_id"]


class TestBreakoutRooms:
    async def test_a_move_into_a_breakout_room_and_back_keeps_the_connection(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        z = Deliveries(meeting, start)
        u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", "16778240")
        room = in_room(u1, "33554432")
        answers = await post_all(
            anon, [z.joined(u1, 1), *z.to_breakout(u1, room, 2), *z.to_main(u1, room, 3)]
        )
        assert [a["status"] for a in answers] == [
            "accepted",  # joined the meeting
            "ignored",  # left the main room for a breakout room
            "accepted",  # joined the breakout room: a join on the open connection
            "accepted",  # Zoom's paired join in the main meeting
            "ignored",  # left the breakout room
            "ignored",  # left it for the main room
            "accepted",  # back in the main room
        ]
        assert {a.get("user_id") for a in answers if a["status"] == "accepted"} == {"u1"}
        events = await journal(server, sid)
        # Only joins, all on the participant's one connection: nothing ended it.
        assert {(e["type"], e["conn"]) for e in events} == {("join", "zoom:pu-1")}
        res = server.resources
        assert await res.redis.hget(res.keys.session(sid).online, "u1") == b"1"

    async def test_leaving_the_meeting_from_a_breakout_room_ends_the_connection(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        z = Deliveries(meeting, start)
        u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", "16778240")
        room = in_room(u1, "33554432")
        await post_all(anon, [z.joined(u1, 1), *z.to_breakout(u1, room, 2)])
        # Zoom's only notification: the breakout room's, with the reason of a leave.
        r = await post_zoom(anon, z.left_room(room, 4, "Jill Chill " + LEFT))
        assert r.json() == {
            "status": "accepted",
            "session_id": sid,
            "user_id": "u1",
            "type": "leave",
        }
        events = await journal(server, sid)
        assert [e["type"] for e in events] == ["join", "join", "join", "leave"]
        assert {e["conn"] for e in events} == {"zoom:pu-1"}
        assert events[-1]["ts"] == float(int(start + 4 * M))
        assert events[-1]["detail"].endswith("Reason : left the meeting")
        res = server.resources
        assert await res.redis.hget(res.keys.session(sid).online, "u1") is None

    async def test_a_disconnect_in_a_breakout_room_is_a_drop(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        z = Deliveries(meeting, start)
        u3 = person("", "uuid-of-u3", "16779264")
        await post_all(anon, [z.joined(u3, 1), z.joined_room(in_room(u3, "50331648"), 2)])
        r = await post_zoom(anon, z.left_room(in_room(u3, "50331648"), 3, "Someone " + LOST))
        assert (r.json()["user_id"], r.json()["type"]) == ("u3", "drop")
        events = await journal(server, sid)
        assert (events[-1]["type"], events[-1]["reason"]) == ("drop", "abnormal")

    async def test_without_participant_uuid_the_main_meeting_user_id_is_the_connection(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        z = Deliveries(meeting, start)
        u1 = person("iFxeBPYun6SAiWUzBcEkX", "", "16778240")
        # A breakout room's `user_id` as delivered: the main one followed by the room's time.
        room = in_room(u1, "167782402026-08-30 09:00:49:000")
        await post_all(anon, [z.joined(u1, 1), z.joined_room(room, 2)])
        await post_zoom(anon, z.left_room(room, 5, "Jill Chill " + HOST_ENDED))
        events = await journal(server, sid)
        assert [(e["type"], e["conn"]) for e in events] == [
            ("join", "zoom:16778240"),
            ("join", "zoom:16778240"),
            ("leave", "zoom:16778240"),
        ]

    async def test_duplicates_count_once(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        z = Deliveries(meeting, start)
        u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", "16778240")
        room = in_room(u1, "33554432")
        entered = z.joined_room(room, 2)
        left = z.left_room(room, 4, "Jill Chill " + LEFT)
        answers = await post_all(anon, [z.joined(u1, 1), entered, left])
        assert [a["status"] for a in answers] == ["accepted"] * 3
        for doc in (entered, left):
            doc["event_ts"] += 3_600_000  # a retry, an hour later
            assert (await post_zoom(anon, doc)).json()["status"] == "duplicate"
        assert [e["type"] for e in await journal(server, sid)] == ["join", "join", "leave"]

    async def test_the_session_is_the_main_meeting_s(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        meeting, start = await zoom_session(api, sid)
        # A session whose ref happens to be a breakout room's uuid is not that room's meeting.
        await zoom_session(api, sid + "-room", meeting=BREAKOUT_ROOM)
        z = Deliveries(meeting, start)
        u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", "16778240")
        r = await post_zoom(anon, z.joined_room(in_room(u1, "33554432"), 2))
        assert r.json()["session_id"] == sid
        other = Deliveries(meeting_id(), start)
        r = await post_zoom(anon, other.joined_room(in_room(u1, "33554432"), 2))
        assert r.json() == {"status": "unknown_meeting"}
        assert await journal(server, sid + "-room") == []


async def test_breakout_rooms_in_finalised_attendance(
    server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
) -> None:
    """A 60-minute class with breakout rooms from minute 10 to minute 30, evaluated by the
    finaliser: moving between rooms leaves no gap, leaving the meeting from a breakout room ends
    the connection there, a disconnect there is a drop, and repeated deliveries count once."""
    meeting = meeting_id()
    start_dt = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    s = start_dt.timestamp()
    await schedule(
        api,
        sid,
        start=start_dt,
        minutes=60,
        course_id="course-zoom-breakout",
        course_overrides={"min_engagements": 0},  # Zoom reports presence only
        external=[{"provider": "zoom", "ref": meeting}],
        roster=ROSTER,
    )
    z = Deliveries(meeting, s)
    teacher = person("zTeacher", "pu-t", "16777216", "teacher@example.com", "Teacher")
    u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", "16778240", name="Stays to the end")
    u2 = person("", "pu-2", "16779264", "second.learner@example.com", "Leaves from a room")
    u3 = person("", "uuid-of-u3", "16780288", name="Drops in a room")
    u3_back = u3 | {"user_id": "16781312"}  # a new user_id in the meeting after the reconnect
    r1, r2, r3 = in_room(u1, "33554432"), in_room(u2, "33555456"), in_room(u3, "33556480")
    deliveries = [
        z.event("meeting.started", -5, {}),
        z.joined(teacher, -5),
        z.joined(u1, 1),
        z.joined(u2, 1),
        z.joined(u3, 1),
        *z.to_breakout(u1, r1, 10),
        *z.to_breakout(u2, r2, 10),
        *z.to_breakout(u3, r3, 10),
        # u3's connection is lost in the room; Zoom reports it from the room only. u3 is back
        # in the main meeting 30 s later, within the reconnect grace.
        z.left_room(r3, 20, "Someone " + LOST),
        z.joined(u3_back, 20.5),
        # u2 leaves the meeting from the breakout room: only the room's event says so; Zoom
        # retries it.
        z.left_room(r2, 25, "Second " + LEFT),
        z.left_room(r2, 25, "Second " + LEFT),
        *z.to_main(u1, r1, 30),
        # The host ends the meeting: both notifications of u1's leave are kept, counted once.
        z.left(u1, 60, HOST_ENDED),
        z.left_room(r1, 60, "Jill Chill " + HOST_ENDED),
        z.left(u3_back, 60, HOST_ENDED),
        z.left(teacher, 60, HOST_ENDED),
        z.event("meeting.ended", 60, {}),
    ]
    answers = await post_all(anon, deliveries)
    assert [a["status"] for a in answers].count("duplicate") == 1

    session = (await api.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "ended"
    assert clock.parse_iso(session["ended_at"]) == s + 60 * M
    records = {rec["user_id"]: rec for rec in (await attendance(api, sid))["records"]}

    def connected(user: str) -> list[tuple[float, float]]:
        return [
            (clock.parse_iso(i["start"]) - s, clock.parse_iso(i["end"]) - s)
            for i in records[user]["intervals"]
            if i["kind"] == "connected"
        ]

    # u1: in the main room, a breakout room and the main room again: one interval, no gap.
    assert connected("u1") == [(1 * M, 60 * M)]
    assert (records["u1"]["status"], records["u1"]["credit"]) == ("present", 1.0)
    assert records["u1"]["connected_s"] == 59 * M
    # u2: left the meeting from the breakout room at 25:00, before 80% of the class.
    assert connected("u2") == [(1 * M, 25 * M)]
    assert clock.parse_iso(records["u2"]["last_seen"]) == s + 25 * M
    assert (records["u2"]["status"], records["u2"]["reasons"]) == ("absent", ["left_before_cutoff"])
    # u3: dropped in the room at 20:00, back at 20:30: the gap is credited.
    assert connected("u3") == [(1 * M, 20 * M), (20.5 * M, 60 * M)]
    assert records["u3"]["present_s"] == 59 * M
    assert (records["u3"]["status"], records["u3"]["credit"]) == ("present", 1.0)
