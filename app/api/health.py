"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from app.api.deps import ResourcesDep
from app.kit import metrics
from app.kit.problems import problem_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and Redis are reachable", response_model=None)
async def readyz(res: ResourcesDep) -> dict[str, object] | Response:
    checks: dict[str, str] = {}

    async def db() -> None:
        async with res.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    for name, probe in (("database", db), ("redis", res.redis.ping)):
        try:
            async with asyncio.timeout(2.0):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return problem_response(
        503, "not_ready", "a dependency is unreachable", extra={"checks": checks}
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus() -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
