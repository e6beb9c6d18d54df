"""The one place that knows Redis key names.

Every key of a session shares the hash tag `{s:<session_id>}`, so all of a session's keys live
in one Redis Cluster slot and one Lua call may touch them together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionKeys:
    journal: str  # stream: the durable event journal
    seen: str  # set: `user_id|event_id` already journaled (idempotency)
    conns: str  # sorted set: `conn|user_id` → last heartbeat (open connections)
    online: str  # hash: user_id → open connection count
    learners: str  # hash: learner user_id → open connection count (capacity)
    meta: str  # hash: live facts about the session (status, started_at, ...)
    outage: str  # hash: live outage detector state
    channel: str  # pub/sub: "new journal entries" notifications

    def all(self) -> tuple[str, ...]:
        return (
            self.journal,
            self.seen,
            self.conns,
            self.online,
            self.learners,
            self.meta,
            self.outage,
        )


class Keys:
    """Key names under one prefix (several deployments or test runs can share one Redis)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def session(self, session_id: str) -> SessionKeys:
        tag = f"{self.prefix}:{{s:{session_id}}}"
        return SessionKeys(
            journal=f"{tag}:journal",
            seen=f"{tag}:seen",
            conns=f"{tag}:conns",
            online=f"{tag}:online",
            learners=f"{tag}:learners",
            meta=f"{tag}:meta",
            outage=f"{tag}:outage",
            channel=f"{tag}:events",
        )

    @property
    def live_sessions(self) -> str:
        """Sorted set: live session ids → scheduled end (sweepers, service-gap detection)."""
        return f"{self.prefix}:{{svc}}:live"

    @property
    def liveness(self) -> str:
        """String: the last liveness tick of any server process (POSIX seconds)."""
        return f"{self.prefix}:{{svc}}:tick"

    def process(self, instance: str) -> str:
        """String with a short TTL: this server process is alive."""
        return f"{self.prefix}:{{svc}}:proc:{instance}"

    @property
    def finalise_queue(self) -> str:
        """Sorted set: session id → when it is due for finalisation."""
        return f"{self.prefix}:{{svc}}:finalise"

    @property
    def unarchived(self) -> str:
        """Set: session ids whose journals may hold entries not yet archived to PostgreSQL
        (added by the journal writer after each write, removed by the archiver once drained)."""
        return f"{self.prefix}:{{svc}}:unarchived"

    def lock(self, name: str) -> str:
        return f"{self.prefix}:{{svc}}:lock:{name}"

    def rate(self, name: str) -> str:
        return f"{self.prefix}:{{svc}}:rate:{name}"
