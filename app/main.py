"""The FastAPI application: routers, error handlers and the resources' lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.api import activity, excuses, health, results, schedule, xapi
from app.finalise import archiver, finaliser, outbox, scheduler
from app.ingest import imports, webhooks
from app.ingest import live as ingest_live
from app.ingest.journal import JournalWriter
from app.kit import problems
from app.kit.db import make_engine
from app.kit.keys import Keys
from app.kit.loops import Loops, every
from app.kit.resources import Resources, make_redis
from app.live import control, panel
from app.settings import Settings, get_settings

log = logging.getLogger("hadir")

DESCRIPTION = """Real-time attendance telemetry for online and blended learning.

Browser clients and meeting platforms stream presence into a durable journal; when a session
ends, Hadir finalises attendance by the institution's policy and serves results to the LMS.
Errors are `application/problem+json` (RFC 9457)."""


def create_app(
    settings: Settings | None = None, *, background: bool = True, freeze_heap: bool = True
) -> FastAPI:
    """The application. `freeze_heap`: once started, move everything built so far out of the
    cyclic garbage collector's reach (see `_freeze_heap`)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError(
                "DATABASE_URL and REDIS_URL must be set (`hadir serve` starts embedded servers)"
            )
        engine = make_engine(settings.database_url)
        redis = make_redis(settings.redis_url)
        keys = Keys(settings.redis_prefix)
        writer = JournalWriter(redis=redis, keys=keys, ttl_s=settings.journal_ttl_s)
        await writer.start()
        res = Resources(settings=settings, engine=engine, redis=redis, keys=keys, writer=writer)
        app.state.resources = res
        loops = Loops()
        role = settings.role
        if background and role in ("all", "ingest"):
            loops.start("control", control.listen(res))
            loops.start(
                "heartbeat-sweeper", every("sweeper", 1.0, lambda: ingest_live.sweep_timeouts(res))
            )
            loops.start(
                "liveness",
                every("liveness", settings.liveness_tick_s, lambda: ingest_live.liveness_tick(res)),
            )
        if background and role in ("all", "worker"):
            loops.start("archiver", archiver.loop(res))
            loops.start("finaliser", finaliser.loop(res))
            loops.start("scheduler", scheduler.loop(res))
            loops.start("outbox", outbox.loop(res))
        if freeze_heap:
            _freeze_heap()
        try:
            yield
        finally:
            await loops.stop()
            await panel.stop_hubs(res)
            await writer.stop()
            await redis.aclose()
            await redis.connection_pool.disconnect()
            await engine.dispose()

    app = FastAPI(
        title="Hadir",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(schedule.router)
    app.include_router(imports.router)
    app.include_router(ingest_live.router)
    app.include_router(panel.router)
    app.include_router(webhooks.router)
    app.include_router(results.router)
    app.include_router(results.pages)
    app.include_router(excuses.router)
    app.include_router(activity.router)
    app.include_router(xapi.router)
    results.mount_static(app)
    return app


# Cyclic GC thresholds once the heap is frozen (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (20_000, 10, 10)


def _freeze_heap() -> None:
    """Keep the start-up heap (modules, models, routes, pools: ~145,000 objects, alive as long as
    the process) out of the cyclic GC. Each full collection walked all of it: a ~100 ms stall
    of the event loop, and of every ack waiting in it, a few times a minute under load
    (BENCHMARKS.md). Collections after this one walk only what was made since.

    Then collect the young generation less often (`GC_THRESHOLDS`). With the default 700 net
    container allocations, ingest at 12,000 events/s ran ~34 young collections a second and,
    since frozen objects do not count as long-lived, a full one every ~4 s that stalled the
    loop 12-23 ms (2% of the core in all, BENCHMARKS.md). Almost everything the hot path
    allocates is freed by reference counting long before 20,000 have piled up, so collections
    become rare and no larger; cyclic garbage waits a little longer to be freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build() -> FastAPI:
    """Factory for uvicorn (`app.main:build`)."""
    return create_app()
