"""Archiver: copies every journaled event from Redis into the PostgreSQL events table.

Each session's journal is a Redis stream read through one consumer group (`archiver`); every
server process is one consumer. Entries are inserted in batches (idempotent on the event's
identity, `uq_events_identity`), acknowledged only after the commit, and trimmed from the
stream (XTRIM MINID) only after that and after `journal_trim_lag_s` (the live paths may still
read recent entries). Entries left pending by a dead consumer are reclaimed with XAUTOCLAIM
once idle for `claim_idle_s`.

Which streams to read: the set `keys.unarchived` (the journal writer adds a session after each
write), plus the live sessions and the sessions queued for finalisation. Every Redis command
names one key, or keys of one `{s:<sid>}` tag: Cluster-friendly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit import clock
from app.kit.db import sessions
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources
from app.live.lifecycle import FINAL_STATUSES

log = logging.getLogger(__name__)

GROUP = "archiver"

_INSERT = text(
    """
    INSERT INTO events (session_id, user_id, event_id, type, ts, conn, source, payload,
                        journal_id)
    SELECT * FROM unnest(
        CAST(:sid AS text[]), CAST(:uid AS text[]), CAST(:eid AS text[]), CAST(:typ AS text[]),
        CAST(:ts AS timestamptz[]), CAST(:conn AS text[]), CAST(:src AS text[]),
        CAST(:payload AS jsonb[]), CAST(:jid AS text[]))
    ON CONFLICT ON CONSTRAINT uq_events_identity DO NOTHING
    """
)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class Batch:
    """Entries read from one session's journal, not yet acknowledged."""

    session_id: str
    ids: list[str]
    rows: list[Any]


def _rows(session_id: str, entries: Sequence[tuple[Any, Any]]) -> tuple[list[str], list[Any]]:
    ids: list[str] = []
    rows: list[Any] = []
    for entry_id, fields in entries:
        if fields is None:  # deleted from the stream while pending
            ids.append(_s(entry_id))
            continue
        raw = fields.get(b"e") or fields.get("e")
        ids.append(_s(entry_id))
        if raw is None:
            continue
        body = orjson.loads(raw)
        rows.append((session_id, body, _s(entry_id), raw))
    return ids, rows


async def insert_rows(conn: AsyncConnection, rows: Sequence[Any]) -> int:
    """Insert decoded journal entries; duplicates (same identity) are skipped."""
    if not rows:
        return 0
    cols: dict[str, list[Any]] = {
        k: [] for k in ("sid", "uid", "eid", "typ", "ts", "conn", "src", "payload", "jid")
    }
    for session_id, body, jid, raw in rows:
        cols["sid"].append(session_id)
        cols["uid"].append(str(body.get("user_id", "")))
        cols["eid"].append(str(body.get("id", "")))
        cols["typ"].append(str(body.get("type", "")))
        cols["ts"].append(clock.to_dt(float(body.get("ts", 0.0))))
        cols["conn"].append(str(body.get("conn", "")))
        cols["src"].append(str(body.get("src", "")))
        cols["payload"].append(_s(raw))
        cols["jid"].append(jid)
    result = await conn.execute(_INSERT, cols)
    return int(result.rowcount or 0)


