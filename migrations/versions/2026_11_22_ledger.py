"""ledger: outbox, excuses, course items, async activity, warnings, final scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", _tz(), server_default=_now(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _tz(), server_default=_now(), nullable=False),
        sa.Column("delivered_at", _tz(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_outbox_msg_id")),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["key", "id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_table(
        "excuses",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("window_start", _tz(), nullable=True),
        sa.Column("window_end", _tz(), nullable=True),
        sa.Column("submitted_at", _tz(), nullable=False),
        sa.Column("deadline", _tz(), nullable=False),
        sa.Column("decided_at", _tz(), nullable=True),
        sa.Column("created_at", _tz(), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_excuses_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_excuses")),
    )
    # One open (pending or accepted) excuse per learner and session; a rejected one may be
    # followed by another.
    op.create_index(
        "uq_excuses_open",
        "excuses",
        ["session_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'rejected'"),
    )
    op.create_index("ix_excuses_user", "excuses", ["user_id"])
    op.create_table(
        "items",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("required", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("core", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("due", _tz(), nullable=True),
        sa.Column("checkpoints", sa.Integer(), server_default="0", nullable=False),
        sa.Column("duration_s", sa.Float(), server_default="0", nullable=False),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("updated_at", _tz(), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_items_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", "item_id", name=op.f("pk_items")),
    )
    op.create_index("ix_items_item", "items", ["item_id"])
    op.create_table(
        "activity",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("ts", _tz(), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event_id", name=op.f("pk_activity")),
    )
    op.create_index("ix_activity_course_user", "activity", ["course_id", "user_id"])
    op.create_table(
        "warnings",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("raised_at", _tz(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_warnings_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", "user_id", "level", name=op.f("pk_warnings")),
    )
    op.create_table(
        "final_scores",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("updated_at", _tz(), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_final_scores_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", "user_id", name=op.f("pk_final_scores")),
    )
    # The finaliser's work list: ended sessions and finalised ones that need a new revision.
    op.create_index(
        "ix_sessions_to_finalise",
        "sessions",
        ["finalise_after"],
        postgresql_where=sa.text("status = 'ended' OR needs_revision"),
    )
    op.create_index("ix_records_session_revision", "records", ["session_id", "revision"])


def downgrade() -> None:
    op.drop_index("ix_records_session_revision", table_name="records")
    op.drop_index("ix_sessions_to_finalise", table_name="sessions")
    op.drop_table("final_scores")
    op.drop_table("warnings")
    op.drop_index("ix_activity_course_user", table_name="activity")
    op.drop_table("activity")
    op.drop_index("ix_items_item", table_name="items")
    op.drop_table("items")
    op.drop_index("ix_excuses_user", table_name="excuses")
    op.drop_index("uq_excuses_open", table_name="excuses")
    op.drop_table("excuses")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    # Month partitions made by the service (app/finalise/partitions.py) go with 0001's table.
