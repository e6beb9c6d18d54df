"""Policy profiles, parameters and their validation.

Every number in POLICY.md is a parameter with a default.  A course may override
any parameter (seed 000 §5: "Some courses may set different thresholds"), and
a session may override the live-session ones (§1-§4).  `resolve` merges
profile defaults, course overrides and session overrides into one frozen
`Policy`; `PolicyError.problems` lists every problem found, one message each.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

__all__ = [
    "PARAMETERS",
    "PROFILES",
    "SESSION_PARAMETERS",
    "WEEKDAYS",
    "Parameter",
    "Policy",
    "PolicyError",
    "as_dict",
    "describe",
    "normalise_overrides",
    "parse_duration",
    "render_duration",
    "resolve",
]

MINUTE: Final = 60.0
HOUR: Final = 3600.0
DAY: Final = 86400.0
# "24mo" is 24 months of 365/12 days: exactly 730 days (seed 000 §10).
MONTH: Final = 365.0 * DAY / 12.0

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TEACHING_MODELS: Final = ("2+1", "1+2", "1+1")


class Parameter(NamedTuple):
    """One catalogue entry: kind, default and a plain-language description."""

    kind: str
    default: object
    description: str


class PolicyError(ValueError):
    """A policy or an override is invalid; `problems` has one message each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


