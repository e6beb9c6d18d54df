"""Cross-process control messages (session ended, session changed) over Redis pub/sub."""

from __future__ import annotations

import asyncio
import logging

import orjson

from app.ingest import live as ingest_live
from app.ingest import sessions as directory
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources

log = logging.getLogger(__name__)


async def listen(res: Resources) -> None:
    """Apply control messages from any process to this one; reconnects after Redis faults."""
    while True:
        stop_if_cancelled()
        try:
            async with res.redis.pubsub() as pubsub:
                await pubsub.subscribe(res.keys.control)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    await _apply(res, orjson.loads(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("control channel lost (%s); resubscribing", exc)
            await asyncio.sleep(1.0)


async def _apply(res: Resources, body: dict[str, object]) -> None:
    op, session_id = body.get("op"), str(body.get("session_id"))
    directory.forget(res, session_id)
    if op == "ended":
        await ingest_live.close_session_connections(res, session_id)
    for callback in res.extras.get("control_callbacks", []):
        await callback(body)
