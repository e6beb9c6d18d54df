"""A 60-minute class attended through Zoom, from webhooks to POLICY.md records.

Late joiner, a connection loss and return within the reconnect grace, an early leaver, a guest,
a retry and an out-of-order delivery; evaluated by the rules engine on the journal exactly as
the finaliser will.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.kit import clock
from tests.finalise.helpers import attendance
from tests.support import Server, schedule
from tests.webhooks.helpers import post_zoom, zoom_event
from tests.webhooks.test_zoom import ROSTER, meeting_id

M = 60.0


def person(zoom_id: str, uuid: str, email: str = "", name: str = "Someone") -> dict[str, Any]:
    return {
        "id": zoom_id,
        "participant_uuid": uuid,
        "user_id": uuid,
        "email": email,
        "user_name": name,
    }


LEFT = "left the meeting. Reason : left the meeting"
LOST = "got disconnected from the meeting. Reason : Network connection error."
HOST_ENDED = "left the meeting. Reason : Host ended the meeting."


async def test_zoom_class_produces_policy_records(
    server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
) -> None:
    meeting = meeting_id()
    start_dt = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    s = start_dt.timestamp()
    await schedule(
        api,
        sid,
        start=start_dt,
        minutes=60,
        course_id="course-zoom-e2e",
        # Zoom reports presence only, no engagement events.
        course_overrides={"min_engagements": 0},
        external=[{"provider": "zoom", "ref": meeting}],
        roster=ROSTER,
    )
    teacher = person("zTeacher", "pu-t", "TEACHER@example.com", "Teacher")
    u1 = person("iFxeBPYun6SAiWUzBcEkX", "pu-1", name="On time, drops once")
    u2 = person("", "pu-2", "second.learner@example.com", "Late")
    u3 = person("", "uuid-of-u3", name="Leaves early")
    guest = person("", "pu-g", name="Visitor")

    def joined(p: dict[str, Any], minute: float) -> dict[str, Any]:
        return zoom_event("meeting.participant_joined", meeting, at=s + minute * M, participant=p)

    def left(p: dict[str, Any], minute: float, reason: str) -> dict[str, Any]:
        return zoom_event(
            "meeting.participant_left",
            meeting,
            at=s + minute * M,
            participant=p | {"leave_reason": reason},
        )

    deliveries = [
        zoom_event("meeting.started", meeting, at=s - 5 * M),
        joined(teacher, -5),
        joined(u1, 2),
        joined(guest, 3),
        joined(u3, 1),
        left(u1, 20, LOST),
        # u1 returns on a new Zoom connection; u3's leave arrives before u2's late join, and
        # u1's drop is delivered a second time (a retry).
        joined(u1 | {"participant_uuid": "pu-1b", "user_id": "pu-1b"}, 20.5),
        left(u3, 40, LEFT),
        left(u1, 20, LOST),
        joined(u2, 15),
        left(guest, 30, LEFT),
        left(u1 | {"participant_uuid": "pu-1b", "user_id": "pu-1b"}, 60, HOST_ENDED),
        left(u2, 60, HOST_ENDED),
        left(teacher, 60, HOST_ENDED),
        zoom_event("meeting.ended", meeting, at=s + 60 * M),
    ]
    statuses = []
    for doc in deliveries:
        r = await post_zoom(anon, doc)
        assert r.status_code == 200, r.text
        statuses.append(r.json()["status"])
    assert statuses.count("duplicate") == 1

    session = (await api.get(f"/v1/sessions/{sid}")).json()
    assert session["status"] == "ended"
    assert clock.parse_iso(session["ended_at"]) == s + 60 * M

    # The session was ended by meeting.ended; the finaliser publishes the records.
    records = {rec["user_id"]: rec for rec in (await attendance(api, sid))["records"]}

    # u1: on time, dropped at 20:00 and back at 20:30 (within the 60 s grace): credited whole.
    assert (records["u1"]["status"], records["u1"]["credit"]) == ("present", 1.0)
    assert records["u1"]["connected_s"] == 57.5 * M
    assert records["u1"]["present_s"] == 58 * M
    # u2: joined at 15:00, after `late_after` (10m).
    assert (records["u2"]["status"], records["u2"]["credit"]) == ("late", 0.5)
    assert records["u2"]["reasons"] == ["joined_late"]
    # u3: left at 40:00, before 80% of the class.
    assert (records["u3"]["status"], records["u3"]["credit"]) == ("absent", 0.0)
    assert records["u3"]["reasons"] == ["left_before_cutoff"]
    assert records["teacher"]["status"] == "present"
    # The visitor is a guest: recorded, never a learner.
    guests = [rec for rec in records.values() if rec["role"] == "guest"]
    assert [g["user_id"] for g in guests] == ["guest:zoom:pu-g"]
    assert guests[0]["connected_s"] == 27 * M