P = Parameter
# name → (kind, default, description).  Defaults are the `platform` profile.
PARAMETERS: Final[dict[str, Parameter]] = {
    # §1 evidence
    "reconnect_grace": P(
        "duration", 60.0, "a drop followed by a reconnect within this time counts as present"
    ),
    "heartbeat_timeout": P(
        "duration", 30.0, "a connection with no heartbeat for this long is closed as a drop"
    ),
    # §2 live class (seed 000 §2)
    "late_after": P("duration", 10 * MINUTE, "joining later than this after the start is late"),
    "absent_after": P("duration", 30 * MINUTE, "joining later than this after the start is absent"),
    "min_presence": P(
        "ratio", 0.80, "share of the session a learner must be present to count as present"
    ),
    "leave_cutoff": P(
        "ratio", 0.80, "leaving before this share of the session has passed counts as absent"
    ),
    "min_engagements": P(
        "count", 1, "questions, comments, poll votes or responses needed to count as present"
    ),
    "camera_min_fraction": P(
        "ratio", 0.80, "share of connected time with the camera on, where the camera is required"
    ),
    "late_credit": P("ratio", 0.5, "attendance credit of a late learner"),
    "partial_credit": P(
        "ratio", 0.5, "attendance credit of a learner on time who missed a condition of presence"
    ),
    # §3 outages (seed 000 §7)
    "outage_detect_window": P(
        "duration", 20.0, "time within which simultaneous abnormal drops make a mass drop"
    ),
    "outage_min_fraction": P(
        "ratio", 0.5, "share of the connected participants that must drop for a mass drop"
    ),
    "outage_min_participants": P(
        "count", 3, "number of participants that must drop for a mass drop"
    ),
    "service_gap": P(
        "duration", 15.0, "a stop of the service's liveness ticks longer than this is an outage"
    ),
    "fault_cancel_ratio": P(
        "ratio", 0.30, "sessions with more than this share lost to platform faults are cancelled"
    ),
    "recording_min_watched": P(
        "ratio", 0.80, "share of the recording to watch for credit after a platform fault"
    ),
    "recording_credit": P("ratio", 0.5, "attendance credit for watching the recording"),
    # §4 consultations and exams (seed 000 §8, seed 002 art. 43)
    "cancel_notice": P(
        "duration", 24 * HOUR, "notice a learner must give to cancel or move a consultation"
    ),
    "mentor_grace": P(
        "duration", 10 * MINUTE, "time after the start within which the mentor must join"
    ),
    "exam_checkin_before": P(
        "duration", 10 * MINUTE, "time before an exam by which learners should be connected"
    ),
    "end_grace": P(
        "duration",
        5 * MINUTE,
        "time after its scheduled end at which a session nobody ended is ended automatically",
    ),
    # §5 standing (seed 000 §5, §9; seed 001; seed 002 art. 20, 39)
    "min_live_rate": P("ratio", 0.75, "share of live sessions required for the certificate"),
    "min_async_rate": P(
        "ratio", 0.80, "share of asynchronous content required for the certificate"
    ),
    "min_core_assignments": P(
        "ratio", 1.0, "share of core assignments to submit on time for the certificate"
    ),
    "min_final_score": P("ratio", 0.70, "final assessment score required for the certificate"),
    "video_complete_fraction": P(
        "ratio", 0.90, "share of a video's checkpoints that completes the video"
    ),
    "first_warning": P(
        "ratio", 0.5, "first warning when the live rate falls to this share of the minimum"
    ),
    "second_warning": P(
        "ratio", 0.3, "second warning, with a support call, at this share of the minimum"
    ),
    "per_mode_rates": P(
        "bool", False, "online and in-person rates are computed and applied separately"
    ),
    "final_exam_gate": P(
        "bool", False, "learners below the minimum hours are denied the final exam"
    ),
    "min_hours_rate": P(
        "ratio", 0.25, "share of course hours attended to sit the final exam (long courses)"
    ),
    "conduct_flags": P("bool", False, "lateness, early leaving and absences flagged for staff"),
    "conduct_lateness": P(
        "duration", 10 * MINUTE, "joining or leaving early by this much is a conduct flag"
    ),
    "conduct_absence_ratio": P(
        "ratio", 0.15, "unexcused absences of this share of the lectures are a conduct flag"
    ),
    # §6 excuses (seed 000 §6)
    "excuse_window": P(
        "count", 5, "working days after the session date within which excuses are accepted"
    ),
    "weekend": P("weekdays", (4, 5), "days that are not working days"),
    "timezone": P("timezone", "UTC", "time zone in which the course's dates are taken"),
    # §7 compliance (seed 001; seed 002 art. 6, 21, 24)
    "compliance_checks": P(
        "bool", False, "class caps, staffing and weekly reports are checked and reported"
    ),
    "class_cap": P("count", 35, "learners per live class"),
    "cap_increase": P("ratio", 0.25, "allowed increase over the class cap"),
    "enforce_capacity": P("bool", False, "refuse joins beyond the hard cap"),
    "learners_per_instructor": P(
        "count", 25, "learners per instructor in courses longer than one month"
    ),
    "learners_per_assistant": P(
        "count", 50, "learners per instructor or assistant in courses of one month or less"
    ),
    "min_sync_content": P(
        "ratio", 0.25, "synchronous share of asynchronous courses longer than one month"
    ),
    "teaching_model": P(
        "choice", None, "weekly synchronous + asynchronous meetings: 2+1, 1+2 or 1+1"
    ),
    "recording_checks": P(
        "bool", False, "sessions whose recording is not published in time are flagged"
    ),
    "recording_due": P(
        "duration", 2 * DAY, "time after a session by which its recording must be available"
    ),
    # §8 retention (seed 000 §10)
    "retention": P(
        "duration", 730 * DAY, "raw events and records are deleted this long after the session"
    ),
}
del P

# §1-§4: the live-session parameters, which a session may override.
SESSION_PARAMETERS: Final = frozenset(
    {
        "reconnect_grace",
        "heartbeat_timeout",
        "late_after",
        "absent_after",
        "min_presence",
        "leave_cutoff",
        "min_engagements",
        "camera_min_fraction",
        "late_credit",
        "partial_credit",
        "outage_detect_window",
        "outage_min_fraction",
        "outage_min_participants",
        "service_gap",
        "fault_cancel_ratio",
        "recording_min_watched",
        "recording_credit",
        "cancel_notice",
        "mentor_grace",
        "exam_checkin_before",
        "end_grace",
    }
)

