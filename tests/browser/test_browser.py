"""The three browser faces of Hadir in a real Chromium: the client, the panel, the dashboard."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from app.ingest import live as ingest_live
from tests.browser.conftest import SHOTS
from tests.finalise.helpers import attendance
from tests.support import Server, iso, journal, live, schedule, send_json, token

pytestmark = pytest.mark.browser


async def client_page(browser: Browser, server: Server, sid: str, user: str) -> Page:
    """A page on the service's origin running the shipped client as `window.hadir`."""
    page = await browser.new_page()
    await page.goto(f"{server.http}/healthz")
    await page.evaluate(
        """async ([sid, token]) => {
            const m = await import('/static/hadir-client.js');
            window.log = [];
            window.hadir = m.connect({url: '/v1/live/' + sid, token, camera: true, mic: true});
            for (const t of ['welcome', 'ack', 'state', 'fatal', 'error'])
                window.hadir.addEventListener(t, (e) => window.log.push([t, e.detail]));
        }""",
        [sid, token(user, sid)],
    )
    return page


async def wait_journal(
    server: Server, sid: str, predicate: Any, wait: float = 8.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    while True:
        events = await journal(server, sid)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"journal never matched: {[(e['type'], e['id']) for e in events]}")
        await asyncio.sleep(0.1)


async def test_client_joins_heartbeats_toggles_engages_reconnects_and_leaves(
    browser: Browser, server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid, learners=1)
    panel = await browser.new_page()
    await panel.goto(f"{server.http}/panel/{sid}?token={token('teacher', sid, 'instructor')}")
    row = panel.locator("tr", has_text="Learner 1")
    await expect(row).to_contain_text("Not joined", timeout=5000)

    page = await client_page(browser, server, sid, "u1")
    started = time.monotonic()
    await expect(row).to_contain_text("Connected", timeout=5000)
    assert time.monotonic() - started < 3.0  # connect + welcome + panel delta
    await wait_journal(server, sid, lambda ev: sum(e["type"] == "heartbeat" for e in ev) >= 2)

    started = time.monotonic()
    await page.evaluate("window.hadir.setCamera(false)")
    await page.evaluate("window.hadir.engagement('hand_raise')")
    await wait_journal(
        server,
        sid,
        lambda ev: (
            any(e["type"] == "engagement" for e in ev)
            and any(e["type"] == "camera" and e["on"] is False for e in ev)
        ),
    )
    await expect(row.locator("td[data-label='Engagement']")).to_contain_text("1", timeout=2000)
    assert time.monotonic() - started < 2.0  # the panel shows it within a second of the ack

    # the server drops the connection; events made meanwhile wait in the client's queue
    conns = [
        c for c in ingest_live.registry(server.resources).by_conn.values() if c.user_id == "u1"
    ]
    assert len(conns) == 1
    await conns[0].ws.close(code=1011)
    await page.evaluate("window.hadir.engagement('question')")
    await wait_journal(server, sid, lambda ev: sum(e["type"] == "join" for e in ev) == 2)
    events = await wait_journal(
        server, sid, lambda ev: sum(e["type"] == "engagement" for e in ev) == 2
    )
    ids = [e["id"] for e in events if e["type"] == "engagement"]
    assert len(set(ids)) == 2
    assert await page.evaluate("window.hadir.pending") == 0

    await page.close(run_before_unload=True)  # pagehide: the client leaves
    events = await wait_journal(server, sid, lambda ev: any(e["type"] == "leave" for e in ev))
    assert events[-1]["type"] == "leave"
    await expect(row).to_contain_text("Left", timeout=3000)
    await panel.close()


async def test_client_stops_on_a_refused_token(
    browser: Browser, server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid, learners=1)
    page = await browser.new_page()
    await page.goto(f"{server.http}/healthz")
    fatal = await page.evaluate(
        """async (sid) => {
            const m = await import('/static/hadir-client.js');
            const c = m.connect({url: '/v1/live/' + sid, token: 'not-a-token'});
            return await new Promise((ok) => c.addEventListener('fatal', (e) => ok(e.detail)));
        }""",
        sid,
    )
    assert fatal["code"] == 4401
    await page.close()


async def test_panel_screenshot_with_forty_participants_and_an_outage(
    browser: Browser, server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    """A class 25 minutes in, built from a platform's imported report: on time, late, left,
    never joined, cameras off, and a mass drop 4 minutes ago from which most came back."""
    now = datetime.now(UTC)
    start = now - timedelta(minutes=25)
    await schedule(api, sid, learners=40, start=start, camera_required=True)
    rng = random.Random(3)
    events: list[dict[str, object]] = []

    def add(eid: str, etype: str, user: str, at: datetime, **extra: object) -> None:
        events.append({"id": eid, "type": etype, "user_id": user, "ts": iso(at), **extra})

    for i in range(1, 41):
        user = f"u{i}"
        if 33 <= i <= 36:
            continue  # never joined
        joined = start + timedelta(
            minutes=rng.uniform(12, 18) if 25 <= i <= 28 else rng.uniform(0, 4)
        )
        add(f"j{i}", "join", user, joined)
        add(f"c{i}", "camera", user, joined + timedelta(seconds=5), on=i % 9 != 0)
        for k in range(rng.randrange(0, 4)):
            add(f"e{i}-{k}", "engagement", user, joined + timedelta(minutes=2 + k), kind="question")
        if 29 <= i <= 32:
            add(f"l{i}", "leave", user, start + timedelta(minutes=15))
    outage = now - timedelta(minutes=4)
    for n, i in enumerate([*range(1, 17), *range(37, 41)]):
        add(f"d{i}", "drop", f"u{i}", outage + timedelta(seconds=n))
    for i in range(1, 17):
        add(f"r{i}", "join", f"u{i}", outage + timedelta(minutes=2), conn=f"again-{i}")
    r = await api.post(f"/v1/sessions/{sid}/events", json={"events": events})
    assert r.json()["rejected"] == []
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{server.http}/panel/{sid}?token={token('teacher', sid, 'instructor')}")
    await expect(page.locator("tbody tr").first).to_be_visible(timeout=8000)
    await expect(page.get_by_text("Mass drop").first).to_be_visible(timeout=8000)
    await expect(page.locator("tr", has_text="Learner 25")).to_contain_text("Late")
    await expect(page.locator("tr", has_text="Learner 33")).to_contain_text("Not joined")
    await expect(page.locator("tr", has_text="Learner 37")).to_contain_text("Dropped")
    present = page.locator("tr", has_text="Learner 5").locator("td[data-label='Present']")
    minutes = int((await present.inner_text()).split(":")[0])
    assert 18 <= minutes <= 26  # time present so far, not projected to the end
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "panel.png"), full_page=False)
    await page.close()


async def test_dashboard_shows_a_finalised_record(
    browser: Browser, server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    await schedule(api, sid, learners=1, minutes=1)
    async with live(server, sid, "u1") as (ws, _):
        await send_json(ws, {"id": "e1", "type": "engagement", "kind": "question"})
        await asyncio.sleep(0.3)
    assert (await api.post(f"/v1/sessions/{sid}/end")).status_code == 200
    await attendance(api, sid)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    await page.goto(f"{server.http}/me?token={token('u1', None)}")
    record = page.locator(f"[id='rec-{sid}']")
    await expect(record).to_be_visible(timeout=8000)
    await expect(record).to_contain_text("Course")
    body = (await api.get(f"/v1/sessions/{sid}/attendance")).json()
    status = next(r["status"] for r in body["records"] if r["user_id"] == "u1")
    await expect(page.locator("main")).to_contain_text(status.capitalize())
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    await page.close()
