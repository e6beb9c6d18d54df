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
    channel: str  # pub/sub: "new journal entries" notifications
    platform_ends: str  # hash: `conn|user_id` → latest platform leave/drop time (webhooks)


class Keys:
    """Key names under one prefix (several deployments or test runs can share one Redis).

    Every key has a TTL: a session's keys `HADIR_JOURNAL_TTL_S` after their last write, the
    service-wide ones `SERVICE_TTL_S` after theirs.
    """

    SERVICE_TTL_S = 30 * 86400

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
            channel=f"{tag}:events",
            platform_ends=f"{tag}:platform_ends",
        )

    @property
    def live_sessions(self) -> str:
        """Sorted set: live session ids → scheduled end (sweepers, service-gap detection)."""
        return f"{self.prefix}:{{svc}}:live"

    @property
    def liveness(self) -> str:
        """String: the last liveness tick of any server process (POSIX seconds)."""
        return f"{self.prefix}:{{svc}}:tick"

    @property
    def finalise_queue(self) -> str:
        """Sorted set: session id → when it is due for finalisation."""
        return f"{self.prefix}:{{svc}}:finalise"

    @property
    def unarchived(self) -> str:
        """Set: session ids whose journals may hold entries not yet archived to PostgreSQL
        (added by the journal writer after each write, removed by the archiver once drained)."""
        return f"{self.prefix}:{{svc}}:unarchived"

    @property
    def control(self) -> str:
        """Pub/sub: cross-process control messages (session ended, finalised, outage)."""
        return f"{self.prefix}:{{svc}}:control"
