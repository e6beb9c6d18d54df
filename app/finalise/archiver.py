"""Archiver: copies every journaled event from Redis into the PostgreSQL events table.

Each session's journal is a Redis stream read through one consumer group (`archiver`); every
server process is one consumer. Entries are inserted in batches (idempotent on the event's
identity, `uq_events_identity`), acknowledged only after the commit, and trimmed from the
stream (XTRIM MINID) only after that and after `journal_trim_lag_s` (the live paths may still
read recent entries). Entries left pending by a dead consumer are reclaimed with XAUTOCLAIM
once idle for `claim_idle_s`.

Which streams to read: the set `keys.unarchived` (the journal writer adds a session after each
write), plus the live sessions and the sessions queued for finalisation.

Cost: redis-py parses replies in Python, element by element, and charges tens of µs of CPU per
command (MEASUREMENTS.md). So the journals are read by one Lua call (READ_LUA) that answers
with five strings however many journals and entries it covers, then acknowledged and trimmed
by one more (ACK_LUA), as the journal writer writes them. On Redis Cluster a script may only
name keys of one hash slot, so there it is one call per slot (every key of a session shares
the slot of its `{s:<sid>}` tag), pipelined. The rows go to PostgreSQL by COPY into a
temporary table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING, in one transaction on
the pooled connection's asyncpg driver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from app.kit import clock
from app.kit.loops import stop_if_cancelled
from app.kit.resources import Resources
from app.live.lifecycle import FINAL_STATUSES

log = logging.getLogger(__name__)

GROUP = "archiver"
# Read calls per round trip on Redis Cluster, where each hash slot (session) needs its own.
# Each call reads up to `archive_batch` entries, so a commit holds fewer than
# (READ_CALLS + 1) × `archive_batch` rows there, and fewer than 2 × `archive_batch` elsewhere.
READ_CALLS = 16

# KEYS: journals. ARGV: group, consumer, count, claim idle (ms).
# Per journal, in order, until `count` entries are read in all: this consumer's unacknowledged
# entries (a commit that failed), then entries idle that long with another consumer
# (XAUTOCLAIM: it died), then new ones. Creates the group of a new journal; a journal that
# does not exist reads as empty. Journals after the one where `count` ran out are not
# visited. Returns five strings, however many journals and entries:
#   per journal visited `r:b:p`, joined by commas: r entries with a payload (the field `e`),
#     b entries without one (deleted while pending), and when r + b = 0, p entries of the
#     group pending (with other consumers);
#   the ids of the entries with a payload, joined by commas; their payloads' lengths in bytes,
#   joined by commas; the payloads concatenated; the ids of the entries without one, joined by
#   commas.
READ_LUA = """
local group, consumer = ARGV[1], ARGV[2]
local left, idle = tonumber(ARGV[3]), ARGV[4]
local counts, ids, sizes, payloads, bare = {}, {}, {}, {}, {}
for k = 1, #KEYS do
  if left <= 0 then break end
  local key = KEYS[k]
  local seen, rows, gone, pending = {}, 0, 0, 0
  local function take(entries)
    for _, entry in ipairs(entries) do
      local id = type(entry) == 'table' and entry[1]
      if id and not seen[id] then
        seen[id] = true
        local fields, payload = entry[2], nil
        if fields then
          for i = 1, #fields - 1, 2 do
            if fields[i] == 'e' then
              payload = fields[i + 1]
              break
            end
          end
        end
        if payload then
          rows = rows + 1
          ids[#ids + 1] = id
          sizes[#sizes + 1] = #payload
          payloads[#payloads + 1] = payload
        else
          gone = gone + 1
          bare[#bare + 1] = id
        end
      end
    end
  end
  local exists = true
  local own = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', left,
                          'STREAMS', key, '0')
  if type(own) == 'table' and own.err then
    if not string.find(own.err, 'NOGROUP', 1, true) then return redis.error_reply(own.err) end
    own = false
    exists = redis.call('EXISTS', key) == 1
    if exists then redis.call('XGROUP', 'CREATE', key, group, '0') end
  end
  if exists then
    if own then take(own[1][2]) end
    if rows + gone < left then
      take(redis.call('XAUTOCLAIM', key, group, consumer, idle, '0-0',
                      'COUNT', left - rows - gone)[2])
    end
    if rows + gone < left then
      local fresh = redis.call('XREADGROUP', 'GROUP', group, consumer,
                               'COUNT', left - rows - gone, 'STREAMS', key, '>')
      if fresh then take(fresh[1][2]) end
    end
    if rows + gone == 0 then pending = redis.call('XPENDING', key, group)[1] end
  end
  left = left - rows - gone
  counts[#counts + 1] = rows .. ':' .. gone .. ':' .. pending
end
return {table.concat(counts, ','), table.concat(ids, ','), table.concat(sizes, ','),
        table.concat(payloads), table.concat(bare, ',')}
"""

# KEYS: journals. ARGV: group, trim horizon (ms), then per journal the archived ids joined by
# commas. Acknowledges them, then trims each journal (XTRIM MINID, exact) below the lowest of:
# the newest id acknowledged there + 1, the oldest entry still pending in the group, the
# horizon. Returns how many journals it trimmed.
ACK_LUA = """
local group, horizon = ARGV[1], tonumber(ARGV[2])
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function below(ams, aseq, bms, bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local trimmed = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  if redis.call('EXISTS', key) == 1 then
    local ids = {}
    for id in string.gmatch(ARGV[k + 2], '[^,]+') do ids[#ids + 1] = id end
    for i = 1, #ids, 1000 do
      redis.call('XACK', key, group, unpack(ids, i, math.min(i + 999, #ids)))
    end
    local fms, fseq = -1, -1
    for _, id in ipairs(ids) do
      local ms, seq = parse(id)
      if below(fms, fseq, ms, seq) then fms, fseq = ms, seq end
    end
    fseq = fseq + 1
    local pending = redis.call('XPENDING', key, group)
    if pending[1] > 0 then
      local ms, seq = parse(pending[2])
      if below(ms, seq, fms, fseq) then fms, fseq = ms, seq end
    end
    if below(horizon, 0, fms, fseq) then fms, fseq = horizon, 0 end
    if fms > 0 then
      redis.call('XTRIM', key, 'MINID', string.format('%.0f-%.0f', fms, fseq))
      trimmed = trimmed + 1
    end
  end
end
return trimmed
"""

# KEYS: journals; ARGV[1]: group. One character per journal: 1 when the group has entries
# pending or not yet delivered, 0 when not (or there is no journal, or it is empty).
BEHIND_LUA = """
local group = ARGV[1]
local function field(flat, name)
  for i = 1, #flat - 1, 2 do
    if flat[i] == name then return flat[i + 1] end
  end
end
local function behind(key)
  if redis.call('EXISTS', key) == 0 then return 0 end
  local stream = redis.call('XINFO', 'STREAM', key)
  if field(stream, 'length') == 0 then return 0 end
  local last = field(stream, 'last-generated-id')
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    if field(g, 'name') == group then
      if field(g, 'pending') > 0 then return 1 end
      local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
      local dms, dseq = string.match(field(g, 'last-delivered-id'), '^(%d+)-(%d+)$')
      lms, lseq, dms, dseq = tonumber(lms), tonumber(lseq), tonumber(dms), tonumber(dseq)
      if dms < lms or (dms == lms and dseq < lseq) then return 1 end
      return 0
    end
  end
  return 1
end
local out = {}
for k = 1, #KEYS do out[k] = behind(KEYS[k]) end
return table.concat(out)
"""

_COLUMNS = (
    "session_id",
    "user_id",
    "event_id",
    "type",
    "ts",
    "conn",
    "source",
    "payload",
    "journal_id",
)
_STAGING = "archive_staging"
_STAGING_READY = "hadir_archive_staging"  # key in the pooled connection's `info`
# One per database connection (temporary), emptied by every commit.
_CREATE_STAGING = f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (
        session_id text, user_id text, event_id text, type text, ts timestamptz, conn text,
        source text, payload text, journal_id text
    ) ON COMMIT DELETE ROWS
"""
_INSERT = f"""
    INSERT INTO events ({", ".join(_COLUMNS)})
    SELECT {", ".join(c + "::jsonb" if c == "payload" else c for c in _COLUMNS)}
    FROM pg_temp.{_STAGING}
    ON CONFLICT ON CONSTRAINT uq_events_identity DO NOTHING
"""
# Late evidence for a finalised session makes a new revision (CONTRACT "Schedule").
_MARK_REVISION = """
    UPDATE sessions SET needs_revision = true
    WHERE id = ANY($1::text[]) AND status = ANY($2::text[]) AND needs_revision IS false
"""
_FINAL = sorted(FINAL_STATUSES)

# One events row: the columns of _COLUMNS, in that order.
Row = tuple[str, str, str, str, datetime, str, str, str, str]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(slots=True)
class Batch:
    """Entries read from one session's journal, not yet acknowledged."""

    session_id: str
    ids: str  # every entry read, joined by commas (what ACK_LUA takes)
    size: int  # entries read, with or without a payload
    rows: list[Row]
    pending: int = 0  # when nothing was read: entries pending with other consumers


def unpack(session_ids: Sequence[str], reply: Sequence[bytes]) -> list[Batch]:
    """A READ_LUA reply (of a call naming these sessions' journals) as batches of events rows,
    one per journal visited.

    The columns are what the journal payload says, as the ingest path wrote it: `user_id`,
    `id`, `type`, `ts` (POSIX seconds, as `clock.to_dt` makes them; the identity includes it),
    `conn`, `src`; the payload is stored as journaled."""
    counts, ids, sizes, blob, bare = reply
    id_list = ids.decode().split(",") if ids else []
    size_list = sizes.split(b",") if sizes else []
    bare_list = bare.decode().split(",") if bare else []
    loads, to_dt = orjson.loads, clock.to_dt
    out: list[Batch] = []
    i = j = pos = 0
    for sid, spec in zip(session_ids, counts.decode().split(","), strict=False):
        n_rows, n_bare, pending = map(int, spec.split(":"))
        rows: list[Row] = []
        for jid, size in zip(id_list[i : i + n_rows], size_list[i : i + n_rows], strict=True):
            end = pos + int(size)
            raw = blob[pos:end]
            pos = end
            body = loads(raw)
            rows.append(
                (
                    sid,
                    str(body.get("user_id", "")),
                    str(body.get("id", "")),
                    str(body.get("type", "")),
                    to_dt(float(body.get("ts", 0.0))),
                    str(body.get("conn", "")),
                    str(body.get("src", "")),
                    raw.decode(),
                    jid,
                )
            )
        acked = ",".join((*id_list[i : i + n_rows], *bare_list[j : j + n_bare]))
        out.append(Batch(sid, acked, n_rows + n_bare, rows, pending))
        i += n_rows
        j += n_bare
    return out


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
        self._shas: dict[str, str] = {}

    def _journal(self, session_id: str) -> str:
        return self.res.keys.session(session_id).journal

    def _by_slot(self, session_ids: Sequence[str]) -> list[list[str]]:
        """Sessions whose journals one script call may name together: all of them, or on
        Redis Cluster those of one hash slot."""
        if not self.res.writer.cluster:
            return [list(session_ids)] if session_ids else []
        slots: dict[int, list[str]] = {}
        for sid in session_ids:
            slots.setdefault(key_slot(self._journal(sid).encode()), []).append(sid)
        return list(slots.values())

    async def _eval(
        self, script: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run `script` once per (session ids, args) with their journals as KEYS, pipelined in
        one round trip. Errors are raised; scripts Redis lost (a restart) are loaded again."""
        for attempt in (0, 1):
            sha = self._shas.get(script)
            if sha is None:
                sha = self._shas[script] = await self.res.redis.script_load(script)
            async with self.res.redis.pipeline(transaction=False) as pipe:
                for sids, args in calls:
                    pipe.evalsha(sha, len(sids), *map(self._journal, sids), *args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            lost = any(isinstance(r, NoScriptError) for r in replies)
            if lost and not attempt:
                self._shas.pop(script, None)
                continue
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return replies
        raise AssertionError("unreachable")  # pragma: no cover

    async def read(self, session_ids: Sequence[str], count: int) -> list[Batch]:
        """One round trip (READ_LUA): up to `count` entries from these journals, taken in order;
        a batch (maybe empty) for each journal visited. Those after the one where `count` ran
        out are not visited. On Redis Cluster: one call per hash slot, each with its own
        `count`, for the first READ_CALLS slots."""
        groups = self._by_slot(session_ids)[:READ_CALLS]
        args = (GROUP, self.consumer, count, self.claim_idle_ms)
        replies = await self._eval(READ_LUA, [(group, args) for group in groups])
        return [
            b for group, reply in zip(groups, replies, strict=True) for b in unpack(group, reply)
        ]

    async def store(self, batches: Sequence[Batch]) -> int:
        """Insert the batches' rows in one transaction; returns the rows new to the table.

        COPY into this connection's temporary staging table, then one INSERT ... SELECT that
        skips events already archived (same identity): a retry after a failed commit or
        acknowledgement, or another consumer's copy of a reclaimed entry, adds nothing."""
        rows = [r for b in batches for r in b.rows]
        if not rows:
            return 0
        sids = sorted({b.session_id for b in batches if b.rows})
        async with self.res.engine.connect() as conn:
            pooled = await conn.get_raw_connection()
            pg = pooled.driver_connection
            assert pg is not None
            ready = bool(pooled.info.get(_STAGING_READY))
            try:
                async with pg.transaction():
                    if not ready:
                        await pg.execute(_CREATE_STAGING)
                    await pg.copy_records_to_table(
                        _STAGING, schema_name="pg_temp", records=rows, columns=_COLUMNS
                    )
                    status = await pg.execute(_INSERT)
                    await pg.execute(_MARK_REVISION, sids, _FINAL)
            except BaseException:
                if pg.is_closed() or pg.is_in_transaction():  # not fit for the pool
                    await conn.invalidate()
                raise
            pooled.info[_STAGING_READY] = True  # committed: the table lasts as long as `pg`
        inserted = int(status.rsplit(" ", 1)[-1])
        self.archived += inserted
        return inserted

    async def ack(self, batches: Sequence[Batch]) -> None:
        """Acknowledge the batches' entries and trim what no one needs (ACK_LUA)."""
        horizon_ms = int(time.time() * 1000) - int(self.res.settings.journal_trim_lag_s * 1000)
        ids = {b.session_id: b.ids for b in batches}
        calls = [
            (group, (GROUP, horizon_ms, *(ids[sid] for sid in group)))
            for group in self._by_slot(list(ids))
        ]
        await self._eval(ACK_LUA, calls)

    async def behind(self, session_ids: Sequence[str]) -> list[bool]:
        """Per journal: entries not yet delivered to the group, or pending (BEHIND_LUA)."""
        groups = self._by_slot(session_ids)
        replies = await self._eval(BEHIND_LUA, [(group, (GROUP,)) for group in groups])
        found = {
            sid: flag == ord("1")
            for group, reply in zip(groups, replies, strict=True)
            for sid, flag in zip(group, reply, strict=True)
        }
        return [found[sid] for sid in session_ids]

    async def candidates(self) -> tuple[set[str], set[str]]:
        """The sessions to visit: (those in `unarchived`, the live or queued ones)."""
        redis, keys = self.res.redis, self.res.keys
        async with redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.unarchived)
            pipe.zrange(keys.live_sessions, 0, -1)
            pipe.zrange(keys.finalise_queue, 0, -1)
            marked, live, queued = await pipe.execute()
        return {_s(x) for x in marked}, {_s(x) for x in (*live, *queued)}

    async def archive(
        self, session_ids: Iterable[str], *, marked: Collection[str] | None = None
    ) -> int:
        """One pass over these sessions' journals; returns entries read (0: all caught up).

        Drained journals leave `unarchived`; `marked`, when given, is what it held when the
        pass began (the others need no SREM)."""
        count = self.res.settings.archive_batch
        todo = list(dict.fromkeys(session_ids))
        batches: list[Batch] = []
        idle: list[str] = []
        total = held = 0
        while todo:
            visited = set()
            for got in await self.read(todo, count):
                visited.add(got.session_id)
                if got.size:
                    batches.append(got)
                    held += got.size
                elif not got.pending and (marked is None or got.session_id in marked):
                    idle.append(got.session_id)
            assert visited, "READ_LUA visits at least the first journal"
            todo = [sid for sid in todo if sid not in visited]
            if held >= count or (batches and not todo):
                await self.store(batches)
                await self.ack(batches)
                total += held
                batches, held = [], 0
        if idle:
            await self._forget_drained(idle)
        return total

    async def _forget_drained(self, session_ids: list[str]) -> None:
        """Drop drained journals (nothing new, nothing pending) from `unarchived`.

        SREM comes before the final look: a write after it adds the session again, and a
        write before it is seen by the look, so nothing is stranded."""
        redis, keys = self.res.redis, self.res.keys
        await redis.srem(keys.unarchived, *session_ids)
        looks = await self.behind(session_ids)
        again = [sid for sid, behind in zip(session_ids, looks, strict=True) if behind]
        if again:
            await redis.sadd(keys.unarchived, *again)

    async def run_once(self) -> int:
        marked, others = await self.candidates()
        return await self.archive(sorted(marked | others), marked=marked)

    async def caught_up(self, session_id: str) -> bool:
        """Every entry of the session's journal is in PostgreSQL (acknowledged by the group)."""
        return not (await self.behind([session_id]))[0]

    async def drain(self, session_id: str, *, rounds: int = 1000) -> bool:
        """Archive one session's journal now (the finaliser does not wait for the loop);
        False when entries stay pending with another live consumer."""
        for _ in range(rounds):
            if not await self.archive([session_id]):
                return await self.caught_up(session_id)
        return await self.caught_up(session_id)


def archiver(res: Resources) -> Archiver:
    found = res.extras.get("archiver")
    if isinstance(found, Archiver):
        return found
    made = Archiver(res)
    res.extras["archiver"] = made
    return made


async def loop(res: Resources, period_s: float = 0.2) -> None:
    """Archive forever; a failed pass (PostgreSQL restarting) is retried, nothing is acked.

    A pass that read fewer than `archive_batch` entries left every journal caught up, so the
    next one waits `period_s`: under live load a pass then carries what arrived meanwhile,
    not a handful of entries for the same round trips (the finaliser drains a session itself
    and does not wait for this loop)."""
    arch = archiver(res)
    delay = period_s
    while True:
        stop_if_cancelled()
        try:
            n = await arch.run_once()
            delay = 0.0 if n >= res.settings.archive_batch else period_s
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("archiver pass failed (%s); retrying", exc)
            delay = min(max(delay * 2, period_s), 5.0)
        await asyncio.sleep(delay)
