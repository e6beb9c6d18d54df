"""Service configuration, read once from the environment (CONTRACT.md "Running it")."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the service reads. Unset URLs mean embedded servers under `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    data_dir: Path = Field(default=Path(".hadir"), alias="HADIR_DATA_DIR")

    token_secret: str = Field(
        default="hadir-development-token-secret-change-me", alias="HADIR_TOKEN_SECRET"
    )
    admin_key: str | None = Field(default=None, alias="HADIR_ADMIN_KEY")
    zoom_secret: str | None = Field(default=None, alias="HADIR_ZOOM_SECRET")
    livekit_api_key: str | None = Field(default=None, alias="HADIR_LIVEKIT_API_KEY")
    livekit_api_secret: str | None = Field(default=None, alias="HADIR_LIVEKIT_API_SECRET")
    webhook_secret: str | None = Field(default=None, alias="HADIR_WEBHOOK_SECRET")
    lms_webhook_url: str | None = Field(default=None, alias="HADIR_LMS_WEBHOOK_URL")
    lms_webhook_secret: str | None = Field(default=None, alias="HADIR_LMS_WEBHOOK_SECRET")

    heartbeat_timeout_s: float = Field(default=30.0, gt=0, alias="HADIR_HEARTBEAT_TIMEOUT_S")
    finalise_delay_s: float = Field(default=10.0, ge=0, alias="HADIR_FINALISE_DELAY_S")
    rate_limit_per_s: float = Field(default=20.0, gt=0, alias="HADIR_RATE_LIMIT_PER_S")
    allowed_origins: str = Field(default="*", alias="HADIR_ALLOWED_ORIGINS")

    redis_prefix: str = Field(default="hadir", alias="HADIR_REDIS_PREFIX")
    # all: ingest and the background work (archiver, finaliser, scheduler, outbox) in one
    # process, as on a laptop; ingest / worker: split them across processes or hosts.
    role: Literal["all", "ingest", "worker"] = Field(default="all", alias="HADIR_ROLE")
    journal_ttl_s: int = Field(default=14 * 86400, alias="HADIR_JOURNAL_TTL_S")
    # Entries per archiver read call. One call holds Redis (single-threaded, shared with live
    # ingest) for ~3-5 µs per entry: 500 keeps it to a few ms (BENCHMARKS.md "Archiving").
    archive_batch: int = Field(default=500, gt=0, alias="HADIR_ARCHIVE_BATCH")
    archive_claim_idle_s: float = Field(default=30.0, gt=0, alias="HADIR_ARCHIVE_CLAIM_IDLE_S")
    journal_trim_lag_s: float = Field(default=60.0, ge=0, alias="HADIR_JOURNAL_TRIM_LAG_S")
    lms_retry_base_s: float = Field(default=1.0, gt=0, alias="HADIR_LMS_RETRY_BASE_S")
    lms_retry_max_s: float = Field(default=300.0, gt=0, alias="HADIR_LMS_RETRY_MAX_S")
    max_frame_bytes: int = 64 * 1024
    liveness_tick_s: float = 1.0

    @property
    def heartbeat_interval_s(self) -> float:
        """What clients are told to use: a third of the timeout, so two heartbeats may be lost."""
        return max(1.0, round(self.heartbeat_timeout_s / 3, 1))

    @property
    def origins(self) -> frozenset[str] | None:
        """The Origin allow-list, or None when any origin is allowed."""
        items = [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]
        if not items or "*" in items:
            return None
        return frozenset(items)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