# Profiles differ only in which checks they switch on (POLICY.md "Profiles").
PROFILES: Final[dict[str, dict[str, object]]] = {
    "platform": {},
    "nelc": {"final_exam_gate": True, "compliance_checks": True},
    "aum": {"per_mode_rates": True, "conduct_flags": True, "recording_checks": True},
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules in force for a course or a session; durations in seconds."""

    profile: str
    reconnect_grace: float
    heartbeat_timeout: float
    late_after: float
    absent_after: float
    min_presence: float
    leave_cutoff: float
    min_engagements: int
    camera_min_fraction: float
    late_credit: float
    partial_credit: float
    outage_detect_window: float
    outage_min_fraction: float
    outage_min_participants: int
    service_gap: float
    fault_cancel_ratio: float
    recording_min_watched: float
    recording_credit: float
    cancel_notice: float
    mentor_grace: float
    exam_checkin_before: float
    end_grace: float
    min_live_rate: float
    min_async_rate: float
    min_core_assignments: float
    min_final_score: float
    video_complete_fraction: float
    first_warning: float
    second_warning: float
    per_mode_rates: bool
    final_exam_gate: bool
    min_hours_rate: float
    conduct_flags: bool
    conduct_lateness: float
    conduct_absence_ratio: float
    excuse_window: int
    weekend: tuple[int, ...]
    timezone: str
    compliance_checks: bool
    class_cap: int
    cap_increase: float
    enforce_capacity: bool
    learners_per_instructor: int
    learners_per_assistant: int
    min_sync_content: float
    teaching_model: str | None
    recording_checks: bool
    recording_due: float
    retention: float


_UNITS: Final = {"mo": MONTH, "w": 7 * DAY, "d": DAY, "h": HOUR, "m": MINUTE, "s": 1.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(mo|w|d|h|m|s)")
_WHOLE: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:mo|w|d|h|m|s))+")
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: str | int | float) -> float:
    """Parse `"10m"`, `"90s"`, `"24h"`, `"2d"`, `"1w"`, `"24mo"`, `"1h30m"` or seconds.

    Plain numbers (and numeric strings) are seconds.  Negative, non-finite and
    boolean values are refused with `ValueError`.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration")
    return seconds


def render_duration(seconds: float) -> str:
    """Render seconds in the largest unit that divides them: 600 → "10m"."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _parse_weekdays(value: object) -> tuple[int, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [p for p in re.split(r"[,\s+]+", value.strip().lower()) if p]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError(f"{value!r} is not a list of weekdays (use mon, tue, ..., sun)")
    days: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
        elif isinstance(item, str) and item.strip().lower()[:3] in WEEKDAYS:
            days.add(WEEKDAYS.index(item.strip().lower()[:3]))
        else:
            raise ValueError(f"{item!r} is not a weekday (use mon, tue, ..., sun)")
    if len(days) == 7:
        raise ValueError("a week needs at least one working day")
    return tuple(sorted(days))


def _parse_value(kind: str, value: object) -> object:
    """Normalise one value of the given kind; `ValueError` holds the message."""
    if kind == "duration":
        if not isinstance(value, str | int | float):
            raise ValueError(f"{value!r} is not a duration (use 90s, 10m, 2h, 1d)")
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration (use 90s, 10m, 2h, 1d)") from None
    if kind == "ratio":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a number between 0 and 1")
        try:
            ratio = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number between 0 and 1") from None
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{value!r} is outside 0..1")
        return ratio
    if kind == "count":
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(f"{value!r} is not a whole number ≥ 0")
    if kind == "bool":
        return _parse_bool(value)
    if kind == "weekdays":
        return _parse_weekdays(value)
    if kind == "timezone":
        if isinstance(value, str) and value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                pass
            else:
                return value
        raise ValueError(f"{value!r} is not a known time zone (use e.g. UTC, Asia/Riyadh)")
    # choice: teaching_model, the only choice parameter
    if value is None or value in TEACHING_MODELS:
        return value
    raise ValueError(f"{value!r} is not one of {', '.join(TEACHING_MODELS)} or null")


def _normalise(raw: Mapping[str, object], problems: list[str]) -> dict[str, object]:
    clean: dict[str, object] = {}
    for name, value in raw.items():
        entry = PARAMETERS.get(name)
        if entry is None:
            problems.append(f"unknown parameter {name!r}")
            continue
        try:
            clean[name] = _parse_value(entry.kind, value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return clean


def normalise_overrides(raw: Mapping[str, object]) -> dict[str, object]:
    """Validate and normalise an override mapping; raise `PolicyError` with ALL problems."""
    problems: list[str] = []
    clean = _normalise(raw, problems)
    if problems:
        raise PolicyError(problems)
    return clean


def _cross_checks(values: Mapping[str, object]) -> list[str]:
    problems = []
    late, absent = values["late_after"], values["absent_after"]
    assert isinstance(late, float)
    assert isinstance(absent, float)
    if late > absent:
        problems.append(
            f"late_after ({render_duration(late)}) must not exceed "
            f"absent_after ({render_duration(absent)})"
        )
    first, second = values["first_warning"], values["second_warning"]
    assert isinstance(first, float)
    assert isinstance(second, float)
    if second > first:
        problems.append(f"second_warning ({second:g}) must not exceed first_warning ({first:g})")
    return problems


def resolve(
    profile: str,
    course_overrides: Mapping[str, object] = {},
    session_overrides: Mapping[str, object] = {},
) -> Policy:
    """Merge a profile's defaults with course and then session overrides.

    Session overrides may only touch the live-session parameters (§1-§4).
    Raises `PolicyError` listing every problem of both mappings and of the
    merged result (for example `late_after` > `absent_after`).
    """
    if profile not in PROFILES:
        raise PolicyError([f"unknown profile {profile!r} (use {', '.join(PROFILES)})"])
    problems: list[str] = []
    values: dict[str, object] = {name: entry.default for name, entry in PARAMETERS.items()}
    values.update(PROFILES[profile])
    values.update(_normalise(course_overrides, problems))
    session = _normalise(session_overrides, problems)
    for name in session:
        if name not in SESSION_PARAMETERS:
            problems.append(f"{name}: is a course parameter and cannot be set per session")
    values.update(session)
    if problems:
        raise PolicyError(problems)
    problems = _cross_checks(values)
    if problems:
        raise PolicyError(problems)
    values["profile"] = profile
    return Policy(**values)  # type: ignore[arg-type]


def _render(kind: str, value: object) -> object:
    if kind == "duration":
        assert isinstance(value, float)
        return render_duration(value)
    if kind == "weekdays":
        assert isinstance(value, tuple)
        return [WEEKDAYS[d] for d in value]
    return value


def as_dict(policy: Policy) -> dict[str, object]:
    """Every parameter by name, durations rendered back as "10m"-style strings."""
    out: dict[str, object] = {"profile": policy.profile}
    for f in fields(policy):
        if f.name != "profile":
            out[f.name] = _render(PARAMETERS[f.name].kind, getattr(policy, f.name))
    return out


def _plain(kind: str, value: object) -> str:
    if kind == "duration":
        assert isinstance(value, float)
        return render_duration(value)
    if kind == "ratio":
        assert isinstance(value, float)
        return f"{value * 100:g}%"
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "weekdays":
        assert isinstance(value, tuple)
        return ", ".join(WEEKDAYS[d] for d in value) or "none"
    return "none" if value is None else str(value)


def describe(policy: Policy) -> list[str]:
    """A plain-language summary of the rules in force, for learners and the LMS."""
    p = policy
    lines = [
        f"Profile: {p.profile}.",
        f"On time: joining within {render_duration(p.late_after)} of the start; "
        f"late (credit {p.late_credit:g}) up to {render_duration(p.absent_after)}; "
        "absent after that.",
        f"Present: on time, present for at least {p.min_presence * 100:g}% of the session, "
        f"at least {p.min_engagements} engagement(s), and the camera on for "
        f"{p.camera_min_fraction * 100:g}% of the time where required; "
        f"otherwise partial (credit {p.partial_credit:g}).",
        f"Leaving before {p.leave_cutoff * 100:g}% of the session counts as absent.",
        f"Sessions losing more than {p.fault_cancel_ratio * 100:g}% to platform faults "
        "are cancelled and rescheduled.",
        f"Certificate: {p.min_live_rate * 100:g}% of live sessions, "
        f"{p.min_async_rate * 100:g}% of asynchronous content, "
        f"{p.min_core_assignments * 100:g}% of core assignments and a final score of "
        f"{p.min_final_score * 100:g}%.",
        f"Excuses are accepted within {p.excuse_window} working days of the session.",
    ]
    for f in fields(policy):
        if f.name != "profile":
            entry = PARAMETERS[f.name]
            value = _plain(entry.kind, getattr(policy, f.name))
            lines.append(f"{f.name} = {value}: {entry.description}.")
    return lines
