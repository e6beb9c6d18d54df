"""What the three webhook endpoints share: reading the body, and journaling what it said.

A webhook is answered as soon as its events are durable in the journal: verify, map, journal,
2xx. Nothing slow happens in the request (finalisation is queued, never run here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request

from app.ingest import sessions as directory
from app.ingest.events import Entry, import_entries
from app.ingest.journal import op_for
from app.ingest.webhooks import mapping
from app.ingest.webhooks.mapping import Target
from app.kit import clock, metrics
from app.kit.problems import Problem
from app.kit.resources import Resources
from app.live.lifecycle import (
    FINAL_STATUSES,
    announce_ended,
    end_session,
    mark_live,
    schedule_finalisation,
)

MAX_BODY_BYTES = 1024 * 1024  # platforms send a few KiB; 1 MiB bounds the memory of a request
ENDS = frozenset({"leave", "drop"})


def _json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    # LiveKit sends application/webhook+json.
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, provider: str) -> bytes:
    """The raw body (signatures cover the exact bytes): 415 unless JSON, 413 past 1 MiB."""
    if not _json_media_type(request.headers.get("content-type")):
        metrics.webhooks_total.labels(provider, "unsupported_media_type").inc()
        raise Problem(415, "unsupported_media_type", "the body must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        metrics.webhooks_total.labels(provider, "too_large").inc()
        raise Problem(413, "payload_too_large", f"at most {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            metrics.webhooks_total.labels(provider, "too_large").inc()
            raise Problem(413, "payload_too_large", f"at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(body: bytes, provider: str) -> dict[str, Any]:
    """The JSON object of a verified body; 400 when it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        metrics.webhooks_total.labels(provider, "invalid").inc()
        raise Problem(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        metrics.webhooks_total.labels(provider, "invalid").inc()
        raise Problem(400, "invalid_json", "the body must be a JSON object")
    return doc


def ack(provider: str, outcome: str, **extra: Any) -> dict[str, Any]:
    metrics.webhooks_total.labels(provider, outcome).inc()
    return {"status": outcome, **extra}


async def journal(
    res: Resources, target: Target, entries: Sequence[Entry], learners: set[str]
) -> int:
    """Journal platform entries; returns how many were new (duplicates count once).

    The journal is ordered by trusted time when it is evaluated, so a `left` delivered before its
    `joined` gives the same intervals. Only the live state needs care: a join whose connection
    already has a later platform end is journaled without opening the connection there.
    """
    if not entries:
        return 0
    keys = res.keys.session(target.session_id)
    members = [f"{e.conn}|{e.user_id}" for e in entries]
    known = await res.redis.hmget(keys.platform_ends, members)
    latest: dict[str, float] = {
        m: float(v) for m, v in zip(members, known, strict=True) if v is not None
    }
    pairs: list[tuple[Entry, str]] = []
    for entry, member in zip(entries, members, strict=True):
        op = op_for(entry, learner=entry.user_id in learners)
        if entry.type == "join" and latest.get(member, float("-inf")) >= entry.ts:
            op = "x"
        if entry.type in ENDS and entry.ts > latest.get(member, float("-inf")):
            latest[member] = entry.ts
        pairs.append((entry, op))
    ends = {m: latest[m] for e, m in zip(entries, members, strict=True) if e.type in ENDS}
    if ends:
        async with res.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.platform_ends, mapping={m: repr(t) for m, t in ends.items()})
            pipe.expire(keys.platform_ends, res.settings.journal_ttl_s)
            await pipe.execute()
    added: int = await res.writer.write(target.session_id, pairs)
    if added:
        metrics.events_total.labels(entries[0].source).inc(added)
    if added and target.status in FINAL_STATUSES:
        # Late evidence after finalisation makes a new revision.
        await schedule_finalisation(res, target.session_id, 0.0)
    return added


async def started(res: Resources, target: Target, at: float) -> None:
    """The platform says the meeting runs (or someone joined it): the session is live."""
    if target.status != "scheduled":
        return
    await mark_live(res, target.session_id, at, target.scheduled_end + target.end_grace)
    directory.forget(res, target.session_id)


async def ended(res: Resources, target: Target, at: float) -> bool:
    """The platform says the meeting ended: end the session at the platform's time.

    An `ended` before the scheduled start is ignored: Zoom ends a meeting whenever its host
    leaves it empty, which a host opening the room early does routinely.
    """
    if at < target.scheduled_start:
        return False
    async with res.engine.begin() as db:
        done, _ = await end_session(res, db, target.session_id, reason="platform", at=at)
    directory.forget(res, target.session_id)
    if done:
        await announce_ended(res, target.session_id)
    return done


def platform_entry(
    source: str,
    *,
    event_id: str,
    etype: str,
    user_id: str,
    ts: float,
    conn: str,
    **extra: Any,
) -> Entry:
    """A platform event as a journal entry, validated by the one event model (the same path as
    an imported event), with the platform's own time as the trusted `ts`."""
    obj: dict[str, Any] = {
        "id": event_id,
        "type": etype,
        "user_id": user_id,
        "ts": clock.iso(ts),
        "conn": conn,
    }
    if etype == "drop":
        obj["reason"] = "abnormal"
    good, bad = import_entries([obj], source=source)
    if bad:
        raise ValueError(bad[0].detail)
    entry = good[0]
    entry.ts = ts  # full precision; the ISO form above carries milliseconds
    entry.fields.update({k: v for k, v in extra.items() if v is not None})
    return entry


def event_time(provider: str, at: float | None) -> float:
    """The platform's time of an event; an event without one is refused (400)."""
    if at is None:
        metrics.webhooks_total.labels(provider, "invalid").inc()
        raise Problem(400, "invalid_payload", "the event carries no time")
    return at


async def route(
    res: Resources, provider: str, refs: Sequence[str], at: float, lifecycle: str | None
) -> tuple[Target | None, dict[str, Any] | None]:
    """Map a platform event to its session by its meeting refs and time. Unknown meetings and
    the meeting's own lifecycle (`started`, `ended`) are answered here: the answer comes back
    as the second value, and a participant event gets (target, None) to journal."""
    target = await mapping.resolve_session(res, provider, list(refs), at)
    if target is None:
        return None, ack(provider, "unknown_meeting")
    if lifecycle == "started":
        await started(res, target, at)
        return target, ack(provider, "accepted", session_id=target.session_id)
    if lifecycle == "ended":
        done = await ended(res, target, at)
        return target, ack(
            provider, "accepted" if done else "ignored", session_id=target.session_id
        )
    return target, None
