"""The durable per-session journal in Redis, written in batches.

Every event is appended to its session's stream and the participant's live state is updated in
the same Lua call, which also de-duplicates by event id. Writers from all connections of this
process share one task: each round trip to Redis carries everything that arrived since the last
one, as one EVALSHA per session in one pipeline (MEASUREMENTS.md: redis-py costs ~66 µs of CPU
per command, so commands per event, even pipelined, would cap ingest near 5k events/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from app.ingest.events import Entry
from app.kit import metrics
from app.kit.keys import Keys

log = logging.getLogger(__name__)

# KEYS: journal, seen, conns, online, learners. ARGV: ttl, channel, then 6 per event:
# dedupe key, payload, op, conns member, user id, ts.
# ops: j/J join (J: a learner), h heartbeat, l/L end of a connection, T/t heartbeat timeout
# (journaled only if the connection is still open), x anything else.
INGEST_LUA = """
local journal, seen, conns, online, learners = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local added = 0
local flags = {}
for i = 3, #ARGV, 6 do
  local dedupe, payload, op = ARGV[i], ARGV[i+1], ARGV[i+2]
  local member, user, ts = ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local new = '0'
  local go = true
  if op == 'T' or op == 't' then
    go = redis.call('ZSCORE', conns, member) ~= false
  end
  if go and redis.call('SADD', seen, dedupe) == 1 then
    redis.call('XADD', journal, '*', 'e', payload)
    added = added + 1
    new = '1'
    if op == 'j' or op == 'J' then
      if redis.call('ZADD', conns, ts, member) == 1 then
        redis.call('HINCRBY', online, user, 1)
        if op == 'J' then redis.call('HINCRBY', learners, user, 1) end
      end
    elseif op == 'h' then
      redis.call('ZADD', conns, 'XX', 'GT', ts, member)
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
  flags[#flags + 1] = new
end
for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], ARGV[1]) end
if added > 0 then redis.call('PUBLISH', ARGV[2], added) end
return table.concat(flags)
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

    async def start(self) -> None:
        self._sha = await self.redis.script_load(INGEST_LUA)
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
        args: list[str | bytes | float] = []
        for entry, op in entries:
            args.extend(
                (
                    entry.dedupe_key,
                    entry.payload(),
                    op,
                    f"{entry.conn}|{entry.user_id}",
                    entry.user_id,
                    entry.ts,
                )
            )
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
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            try:
                results = await self._write_with_retry(batch)
            except Exception as exc:  # Redis down past the retry budget: nothing was acked.
                log.error("journal write failed for %d submissions: %s", len(batch), exc)
                for sub in batch:
                    sub.done(exc)
                continue
            now = time.perf_counter()
            total = 0
            for sub, added in zip(batch, results, strict=True):
                total += sub.count
                metrics.ack_latency.observe(now - sub.received)
                sub.done(added)
            metrics.journal_batch.observe(total)

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
        # One EVALSHA per session: all of a session's keys share one hash slot.
        by_session: dict[str, list[str | bytes | float]] = {}
        for sub in batch:
            by_session.setdefault(sub.session_id, []).extend(sub.args)
        order = list(by_session)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in order:
                k = self.keys.session(sid)
                pipe.evalsha(
                    self._sha or "",
                    5,
                    k.journal,
                    k.seen,
                    k.conns,
                    k.online,
                    k.learners,
                    self.ttl_s,
                    k.channel,
                    *by_session[sid],
                )
            # After the journal writes: the archiver finds these journals here.
            pipe.sadd(self.keys.unarchived, *order)
            replies = await pipe.execute(raise_on_error=False)
            replies = replies[:-1]
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        # The reply is one '1' (new) or '0' (seen before) per event, in argument order.
        flags = {
            sid: r.decode() if isinstance(r, bytes) else str(r)
            for sid, r in zip(order, replies, strict=True)
        }
        offsets = dict.fromkeys(order, 0)
        counts: list[int] = []
        for sub in batch:
            start = offsets[sub.session_id]
            offsets[sub.session_id] = start + sub.count
            counts.append(flags[sub.session_id].count("1", start, start + sub.count))
        return counts