class Archiver:
    """One process's consumer of every session journal.

    `claim_idle_s` (default `archive_claim_idle_s`): how long another consumer's entry stays
    unacknowledged before this one takes it over (that consumer is taken for dead)."""

    def __init__(
        self, res: Resources, consumer: str | None = None, *, claim_idle_s: float | None = None
    ) -> None:
        self.res = res
        self.consumer = consumer or f"archiver-{res.instance}"
        idle_s = res.settings.archive_claim_idle_s if claim_idle_s is None else claim_idle_s
        self.claim_idle_ms = int(idle_s * 1000)
        self.archived = 0  # events inserted by this consumer (new rows)

    def _journal(self, session_id: str) -> str:
        return self.res.keys.session(session_id).journal

    async def _ensure_group(self, session_id: str) -> bool:
        """Create the consumer group; False when the journal does not exist."""
        try:
            await self.res.redis.xgroup_create(self._journal(session_id), GROUP, id="0")
        except ResponseError as exc:
            message = str(exc)
            if "BUSYGROUP" in message:
                return True
            if "requires the key to exist" in message or "no such key" in message.lower():
                return False
            raise
        return True

    async def _read(self, session_id: str, count: int) -> tuple[list[str], list[Any]] | None:
        """This consumer's unacknowledged entries (a failed commit), then entries idle with a
        dead consumer (XAUTOCLAIM), then new ones. None: no journal."""
        redis, key = self.res.redis, self._journal(session_id)
        idle_ms = self.claim_idle_ms
        for attempt in (0, 1):
            try:
                entries: list[Any] = []
                own: Any = await redis.xreadgroup(GROUP, self.consumer, {key: "0"}, count=count)
                for _, items in own or []:
                    entries.extend(items)
                if len(entries) < count:
                    claimed = await redis.xautoclaim(
                        key, GROUP, self.consumer, idle_ms, start_id="0-0", count=count
                    )
                    entries.extend(claimed[1])
                if len(entries) < count:
                    fresh: Any = await redis.xreadgroup(
                        GROUP, self.consumer, {key: ">"}, count=count - len(entries)
                    )
                    for _, items in fresh or []:
                        entries.extend(items)
                return _rows(session_id, entries)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc) or attempt:
                    raise
                if not await self._ensure_group(session_id):
                    return None
        return None  # pragma: no cover

    async def _commit(self, batches: list[Batch]) -> None:
        rows = [r for b in batches for r in b.rows]
        async with self.res.engine.begin() as conn:
            inserted = await insert_rows(conn, rows)
            # Late evidence for a finalised session makes a new revision (CONTRACT "Schedule").
            sids = sorted({b.session_id for b in batches if b.rows})
            if sids:
                await conn.execute(
                    update(sessions)
                    .where(
                        sessions.c.id.in_(sids),
                        sessions.c.status.in_(FINAL_STATUSES),
                        sessions.c.needs_revision.is_(False),
                    )
                    .values(needs_revision=True)
                )
        self.archived += inserted
        await self._ack_and_trim(batches)

    async def _ack_and_trim(self, batches: list[Batch]) -> None:
        redis = self.res.redis
        lag_ms = int(self.res.settings.journal_trim_lag_s * 1000)
        horizon_ms = int(time.time() * 1000) - lag_ms
        async with redis.pipeline(transaction=False) as pipe:
            for b in batches:
                if b.ids:
                    pipe.xack(self._journal(b.session_id), GROUP, *b.ids)
                    pipe.xpending(self._journal(b.session_id), GROUP)
            replies = await pipe.execute()
        pendings = replies[1::2]
        async with redis.pipeline(transaction=False) as pipe:
            trims = 0
            for b, pending in zip((b for b in batches if b.ids), pendings, strict=True):
                last = max(b.ids, key=_id_key)
                ms, seq = _id_key(last)
                floor = (ms, seq + 1)
                low = pending.get("min") if pending and pending.get("pending") else None
                if low:
                    floor = min(floor, _id_key(_s(low)))
                floor = min(floor, (horizon_ms, 0))
                if floor[0] > 0:
                    minid = f"{floor[0]}-{floor[1]}"
                    pipe.xtrim(self._journal(b.session_id), minid=minid, approximate=False)
                    trims += 1
            if trims:
                await pipe.execute()

    async def candidates(self) -> list[str]:
        redis, keys = self.res.redis, self.res.keys
        async with redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.unarchived)
            pipe.zrange(keys.live_sessions, 0, -1)
            pipe.zrange(keys.finalise_queue, 0, -1)
            marked, live, queued = await pipe.execute()
        return sorted({_s(x) for x in (*marked, *live, *queued)})

    async def archive(self, session_ids: Iterable[str]) -> int:
        """One pass over these sessions' journals; returns entries read (0: all caught up)."""
        count = self.res.settings.archive_batch
        batches: list[Batch] = []
        drained: list[str] = []
        total = 0
        for sid in session_ids:
            got = await self._read(sid, count)
            if got is None:
                drained.append(sid)
                continue
            ids, rows = got
            if ids:
                batches.append(Batch(sid, ids, rows))
                total += len(ids)
            else:
                drained.append(sid)
            if sum(len(b.ids) for b in batches) >= count:
                await self._commit(batches)
                batches = []
        if batches:
            await self._commit(batches)
        if drained:
            await self._forget_drained(drained)
        return total

    async def _forget_drained(self, session_ids: list[str]) -> None:
        """Drop drained journals from `unarchived`, unless someone still holds entries.

        SREM comes before the final look: a write after it adds the session again, and a
        write before it is seen by the look, so nothing is stranded.
        """
        redis, keys = self.res.redis, self.res.keys
        async with redis.pipeline(transaction=False) as pipe:
            for sid in session_ids:
                pipe.xpending(self._journal(sid), GROUP)
            pendings = await pipe.execute(raise_on_error=False)
        idle = [
            sid
            for sid, p in zip(session_ids, pendings, strict=True)
            if isinstance(p, BaseException) or not p.get("pending")
        ]
        if not idle:
            return
        await redis.srem(keys.unarchived, *idle)
        again = [sid for sid in idle if await self._behind(sid)]
        if again:
            await redis.sadd(keys.unarchived, *again)

    async def _behind(self, session_id: str) -> bool:
        """Entries not yet delivered to the group (or pending)."""
        key = self._journal(session_id)
        try:
            stream = await self.res.redis.xinfo_stream(key)
            groups = await self.res.redis.xinfo_groups(key)
        except ResponseError:
            return False  # no journal
        last = _id_key(_s(stream.get("last-generated-id") or "0-0"))
        if not stream.get("length"):
            return False
        for g in groups:
            if _s(g.get("name", b"")) == GROUP:
                delivered = _id_key(_s(g.get("last-delivered-id") or "0-0"))
                return bool(g.get("pending")) or delivered < last
        return True

    async def run_once(self) -> int:
        return await self.archive(await self.candidates())

    async def caught_up(self, session_id: str) -> bool:
        """Every entry of the session's journal is in PostgreSQL (acknowledged by the group)."""
        return not await self._behind(session_id)

    async def drain(self, session_id: str, *, rounds: int = 1000) -> bool:
        """Archive one session's journal now (the finaliser does not wait for the loop);
        False when entries stay pending with another live consumer."""
        for _ in range(rounds):
            if not await self.archive([session_id]):
                return await self.caught_up(session_id)
        return await self.caught_up(session_id)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def archiver(res: Resources) -> Archiver:
    found = res.extras.get("archiver")
    if isinstance(found, Archiver):
        return found
    made = Archiver(res)
    res.extras["archiver"] = made
    return made


async def loop(res: Resources, period_s: float = 0.2) -> None:
    """Archive forever; a failed pass (PostgreSQL restarting) is retried, nothing is acked."""
    import asyncio

    arch = archiver(res)
    delay = period_s
    while True:
        stop_if_cancelled()
        try:
            n = await arch.run_once()
            delay = period_s if not n else 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("archiver pass failed (%s); retrying", exc)
            delay = min(max(delay * 2, period_s), 5.0)
        await asyncio.sleep(delay)
