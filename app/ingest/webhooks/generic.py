"""Generic webhooks: `POST /v1/webhooks/generic`, signed with Standard Webhooks.

Body `{"session_id", "events": [import events]}`: the same event shapes as
`POST /v1/sessions/{id}/events` (each with `user_id` and its own trusted `ts`), validated by the
same `import_entries`. Users are the LMS's own ids. The secret(s) are `HADIR_WEBHOOK_SECRET`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.ingest import sessions as directory
from app.ingest.events import EventError, import_entries
from app.ingest.webhooks import common, signatures
from app.ingest.webhooks.mapping import Target
from app.kit import clock, metrics
from app.kit.problems import Problem
from app.kit.resources import Resources

PROVIDER = "generic"


async def handle(request: Request, res: Resources) -> dict[str, Any]:
    body = await common.read_body(request, PROVIDER)
    configured = res.settings.webhook_secret
    if not configured:
        raise Problem(503, "webhook_not_configured", "HADIR_WEBHOOK_SECRET is not set")
    try:
        keys = signatures.standard_secrets(configured)
    except ValueError as exc:
        raise Problem(503, "webhook_not_configured", str(exc)) from None
    try:
        signatures.verify_standard(
            keys,
            body,
            request.headers.get("webhook-id"),
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            now=clock.now(),
        )
    except signatures.SignatureError as exc:
        metrics.webhooks_total.labels(PROVIDER, "bad_signature").inc()
        raise Problem(401, "bad_signature", exc.reason) from None
    doc = common.parse_object(body, PROVIDER)
    session_id = doc.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        metrics.webhooks_total.labels(PROVIDER, "invalid").inc()
        raise Problem(422, "invalid_input", "'session_id' is required")
    try:
        good, bad = import_entries(doc.get("events"), source=PROVIDER)
    except EventError as exc:
        metrics.webhooks_total.labels(PROVIDER, "invalid").inc()
        raise Problem(422, exc.code, exc.detail) from None
    info = await directory.load(res, session_id, fresh=True)
    if info is None:
        return common.ack(PROVIDER, "unknown_meeting", session_id=session_id)
    if bad and not good:
        metrics.webhooks_total.labels(PROVIDER, "invalid").inc()
        raise Problem(
            422,
            "invalid_events",
            f"{len(bad)} invalid event(s), none taken",
            extra={"errors": [{"code": e.code, "detail": e.detail} for e in bad]},
        )
    target = Target(
        info.id, info.status, info.scheduled_start, info.scheduled_end, info.policy.end_grace
    )
    learners = {u for u, r in info.roles.items() if r == "learner"}
    added = await common.journal(res, target, good, learners)
    joins = [e.ts for e in good if e.type == "join"]
    if joins:
        await common.started(res, target, min(joins))
    return common.ack(
        PROVIDER,
        "accepted" if added else "duplicate",
        session_id=session_id,
        accepted=len(good),
        new=added,
        duplicates=len(good) - added,
        rejected=[{"code": e.code, "detail": e.detail} for e in bad],
    )
