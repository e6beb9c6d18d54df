"""Courses and sessions: one class per endpoint (401, 403, 404, 409, 422, valid)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import ADMIN_KEY, iso, schedule

COURSE = {
    "title": "Algorithms",
    "policy": "nelc",
    "delivery": "blended",
    "starts_on": "2026-09-01",
    "ends_on": "2026-12-31",
    "timezone": "Asia/Riyadh",
    "overrides": {"late_after": "5m", "min_live_rate": 0.8},
}


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body


@pytest.fixture
async def keys(api: httpx.AsyncClient, server: Any) -> dict[str, str]:
    from app.kit.auth import create_key

    out: dict[str, str] = {}
    async with server.resources.engine.begin() as conn:
        out["reader"] = await create_key(conn, "reader", ["results:read"])
        out["writer"] = await create_key(conn, "writer", ["schedule:write"])
    return out


class TestPutCourse:
    async def test_without_or_with_a_bad_key_401(self, anon: httpx.AsyncClient) -> None:
        problem(await anon.put("/v1/courses/c1", json=COURSE), 401)
        r = await anon.put("/v1/courses/c1", json=COURSE, headers={"Authorization": "Bearer nope"})
        assert problem(r, 401)["detail"] == "unknown or revoked API key"

    async def test_without_the_scope_403(
        self, anon: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        r = await anon.put(
            "/v1/courses/c1", json=COURSE, headers={"Authorization": f"Bearer {keys['reader']}"}
        )
        assert "schedule:write" in problem(r, 403)["detail"]

    async def test_create_then_update_is_idempotent(self, api: httpx.AsyncClient) -> None:
        first = await api.put("/v1/courses/algo-1", json=COURSE)
        assert first.status_code == 201, first.text
        again = await api.put("/v1/courses/algo-1", json=COURSE)
        assert again.status_code == 200
        assert again.json() == first.json()
        body = first.json()
        assert body["timezone"] == "Asia/Riyadh"
        params = body["effective_policy"]["parameters"]
        assert params["late_after"] == "5m"
        assert params["min_live_rate"] == 0.8
        assert params["absent_after"] == "30m"
        assert any("late" in line.lower() for line in body["effective_policy"]["summary"])

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"policy": "other"}, "policy"),
            ({"delivery": "telepathic"}, "delivery"),
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"starts_on": "not a date"}, "starts_on"),
            ({"overrides": {"lateafter": "5m"}}, "overrides"),
            ({"overrides": {"late_after": "10x"}}, "overrides"),
            ({"overrides": {"min_presence": 1.5}}, "overrides"),
            ({"overrides": {"late_after": "40m"}}, "overrides"),
            ({"title": ""}, "title"),
            ({"unexpected": 1}, "unexpected"),
        ],
    )
    async def test_invalid_input_422_names_the_field(
        self, api: httpx.AsyncClient, change: dict[str, Any], field: str
    ) -> None:
        body = problem(await api.put("/v1/courses/bad", json={**COURSE, **change}), 422)
        assert any(e["field"].startswith(field) for e in body["errors"]), body

    async def test_ends_before_it_starts_422(self, api: httpx.AsyncClient) -> None:
        body = {**COURSE, "ends_on": "2026-08-01"}
        assert "ends_on" in problem(await api.put("/v1/courses/bad", json=body), 422)["detail"]

    async def test_bad_id_422(self, api: httpx.AsyncClient) -> None:
        problem(await api.put("/v1/courses/has space", json=COURSE), 422)


class TestGetCourse:
    async def test_unknown_404(self, api: httpx.AsyncClient) -> None:
        problem(await api.get("/v1/courses/nope"), 404)

    async def test_reader_sees_the_effective_policy(
        self, api: httpx.AsyncClient, anon: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        await api.put("/v1/courses/algo-2", json=COURSE)
        r = await anon.get(
            "/v1/courses/algo-2", headers={"Authorization": f"Bearer {keys['reader']}"}
        )
        assert r.status_code == 200
        assert r.json()["effective_policy"]["parameters"]["late_after"] == "5m"


class TestPutSession:
    async def test_create_update_and_read(self, api: httpx.AsyncClient, sid: str) -> None:
        created = await schedule(api, sid, learners=2)
        assert created["status"] == "scheduled"
        assert [p["user_id"] for p in created["roster"]] == ["teacher", "u1", "u2"]
        updated = await schedule(api, sid, learners=1, camera_required=True)
        assert updated["camera_required"] is True
        assert [p["user_id"] for p in updated["roster"]] == ["teacher", "u1"]
        assert (await api.get(f"/v1/sessions/{sid}")).json() == updated

    async def test_unknown_course_404(self, api: httpx.AsyncClient, sid: str) -> None:
        body = {
            "course_id": "missing",
            "scheduled_start": iso(datetime.now(UTC)),
            "duration_minutes": 60,
        }
        problem(await api.put(f"/v1/sessions/{sid}", json=body), 404)

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"kind": "party"}, "kind"),
            ({"duration_minutes": 0}, "duration_minutes"),
            ({"scheduled_start": "2026-11-22T09:00:00"}, "scheduled_start"),
            ({"overrides": {"class_cap": 10}}, "overrides"),
            ({"roster": [{"user_id": "a", "role": "king"}]}, "roster"),
            ({"roster": [{"user_id": "a", "role": "learner"}] * 2}, "roster"),
            ({"external": [{"provider": "teams", "ref": "x"}]}, "external"),
        ],
    )
    async def test_invalid_input_422(
        self, api: httpx.AsyncClient, sid: str, change: dict[str, Any], field: str
    ) -> None:
        await schedule(api, sid)
        body = {
            "course_id": "course-1",
            "scheduled_start": iso(datetime.now(UTC) + timedelta(hours=1)),
            "duration_minutes": 60,
            **change,
        }
        problem_body = problem(await api.put(f"/v1/sessions/{sid}", json=body), 422)
        assert any(e["field"].startswith(field) for e in problem_body["errors"]), problem_body

    async def test_ended_session_cannot_change_409(self, api: httpx.AsyncClient, sid: str) -> None:
        await schedule(api, sid)
        assert (await api.post(f"/v1/sessions/{sid}/end")).json()["status"] == "ended"
        r = await api.put(
            f"/v1/sessions/{sid}",
            json={
                "course_id": "course-1",
                "scheduled_start": iso(datetime.now(UTC)),
                "duration_minutes": 30,
            },
        )
        assert problem(r, 409)["code"] == "session_closed"


class TestEndSession:
    async def test_end_is_idempotent(self, api: httpx.AsyncClient, sid: str) -> None:
        await schedule(api, sid)
        first = (await api.post(f"/v1/sessions/{sid}/end")).json()
        second = (await api.post(f"/v1/sessions/{sid}/end")).json()
        assert first["already_ended"] is False
        assert second["already_ended"] is True
        session = (await api.get(f"/v1/sessions/{sid}")).json()
        assert session["ended_at"] is not None

    async def test_unknown_404_and_scope_403(
        self, api: httpx.AsyncClient, anon: httpx.AsyncClient, keys: dict[str, str]
    ) -> None:
        problem(await api.post("/v1/sessions/none/end"), 404)
        r = await anon.post(
            "/v1/sessions/none/end", headers={"Authorization": f"Bearer {keys['reader']}"}
        )
        problem(r, 403)


class TestOperations:
    async def test_health_ready_metrics_docs(self, anon: httpx.AsyncClient) -> None:
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        ready = (await anon.get("/readyz")).json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
        metrics = (await anon.get("/metrics")).text
        for name in (
            "hadir_live_connections",
            "hadir_events_total",
            "hadir_ack_latency_seconds_bucket",
            "hadir_rejected_frames_total",
        ):
            assert name in metrics
        spec = (await anon.get("/openapi.json")).json()
        assert "/v1/courses/{course_id}" in spec["paths"]
        assert (await anon.get("/docs")).status_code == 200

    async def test_unknown_route_is_a_problem(self, anon: httpx.AsyncClient) -> None:
        problem(await anon.get("/v1/nothing-here"), 404)

    async def test_admin_key_works_for_every_scope(self, anon: httpx.AsyncClient) -> None:
        r = await anon.get("/v1/courses/none", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 404
