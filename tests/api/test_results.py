"""Standing, weekly report, the learner's own records, excuses, outages, cancellation,
course items and activity, xAPI: each from imported sessions to the endpoint."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.finalise.helpers import (
    at,
    attendance,
    by_user,
    class_events,
    end,
    ended_class,
    finalised_class,
    import_events,
    past_start,
)
from tests.support import Server, schedule, token


async def two_sessions(api: httpx.AsyncClient, sid: str) -> tuple[str, str, str]:
    """A course with two finalised classes: u1 present, u2 late, u3 absent in both."""
    course = f"c-{sid}"
    start = past_start(30)
    ids = (f"{sid}-a", f"{sid}-b")
    for n, s in enumerate(ids):
        await ended_class(api, s, start + timedelta(days=n), course_id=course)
    for s in ids:
        await attendance(api, s)
    return course, ids[0], ids[1]


class TestStanding:
    async def test_rates_warnings_and_pagination(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        course, _, _ = await two_sessions(api, sid)
        r = await api.get(f"/v1/courses/{course}/standing/u2")
        assert r.status_code == 200
        u2 = r.json()
        assert u2["live_rate"] == 0.5
        assert u2["below_minimum"] is True  # 0.5 < 0.75
        assert u2["warnings"] == []  # 0.5 / 0.75 > 0.5
        assert u2["certificate"] == {"status": "ineligible", "reasons": ["live_rate_below_minimum"]}
        u3 = (await api.get(f"/v1/courses/{course}/standing/u3")).json()
        assert u3["live_rate"] == 0.0
        assert [w["level"] for w in u3["warnings"]] == [1, 2]  # raised once, persisted
        page = (await api.get(f"/v1/courses/{course}/standing", params={"limit": 2})).json()
        assert [i["user_id"] for i in page["items"]] == ["u1", "u2"]
        rest = (
            await api.get(
                f"/v1/courses/{course}/standing", params={"limit": 2, "cursor": page["next_cursor"]}
            )
        ).json()
        assert [i["user_id"] for i in rest["items"]] == ["u3"]
        assert rest["next_cursor"] is None
        assert page["items"][0]["live_rate"] == 1.0
        etag = (await api.get(f"/v1/courses/{course}/standing/u1")).headers["etag"]
        again = await api.get(f"/v1/courses/{course}/standing/u1", headers={"If-None-Match": etag})
        assert again.status_code == 304

    async def test_unknown_course_and_user(self, server: Server, api: httpx.AsyncClient) -> None:
        assert (await api.get("/v1/courses/nope/standing")).status_code == 404
        assert (await api.get("/v1/courses/nope/standing/u1")).status_code == 404
        await schedule(api, "s-known", course_id="c-known")
        assert (await api.get("/v1/courses/c-known/standing/stranger")).status_code == 404

    async def test_weekly_report(self, server: Server, api: httpx.AsyncClient, sid: str) -> None:
        course, first, _ = await two_sessions(api, sid)
        start = past_start(30)
        iso = start.isocalendar()
        week = f"{iso.year}-W{iso.week:02d}"
        r = await api.get(f"/v1/courses/{course}/reports/weekly", params={"week": week})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sessions"] >= 1
        assert body["session_reports"][0]["session_id"] == first
        assert body["session_reports"][0]["by_status"] == {"absent": 1, "late": 1, "present": 1}
        assert body["session_reports"][0]["attendance_rate"] == 0.5
        c = await api.get(
            f"/v1/courses/{course}/reports/weekly", params={"week": week, "format": "csv"}
        )
        assert c.text.splitlines()[0].startswith("week,session_id")
        for bad in ("2026-47", "2026-W54", "x"):
            r = await api.get(f"/v1/courses/{course}/reports/weekly", params={"week": bad})
            assert r.status_code == 422, bad
        r = await api.get("/v1/courses/nope/reports/weekly", params={"week": "2026-W47"})
        assert r.status_code == 404


class TestMe:
    async def test_own_records_shape(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        course, first, _ = await two_sessions(api, sid)
        dash = token("u2", None, name="Learner Two")
        r = await anon.get("/v1/me/records", headers={"Authorization": f"Bearer {dash}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body) == ["user_id", "name", "records", "standings", "excuses"]
        mine = [x for x in body["records"] if x["session"]["course_id"] == course]
        assert len(mine) == 2
        rec = mine[0]
        assert set(rec) == {
            "session", "status", "credit", "reasons", "flags", "first_join", "last_seen",
            "connected_s", "present_s", "camera_s", "active_s", "engagements", "intervals",
            "revision",
        }  # fmt: skip
        assert set(rec["session"]) == {
            "id", "course_id", "course_title", "kind", "mode", "scheduled_start", "duration_s",
            "status",
        }  # fmt: skip
        assert (rec["session"]["id"], rec["status"]) == (first, "late")
        st = next(s for s in body["standings"] if s["course_id"] == course)
        assert st["live_rate"] == 0.5
        assert st["minimums"] == {
            "min_live_rate": 0.75,
            "min_async_rate": 0.8,
            "min_core_assignments": 1.0,
            "min_final_score": 0.7,
        }
        assert body["excuses"]["window_working_days"] == 5
        assert "medical" in body["excuses"]["categories"]
        q = await anon.get("/v1/me/records", params={"token": dash})
        assert q.status_code == 200
        r = await anon.get("/v1/me/records", params={"token": token("u2", first)})
        assert r.status_code == 403
        assert (await anon.get("/v1/me/records")).status_code == 401

    async def test_pages_404_without_their_files(
        self, server: Server, anon: httpx.AsyncClient
    ) -> None:
        for path in ("/me", "/panel/s1"):
            r = await anon.get(path)
            if r.status_code == 404:
                assert r.headers["content-type"] == "application/problem+json"
            else:
                assert r.headers["content-type"].startswith("text/html")


class TestExcuses:
    async def test_submit_decide_and_revise(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        _, first, _ = await two_sessions(api, sid)
        body = {"user_id": "u3", "session_id": first, "category": "medical"}
        r = await api.post("/v1/excuses", json=body)
        assert r.status_code == 201, r.text
        excuse = r.json()
        assert excuse["status"] == "pending"
        assert (await api.post("/v1/excuses", json=body)).status_code == 409
        r = await api.post(f"/v1/excuses/{excuse['id']}/decision", json={"decision": "accepted"})
        assert r.status_code == 200
        assert r.json()["revision_requested"] is True
        again = await api.post(
            f"/v1/excuses/{excuse['id']}/decision", json={"decision": "rejected"}
        )
        assert again.status_code == 409
        revised = await attendance(api, first, revision=2)
        u3 = by_user(revised)["u3"]
        assert (u3["status"], u3["revision"]) == ("excused", 2)
        assert "alternative_content" in u3["flags"]
        assert by_user(revised)["u1"]["revision"] == 1

    async def test_bad_excuses(self, server: Server, api: httpx.AsyncClient, sid: str) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        r = await api.post(
            "/v1/excuses", json={"user_id": "zz", "session_id": sid, "category": "medical"}
        )
        assert r.status_code == 422
        assert r.json()["code"] == "not_on_roster"
        late = at(start, 60 * 24 * 12)
        r = await api.post(
            "/v1/excuses",
            json={"user_id": "u1", "session_id": sid, "category": "travel", "submitted_at": late},
        )
        assert r.status_code == 422
        assert r.json()["code"] == "excuse_window_passed"
        r = await api.post(
            "/v1/excuses", json={"user_id": "u1", "session_id": "nope", "category": "medical"}
        )
        assert r.status_code == 404
        r = await api.post("/v1/excuses/exc_nope/decision", json={"decision": "accepted"})
        assert r.status_code == 404

    async def test_technical_claim_credits_its_window(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        events = [
            *class_events(start),
            {"id": "j3", "type": "join", "user_id": "u3", "ts": at(start, 0)},
            {"id": "q3", "type": "engagement", "kind": "chat", "user_id": "u3", "ts": at(start, 1)},
            {"id": "d3", "type": "drop", "user_id": "u3", "ts": at(start, 20)},
            {"id": "k3", "type": "join", "user_id": "u3", "ts": at(start, 40)},
            {"id": "m3", "type": "leave", "user_id": "u3", "ts": at(start, 60)},
        ]
        await import_events(api, sid, events)
        await end(api, sid)
        first = by_user(await attendance(api, sid))["u3"]
        assert (first["status"], first["reasons"]) == ("partial", ["presence_below_minimum"])
        claim = {
            "user_id": "u3",
            "session_id": sid,
            "category": "technical",
            "start": at(start, 20),
            "end": at(start, 40),
        }
        r = await api.post("/v1/excuses", json=claim)
        assert r.status_code == 201, r.text
        await api.post(f"/v1/excuses/{r.json()['id']}/decision", json={"decision": "accepted"})
        u3 = by_user(await attendance(api, sid, revision=2))["u3"]
        assert (u3["status"], u3["present_s"]) == ("present", 3600.0)
        assert [i["kind"] for i in u3["intervals"]] == ["connected", "credited", "connected"]


class TestOutagesAndCancellation:
    async def test_declared_outage_cancels_for_platform_fault(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await finalised_class(api, sid, start)
        r = await api.post(
            f"/v1/sessions/{sid}/outages",
            json={"start": at(start, 10), "end": at(start, 35), "cause": "platform"},
        )
        assert r.status_code == 201, r.text
        body = await attendance(api, sid, revision=2)
        assert body["session"]["status"] == "cancelled_platform_fault"
        assert body["session"]["reschedule_required"] is True
        assert round(body["session"]["fault_ratio"], 4) == round(25 / 60, 4)
        assert {r["status"] for r in body["records"]} == {"cancelled"}
        r = await api.post(
            "/v1/sessions/nope/outages",
            json={"start": at(start, 10), "end": at(start, 35), "cause": "x"},
        )
        assert r.status_code == 404

    async def test_consultation_cancelled_with_and_without_notice(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start(-48)  # in two days
        await schedule(api, sid, start=start, kind="consultation", learners=1, staff=())
        r = await api.post(f"/v1/sessions/{sid}/cancel", json={"by": "learner"})
        assert r.status_code == 200, r.text
        body = await attendance(api, sid)
        assert body["session"]["status"] == "cancelled"
        assert by_user(body)["u1"]["status"] == "cancelled"
        late = f"{sid}-late"
        soon = past_start(-2)
        await schedule(api, late, start=soon, kind="consultation", learners=1, staff=())
        await api.post(f"/v1/sessions/{late}/cancel", json={"by": "learner", "user_id": "u1"})
        body = await attendance(api, late)
        assert (by_user(body)["u1"]["status"], by_user(body)["u1"]["credit"]) == ("forfeited", 0)
        r = await api.post(f"/v1/sessions/{late}/cancel", json={"by": "learner", "user_id": "zz"})
        assert r.status_code == 422

    async def test_mentor_absence(self, server: Server, api: httpx.AsyncClient, sid: str) -> None:
        start = past_start()
        await schedule(api, sid, start=start, kind="consultation", learners=1, staff=("mentor",))
        await import_events(
            api,
            sid,
            [
                {"id": "j", "type": "join", "user_id": "u1", "ts": at(start, 0)},
                {"id": "l", "type": "leave", "user_id": "u1", "ts": at(start, 60)},
            ],
        )
        await end(api, sid)
        body = await attendance(api, sid)
        assert body["session"]["status"] == "mentor_absent"
        assert body["session"]["remedies"] == ["refund", "substitute_session", "goodwill_credit"]
        assert by_user(body)["u1"]["reasons"] == ["mentor_absent"]


class TestActivity:
    async def test_items_activity_final_scores_and_recording_credit(
        self, server: Server, api: httpx.AsyncClient, anon: httpx.AsyncClient, sid: str
    ) -> None:
        course = f"c-{sid}"
        start = past_start()
        await schedule(api, sid, start=start, course_id=course)
        outage = [
            {"id": "j3", "type": "join", "user_id": "u3", "ts": at(start, 0)},
            {"id": "d3", "type": "drop", "user_id": "u3", "ts": at(start, 5)},
        ]
        await import_events(api, sid, [*class_events(start), *outage])
        await api.post(
            f"/v1/sessions/{sid}/outages",
            json={"start": at(start, 4), "end": at(start, 10), "cause": "platform"},
        )
        await end(api, sid)
        assert by_user(await attendance(api, sid))["u3"]["status"] == "absent"
        due = at(start, 60 * 24 * 30)
        items: dict[str, dict[str, Any]] = {
            "v1": {"kind": "video", "checkpoints": 10},
            "r1": {"kind": "reading"},
            "a1": {"kind": "assignment", "core": True, "due": due},
            "rec": {"kind": "recording", "session_id": sid},
        }
        for item_id, item in items.items():
            r = await api.put(f"/v1/courses/{course}/items/{item_id}", json=item)
            assert r.status_code == 201, r.text
        bad = await api.put(f"/v1/courses/{course}/items/v2", json={"kind": "video"})
        assert bad.status_code == 422
        learner = {"Authorization": f"Bearer {token('u3', None)}"}
        evs = [
            {"id": f"c{k}", "type": "checkpoint", "item_id": "v1", "checkpoint": k}
            for k in range(9)
        ]
        evs += [
            {"id": "r", "type": "checkpoint", "item_id": "r1", "time_spent_s": 120},
            {"id": "s", "type": "submit", "item_id": "a1"},
            {"id": "w", "type": "recording_progress", "item_id": "rec", "fraction": 0.85},
        ]
        r = await anon.post("/v1/activity", json={"events": evs}, headers=learner)
        assert r.status_code == 200, r.text
        assert r.json()["new"] == len(evs)
        r = await anon.post("/v1/activity", json={"events": evs[:2]}, headers=learner)
        assert r.json()["duplicates"] == 2
        r = await anon.post(
            "/v1/activity",
            json={"events": [{"id": "x", "type": "quiz", "item_id": "nope"}]},
            headers=learner,
        )
        assert r.status_code == 422
        u3 = by_user(await attendance(api, sid, revision=2))["u3"]
        assert (u3["status"], u3["credit"]) == ("recording", 0.5)  # seed 000 §7
        r = await api.put(
            f"/v1/courses/{course}/final-scores", json={"scores": [{"user_id": "u3", "score": 0.9}]}
        )
        assert r.status_code == 200
        st = (await api.get(f"/v1/courses/{course}/standing/u3")).json()
        assert st["async_rate"] == 1.0  # 9 of 10 checkpoints is complete at 0.90
        assert st["core_assignments"] is None  # not due yet
        assert st["final_score"] == 0.9
        assert st["async_time_s"]["r1"] == 120


class TestXapi:
    async def test_one_attended_statement_per_learner(
        self, server: Server, api: httpx.AsyncClient, sid: str
    ) -> None:
        start = past_start()
        await schedule(api, sid, start=start)
        assert (await api.get(f"/v1/sessions/{sid}/xapi")).status_code == 409
        await import_events(api, sid, class_events(start))
        await end(api, sid)
        await attendance(api, sid)
        body = (await api.get(f"/v1/sessions/{sid}/xapi")).json()
        stmts = body["statements"]
        assert len(stmts) == 3
        u1 = next(s for s in stmts if s["actor"]["account"]["name"] == "u1")
        assert u1["verb"]["id"] == "http://adlnet.gov/expapi/verbs/attended"
        assert u1["result"]["duration"] == "PT1H"
        assert u1["result"]["extensions"]["https://hadir.dev/xapi/status"] == "present"
