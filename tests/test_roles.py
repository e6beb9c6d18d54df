"""Process roles: ingest-only servers leave archiving and finalisation to workers."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta

import httpx

from app.main import GC_THRESHOLDS, create_app
from tests.conftest import make_settings
from tests.finalise.helpers import attendance
from tests.support import ADMIN_KEY, Server, iso, schedule


async def test_an_ingest_server_does_not_finalise_and_a_worker_does(
    own_database: str, redis_prefix: str
) -> None:
    # Its own database: the run's shared server (role "all") would finalise the session.
    database = own_database
    prefix = f"{redis_prefix}-roles"
    ingest = Server(make_settings(database, prefix, HADIR_ROLE="ingest"))
    await ingest.start()
    try:
        async with httpx.AsyncClient(
            base_url=ingest.http, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as api:
            sid = "roles-1"
            start = datetime.now(UTC) - timedelta(minutes=30)
            await schedule(api, sid, start=start, course_id="roles-course")
            join = {"id": "j", "type": "join", "user_id": "u1", "ts": iso(start)}
            await api.post(f"/v1/sessions/{sid}/events", json={"events": [join]})
            await api.post(f"/v1/sessions/{sid}/end")
            await asyncio.sleep(1.5)  # past the finalise delay: nobody finalises
            assert (await api.get(f"/v1/sessions/{sid}/attendance")).status_code == 409

            worker = create_app(
                make_settings(database, prefix, HADIR_ROLE="worker"), freeze_heap=False
            )
            async with worker.router.lifespan_context(worker):
                result = await attendance(api, sid)
            record = next(x for x in result["records"] if x["user_id"] == "u1")
            # Joined at the start and connected until the end 30 minutes in, never engaged.
            assert (record["status"], record["reasons"]) == ("partial", ["no_engagement"])
            assert abs(record["connected_s"] - 1800) < 10
    finally:
        await ingest.stop()


async def test_a_started_server_keeps_its_start_up_heap_out_of_the_cyclic_gc(
    database: str, redis_prefix: str
) -> None:
    app = create_app(make_settings(database, redis_prefix, HADIR_ROLE="ingest"), background=False)
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            # The application and its resources are built before the heap is frozen.
            assert gc.get_freeze_count() > 10_000
            # Young collections only after 20,000 net container allocations.
            assert gc.get_threshold() == GC_THRESHOLDS == (20_000, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
