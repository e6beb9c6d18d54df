"""Transactional outbox to the LMS (CONTRACT "Results", "Outbound").

Messages are written in the transaction that makes the change (`enqueue`), then POSTed to
`HADIR_LMS_WEBHOOK_URL` by `deliver_due`, signed per Standard Webhooks, retried with
exponential backoff until a 2xx: at least once, and in order per key (a session, or a
course's learner) because only the oldest undelivered message of a key is ever sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit import clock
from app.kit.db import outbox
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources

log = logging.getLogger(__name__)

TYPES = frozenset({"session.finalised", "record.revised", "standing.warning"})


async def enqueue(conn: AsyncConnection, key: str, type_: str, data: dict[str, Any]) -> str:
    """Queue one message in the caller's transaction; returns its webhook id."""
    (msg_id,) = await enqueue_many(conn, [(key, type_, data)])
    return msg_id


async def enqueue_many(
    conn: AsyncConnection, messages: Sequence[tuple[str, str, dict[str, Any]]]
) -> list[str]:
    """Queue (key, type, data) messages in the caller's transaction with one INSERT, in this
    order (each key's messages are delivered in the order of their ids); returns their ids."""
    if not messages:
        return []
    now = clock.now()
    stamp, due = clock.iso(now), clock.to_dt(now)
    rows: list[dict[str, Any]] = []
    for key, type_, data in messages:
        assert type_ in TYPES, type_
        rows.append(
            {
                "msg_id": "msg_" + secrets.token_hex(12),
                "key": key,
                "type": type_,
                "payload": {"type": type_, "timestamp": stamp, "data": data},
                "next_attempt_at": due,
            }
        )
    # executemany: SQLAlchemy sends multi-row VALUES pages, ids drawn in row order.
    await conn.execute(insert(outbox), rows)
    return [row["msg_id"] for row in rows]


def secret_bytes(secret: str) -> bytes:
    """A `whsec_` secret is base64 after the prefix; anything else is used as it is."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(attempts: int, base_s: float, max_s: float) -> float:
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


_DUE = text(
    """
    SELECT o.id, o.msg_id, o.payload, o.attempts FROM outbox o
    WHERE o.delivered_at IS NULL AND o.next_attempt_at <= :now
      AND NOT EXISTS (SELECT 1 FROM outbox p
                      WHERE p.key = o.key AND p.delivered_at IS NULL AND p.id < o.id)
    ORDER BY o.id LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)


async def deliver_due(res: Resources, client: httpx.AsyncClient, limit: int = 50) -> int:
    """Send the due messages once; returns how many were acknowledged."""
    settings = res.settings
    url = settings.lms_webhook_url
    secret = settings.lms_webhook_secret or settings.webhook_secret
    if not url:
        return 0
    delivered = 0
    async with res.engine.begin() as conn:
        rows = (await conn.execute(_DUE, {"now": clock.to_dt(clock.now()), "limit": limit})).all()
        for row in rows:
            body = orjson.dumps(row.payload)
            timestamp = int(clock.now())
            headers = {
                "content-type": "application/json",
                "webhook-id": row.msg_id,
                "webhook-timestamp": str(timestamp),
            }
            if secret:
                headers["webhook-signature"] = sign(secret, row.msg_id, timestamp, body)
            error: str | None = None
            try:
                reply = await client.post(url, content=body, headers=headers)
                if not 200 <= reply.status_code < 300:
                    error = f"HTTP {reply.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            now = clock.now()
            if error is None:
                delivered += 1
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(delivered_at=clock.to_dt(now), attempts=row.attempts + 1)
                )
            else:
                wait = backoff(
                    row.attempts + 1, settings.lms_retry_base_s, settings.lms_retry_max_s
                )
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(
                        attempts=row.attempts + 1,
                        last_error=error,
                        next_attempt_at=clock.to_dt(now + wait),
                    )
                )
                log.info("LMS delivery of %s failed (%s); retry in %.1f s", row.msg_id, error, wait)
    return delivered


async def loop(res: Resources, period_s: float = 0.2) -> None:
    """Deliver forever (only where `HADIR_LMS_WEBHOOK_URL` is set)."""
    import asyncio

    if not res.settings.lms_webhook_url:
        return
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            stop_if_cancelled()
            try:
                sent = await deliver_due(res, client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox pass failed (%s); retrying", exc)
                sent = 0
            await asyncio.sleep(0 if sent else period_s)
