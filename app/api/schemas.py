"""Request bodies of the schedule API (CONTRACT.md "Schedule")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.ingest.events import ID_RE


def _check_id(value: str) -> str:
    if not ID_RE.match(value):
        raise ValueError("must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return value


Id = Annotated[str, AfterValidator(_check_id)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be an RFC 3339 time with a zone (e.g. 2026-11-23T09:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CourseIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    policy: Literal["platform", "nelc", "aum"]
    delivery: Literal["synchronous", "asynchronous", "blended"]
    starts_on: date
    ends_on: date
    timezone: str = "UTC"
    teaching_model: Literal["2+1", "1+2", "1+1"] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class ExternalRef(Strict):
    provider: Literal["zoom", "livekit", "bbb"]
    ref: str = Field(min_length=1, max_length=200)


class RosterEntry(Strict):
    user_id: Id
    role: Literal["learner", "instructor", "assistant", "mentor", "observer"]
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    external_ids: dict[Literal["zoom", "livekit", "bbb"], str] = Field(default_factory=dict)
    proctoring_consent: bool = False


class SessionIn(Strict):
    course_id: Id
    kind: Literal["class", "consultation", "exam"] = "class"
    mode: Literal["online", "in_person"] = "online"
    scheduled_start: AwareDatetime
    duration_minutes: int = Field(gt=0, le=24 * 60)
    camera_required: bool = False
    overrides: dict[str, Any] = Field(default_factory=dict)
    external: list[ExternalRef] = Field(default_factory=list, max_length=20)
    roster: list[RosterEntry] = Field(default_factory=list, max_length=5000)

    @field_validator("roster")
    @classmethod
    def _unique(cls, value: list[RosterEntry]) -> list[RosterEntry]:
        seen: set[str] = set()
        for entry in value:
            if entry.user_id in seen:
                raise ValueError(f"user {entry.user_id!r} appears twice in the roster")
            seen.add(entry.user_id)
        return value


class CancelIn(Strict):
    by: Literal["learner", "institution"]
    user_id: Id | None = None
    at: AwareDatetime | None = None


class OutageIn(Strict):
    start: AwareDatetime
    end: AwareDatetime
    cause: str = Field(min_length=1, max_length=200)


class ImportIn(Strict):
    events: list[Any] = Field(max_length=10_000)
