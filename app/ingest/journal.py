"""The durable per-session journal in Redis, written in batches.

Every event is appended to its session's stream and the participant's live state is updated in
the same Lua call, which also de-duplicates by event id. Writers from all connections of this
process share one task: each round trip to Redis carries everything that arrived since the last
one, as ONE EVALSHA for every session in it, sent on the writer's own connection
(MEASUREMENTS.md: redis-py costs ~66 µs of CPU per command, so commands per event, or even per
session, dominate the cost of ingest). On Redis Cluster a script may only touch one hash slot,
so there it is one EVALSHA per slot (every key of a session shares the slot of its `{s:<id>}`
tag), pipelined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError

from app.ingest.events import Entry
from app.kit import metrics
from app.kit.keys import Keys

log = logging.getLogger(__name__)

# One call carries one or more sessions. KEYS: 5 per session (journal, seen, conns, online,
# learners), then, where it shares the call's hash slot (not on Cluster), the set of
# sessions with unarchived entries. ARGV: ttl, that set's ttl, then per session: its pub/sub
# channel, its id, its event count n, and one value per event: the op letter followed by the
# event's journal payload (JSON with `id`, `user_id`, `conn`, `ts`), so redis-py packs one
# argument per event instead of six.
# ops: j/J join (J: a learner), h heartbeat, l/L end of a connection, T/t heartbeat timeout
# (journaled only if the connection is still open), x anything else.
# Returns, per session, one '1' (new) or '0' (seen before) per event.
INGEST_LUA = """
local ttl = ARGV[1]
local a = 3
local out = {}
local sessions = math.floor(#KEYS / 5)
local unarchived = nil
if #KEYS % 5 == 1 then unarchived = KEYS[#KEYS] end
for s = 0, sessions - 1 do
  local journal, seen, conns = KEYS[s*5+1], KEYS[s*5+2], KEYS[s*5+3]
  local online, learners = KEYS[s*5+4], KEYS[s*5+5]
  local channel, sid, n = ARGV[a], ARGV[a+1], tonumber(ARGV[a+2])
  a = a + 3
  local added = 0
  local flags = {}
  for i = 1, n do
    local op = string.sub(ARGV[a], 1, 1)
    local payload = string.sub(ARGV[a], 2)
    a = a + 1
    local e = cjson.decode(payload)
    local user = e['user_id']
    local member = e['conn'] .. '|' .. user
    local new = '0'
    local go = true
    if op == 'T' or op == 't' then
      go = redis.call('ZSCORE', conns, member) ~= false
    end
    if go and redis.call('SADD', seen, user .. '|' .. e['id']) == 1 then
      redis.call('XADD', journal, '*', 'e', payload)
      added = added + 1
      new = '1'
      if op == 'j' or op == 'J' then
        if redis.call('ZADD', conns, e['ts'], member) == 1 then
          redis.call('HINCRBY', online, user, 1)
          if op == 'J' then redis.call('HINCRBY', learners, user, 1) end
        end
      elseif op == 'h' then
        redis.call('ZADD', conns, 'XX', 'GT', e['ts'], member)
      elseif op ~= 'x' then
        if redis.call('ZREM', conns, member) == 1 then
          if redis.call('HINCRBY', online, user, -1) <= 0 then redis.call('HDEL', online, user) end
          if op == 'L' or op == 'T' then
            if redis.call('HINCRBY', learners, user, -1) <= 0 then
              redis.call('HDEL', learners, user)
            end
          end
        end
      end
    end
    flags[i] = new
  end
  for k = s*5+1, s*5+5 do redis.call('EXPIRE', KEYS[k], ttl) end
  if added > 0 then redis.call('PUBLISH', channel, added) end
  if unarchived then redis.call('SADD', unarchived, sid) end
  out[#out + 1] = table.concat(flags)
end
if unarchived then redis.call('EXPIRE', unarchived, ARGV[2]) end
return out
"""

Done = Callable[[int | BaseException], None]


def op_for(entry: Entry, *, learner: bool, timeout: bool = False) -> str:
    """The live-state operation of an entry (see INGEST_LUA)."""
    t = entry.type
    if t == "join":
        return "J" if learner else "j"
    if t == "heartbeat":
        return "h"
    if t in ("leave", "drop"):
        if timeout:
            return "T" if learner else "t"
        return "L" if learner else "l"
    return "x"


@dataclass(slots=True)
class _Submission:
    session_id: str
    args: list[str | bytes | float]
    count: int
    done: Done
    received: float


@dataclass(slots=True)
class JournalWriter:
    """Batches journal writes of every connection of this process into one round trip."""

    redis: Redis
    keys: Keys
    ttl_s: int
    retry_for_s: float = 5.0
    _pending: list[_Submission] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sha: str | None = None
    _conn: AbstractConnection | None = None
    _closing: bool = False
    cluster: bool = False

    async def start(self) -> None:
        self._sha = await self.redis.script_load(INGEST_LUA)
        info = await self.redis.info("cluster")
        self.cluster = bool(info.get("cluster_enabled"))
        # Its own connection, of the pool's kind (TCP, TLS or the embedded server's socket).
        self._conn = self.redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.disconnect()

    def submit(
        self,
        session_id: str,
        entries: Sequence[tuple[Entry, str]],
        done: Done,
        received: float | None = None,
    ) -> None:
        """Queue (entry, op) pairs of one session; `done` gets the number newly journaled
        (duplicates are not new) or the exception that stopped the write."""
        args: list[str | bytes | float] = [op.encode() + entry.payload() for entry, op in entries]
        self._pending.append(
            _Submission(session_id, args, len(entries), done, received or time.perf_counter())
        )
        self._wake.set()

    async def write(self, session_id: str, entries: Sequence[tuple[Entry, str]]) -> int:
        """Submit and wait until durable."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def done(result: int | BaseException) -> None:
            if fut.done():
                return
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        self.submit(session_id, entries, done)
        return await fut

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, []
            try:
                results = await self._write_with_retry(batch)
            except Exception as exc:  # Redis down past the retry budget: nothing was acked.
                log.error("journal write failed for %d submissions: %s", len(batch), exc)
                for sub in batch:
                    sub.done(exc)
                continue
            # The callbacks (which send the acks) run in the loop's next step: by then the next
            # write is already on its way to Redis, so the two overlap.
            asyncio.get_running_loop().call_soon(_durable, batch, results)

    async def _write_with_retry(self, batch: list[_Submission]) -> list[int]:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                return await self._write(batch)
            except NoScriptError:
                self._sha = await self.redis.script_load(INGEST_LUA)
            except (RedisError, OSError):
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _write(self, batch: list[_Submission]) -> list[int]:
        by_session: dict[str, list[str | bytes | float]] = {}
        counts_in: dict[str, int] = {}
        for sub in batch:
            by_session.setdefault(sub.session_id, []).extend(sub.args)
            counts_in[sub.session_id] = counts_in.get(sub.session_id, 0) + sub.count
        if self.cluster:
            replies = await self._write_per_slot(by_session, counts_in)
        else:
            keys, args = self._call(list(by_session), by_session, counts_in)
            keys.append(self.keys.unarchived)
            replies = [(list(by_session), await self._evalsha(keys, args))]
        flags: dict[str, str] = {}
        for sids, reply in replies:
            for sid, value in zip(sids, reply, strict=True):
                flags[sid] = value.decode() if isinstance(value, bytes) else str(value)
        offsets = dict.fromkeys(by_session, 0)
        counts: list[int] = []
        for sub in batch:
            start = offsets[sub.session_id]
            offsets[sub.session_id] = start + sub.count
            counts.append(flags[sub.session_id].count("1", start, start + sub.count))
        return counts

    def _call(
        self,
        sids: list[str],
        by_session: dict[str, list[str | bytes | float]],
        counts_in: dict[str, int],
    ) -> tuple[list[str], list[str | bytes | float | int]]:
        """KEYS and ARGV of one INGEST_LUA call for these sessions."""
        keys: list[str] = []
        args: list[str | bytes | float | int] = [self.ttl_s, self.keys.SERVICE_TTL_S]
        for sid in sids:
            k = self.keys.session(sid)
            keys += (k.journal, k.seen, k.conns, k.online, k.learners)
            args += (k.channel, sid, counts_in[sid])
            args += by_session[sid]
        return keys, args

    async def _evalsha(self, keys: list[str], args: list[str | bytes | float | int]) -> Any:
        """One EVALSHA on the writer's own connection: no pool, pipeline or retry wrapper
        around the one command of each round trip (MEASUREMENTS.md: ~88 µs of redis-py CPU per
        small pipeline). A failed or interrupted call drops the connection, so a reply is never
        read by the wrong command; the next call connects again."""
        conn = self._conn
        assert conn is not None
        command = pack_command(("EVALSHA", self._sha or "", len(keys), *keys, *args))
        try:
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()
        except (RedisError, OSError, asyncio.CancelledError) as exc:
            if not isinstance(exc, ResponseError):
                await conn.disconnect(nowait=True)
            raise

    async def _write_per_slot(
        self, by_session: dict[str, list[str | bytes | float]], counts_in: dict[str, int]
    ) -> list[tuple[list[str], Any]]:
        """On Cluster: one EVALSHA per hash slot, pipelined, and the set of unarchived sessions
        (in its own slot) apart."""
        groups: dict[int, list[str]] = {}
        for sid in by_session:
            slot = key_slot(self.keys.session(sid).journal.encode())
            groups.setdefault(slot, []).append(sid)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sids in groups.values():
                keys, args = self._call(sids, by_session, counts_in)
                pipe.evalsha(self._sha or "", len(keys), *keys, *args)
            # After the journal writes: the archiver finds these journals here.
            pipe.sadd(self.keys.unarchived, *by_session)
            pipe.expire(self.keys.unarchived, self.keys.SERVICE_TTL_S)
            replies = (await pipe.execute(raise_on_error=False))[:-2]
        out: list[tuple[list[str], Any]] = []
        for sids, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            out.append((sids, reply))
        return out


def pack_command(parts: Sequence[str | bytes | float]) -> bytes:
    """One command in RESP, as redis-py's `pack_command` makes it (str as UTF-8, numbers as
    their repr) at a third of its CPU: ~50 against ~140 µs for a write of 150 arguments."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _durable(batch: list[_Submission], results: list[int]) -> None:
    # Metrics once per write, not per frame: the oldest frame's wait is the batch's.
    metrics.ack_latency.observe(time.perf_counter() - batch[0].received)
    metrics.journal_batch.observe(sum(sub.count for sub in batch))
    for sub, added in zip(batch, results, strict=True):
        sub.done(added)
