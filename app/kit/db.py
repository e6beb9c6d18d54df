"""Database engine and tables (SQLAlchemy Core: the hot paths never touch an ORM)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")


def _tz() -> DateTime:
    return DateTime(timezone=True)


courses = Table(
    "courses",
    metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("delivery", Text, nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("overrides", Json, nullable=False, server_default="{}"),
    Column("teaching_model", Text),
    Column("final_scores", Json, nullable=False, server_default="{}"),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Column("updated_at", _tz(), nullable=False, server_default=func.now()),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("course_id", Text, ForeignKey("courses.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("scheduled_start", _tz(), nullable=False),
    Column("duration_minutes", Integer, nullable=False),
    Column("camera_required", Boolean, nullable=False, server_default="false"),
    Column("overrides", Json, nullable=False, server_default="{}"),
    Column("external", Json, nullable=False, server_default="[]"),
    # scheduled | live | ended | finalised | cancelled_platform_fault | mentor_absent | cancelled
    Column("status", Text, nullable=False, server_default="scheduled"),
    Column("started_at", _tz()),
    Column("ended_at", _tz()),
    Column("end_reason", Text),
    Column("finalise_after", _tz()),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("needs_revision", Boolean, nullable=False, server_default="false"),
    Column("cancellation", Json),
    Column("recording_available_at", _tz()),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Column("updated_at", _tz(), nullable=False, server_default=func.now()),
    Index("ix_sessions_course_start", "course_id", "scheduled_start"),
    Index(
        "ix_sessions_to_finalise",
        "finalise_after",
        postgresql_where=text("status = 'ended' OR needs_revision"),
    ),
)

session_refs = Table(
    "session_refs",
    metadata,
    Column("provider", Text, nullable=False),
    Column("ref", Text, nullable=False),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("provider", "ref", "session_id"),
)

roster = Table(
    "roster",
    metadata,
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("name", Text),
    Column("email", Text),
    Column("external_ids", Json, nullable=False, server_default="{}"),
    Column("proctoring_consent", Boolean, nullable=False, server_default="false"),
    PrimaryKeyConstraint("session_id", "user_id"),
    Index("ix_roster_user", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Column("revoked_at", _tz()),
)

# Partitioned by month on `ts` (see the migration); retention drops whole partitions.
events = Table(
    "events",
    metadata,
    Column("session_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("ts", _tz(), nullable=False),
    Column("conn", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False),
    Column("payload", Json, nullable=False),
    Column("journal_id", Text),
    Column("archived_at", _tz(), nullable=False, server_default=func.now()),
    UniqueConstraint("session_id", "user_id", "event_id", "ts", name="uq_events_identity"),
)

outages = Table(
    "outages",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("start", _tz(), nullable=False),
    Column("end", _tz(), nullable=False),
    Column("cause", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Index("ix_outages_session", "session_id"),
)

session_results = Table(
    "session_results",
    metadata,
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("fault_ratio", Float, nullable=False),
    Column("outage_windows", Json, nullable=False),
    Column("reschedule_required", Boolean, nullable=False),
    Column("remedies", Json, nullable=False, server_default="[]"),
    Column("compliance", Json, nullable=False, server_default="{}"),
    Column("reason", Text),
    Column("finalised_at", _tz(), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("session_id", "revision"),
)

records = Table(
    "records",
    metadata,
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("role", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("credit", Float, nullable=False),
    Column("reasons", Json, nullable=False),
    Column("flags", Json, nullable=False),
    Column("first_join", _tz()),
    Column("last_seen", _tz()),
    Column("connected_s", Float, nullable=False),
    Column("present_s", Float, nullable=False),
    Column("camera_s", Float),
    Column("active_s", Float, nullable=False),
    Column("engagements", Integer, nullable=False),
    Column("intervals", Json, nullable=False),
    Column("changed", Boolean, nullable=False, server_default="true"),
    PrimaryKeyConstraint("session_id", "user_id", "revision"),
    Index("ix_records_user", "user_id"),
    Index("ix_records_session_revision", "session_id", "revision"),
)

# Transactional outbox of messages to the LMS, delivered in `id` order per `key`.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("msg_id", Text, nullable=False, unique=True),
    Column("key", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", Json, nullable=False),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", _tz(), nullable=False, server_default=func.now()),
    Column("delivered_at", _tz()),
    Column("last_error", Text),
    Index("ix_outbox_pending", "key", "id", postgresql_where=text("delivered_at IS NULL")),
)

excuses = Table(
    "excuses",
    metadata,
    Column("id", Text, primary_key=True),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),  # pending|accepted|rejected
    Column("note", Text),
    Column("window_start", _tz()),  # a technical claim's window to credit
    Column("window_end", _tz()),
    Column("submitted_at", _tz(), nullable=False),
    Column("deadline", _tz(), nullable=False),
    Column("decided_at", _tz()),
    Column("created_at", _tz(), nullable=False, server_default=func.now()),
    Index(
        "uq_excuses_open",
        "session_id",
        "user_id",
        unique=True,
        postgresql_where=text("status <> 'rejected'"),
    ),
    Index("ix_excuses_user", "user_id"),
)

# Course items: video (checkpoints), reading, quiz, assignment (due, core), discussion,
# recording (of `session_id`).
items = Table(
    "items",
    metadata,
    Column("course_id", Text, ForeignKey("courses.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("title", Text),
    Column("required", Boolean, nullable=False, server_default="true"),
    Column("core", Boolean, nullable=False, server_default="false"),
    Column("due", _tz()),
    Column("checkpoints", Integer, nullable=False, server_default="0"),
    Column("duration_s", Float, nullable=False, server_default="0"),
    Column("session_id", Text),
    Column("updated_at", _tz(), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("course_id", "item_id"),
    Index("ix_items_item", "item_id"),
)

activity = Table(
    "activity",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("course_id", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("ts", _tz(), nullable=False),
    Column("payload", Json, nullable=False),
    PrimaryKeyConstraint("user_id", "event_id"),
    Index("ix_activity_course_user", "course_id", "user_id"),
)

# Low-attendance warnings, raised once per course and learner per level (seed 000 §9).
warnings = Table(
    "warnings",
    metadata,
    Column("course_id", Text, ForeignKey("courses.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("raised_at", _tz(), nullable=False),
    PrimaryKeyConstraint("course_id", "user_id", "level"),
)

final_scores = Table(
    "final_scores",
    metadata,
    Column("course_id", Text, ForeignKey("courses.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("updated_at", _tz(), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("course_id", "user_id"),
)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine; `postgresql://` URLs are given the asyncpg driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    return create_async_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)
