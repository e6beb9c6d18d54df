"""The durable per-session journal in Redis, written in batches.

Every event is appended to its session's stream and the participant's live state is updated in
the same Lua call, which also de-duplicates by event id. Writers from all connections of this
process share one task: each round trip to Redis carries everything that arrived since the last
one, as ONE EVALSHA for every session in it (MEASUREMENTS.md: redis-py costs ~66 µs of CPU per
command, so commands per event, or even per session, dominate the cost of ingest). On Redis
Cluster a script may only touch one hash slot, so there it is one EVALSHA per slot (every key
of a session shares the slot of its `{s:<id>}` tag), pipelined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError

from app.ingest.events import Entry
from app.kit import metrics
from app.kit.keys import Keys

log = logging.getLogger(__name__)

# One call carries one or more sessions. KEYS: 5 per session (journal, seen, conns, online,
# learners). ARGV: ttl, then per session: its pub/sub channel, its event count n, and one value
# per event: the op letter followed by the event's journal payload (JSON with `id`, `user_id`,
# `conn`, `ts`), so redis-py packs one argument per event instead of six.
# ops: j/J join (J: a learner), h heartbeat, l/L end of a connection, T/t heartbeat timeout
# (journaled only if the connection is still open), x anything else.
# Returns, per session, one '1' (new) or '0' (seen before) per event.
INGEST_LUA = """
local ttl = ARGV[1]
local a = 2
local out = {}
for s = 0, #KEYS / 5 - 1 do
  local journal, seen, conns = KEYS[s*5+1], KEYS[s*5+2], KEYS[s*5+3]
  local online, learners = KEYS[s*5+4], KEYS[s*5+5]
  local channel, n = ARGV[a], tonumber(ARGV[a+1])
  a = a + 2
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
  out[#out + 1] = table.concat(flags)
end
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
    _closing: bool = False
    cluster: bool = False

    async def start(self) -> None:
        self._sha = await self.redis.script_load(INGEST_LUA)
        info = await self.redis.info("cluster")
        self.cluster = bool(info.get("cluster_enabled"))
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
            # Metrics once per write, not per frame: the oldest frame's wait is the batch's.
            metrics.ack_latency.observe(time.perf_counter() - batch[0].received)
            metrics.journal_batch.observe(sum(sub.count for sub in batch))
            for sub, added in zip(batch, results, strict=True):
                sub.done(added)

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
        groups: dict[int, list[str]] = {}
        for sid in by_session:
            slot = key_slot(self.keys.session(sid).journal.encode()) if self.cluster else 0
            groups.setdefault(slot, []).append(sid)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sids in groups.values():
                keys: list[str] = []
                args: list[str | bytes | float | int] = [self.ttl_s]
                for sid in sids:
                    k = self.keys.session(sid)
                    keys += (k.journal, k.seen, k.conns, k.online, k.learners)
                    args += (k.channel, counts_in[sid])
                    args += by_session[sid]
                pipe.evalsha(self._sha or "", len(keys), *keys, *args)
            # After the journal writes: the archiver finds these journals here.
            pipe.sadd(self.keys.unarchived, *by_session)
            pipe.expire(self.keys.unarchived, self.keys.SERVICE_TTL_S)
            replies = (await pipe.execute(raise_on_error=False))[:-2]
        flags: dict[str, str] = {}
        for sids, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            for sid, value in zip(sids, reply, strict=True):
                flags[sid] = value.decode() if isinstance(value, bytes) else str(value)
        offsets = dict.fromkeys(by_session, 0)
        counts: list[int] = []
        for sub in batch:
            start = offsets[sub.session_id]
            offsets[sub.session_id] = start + sub.count
            counts.append(flags[sub.session_id].count("1", start, start + sub.count))
        return counts
