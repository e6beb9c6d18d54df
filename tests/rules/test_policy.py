"""Policy catalogue, profiles, overrides and validation messages."""

from __future__ import annotations

import dataclasses

import pytest

from app.rules.policy import (
    PARAMETERS,
    PROFILES,
    Policy,
    PolicyError,
    as_dict,
    describe,
    normalise_overrides,
    parse_duration,
    render_duration,
    resolve,
)


def problems(profile: str = "platform", course=None, session=None) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as info:
        resolve(profile, course or {}, session or {})
    return info.value.problems


def test_catalogue_matches_policy_fields() -> None:
    names = {f.name for f in dataclasses.fields(Policy)} - {"profile"}
    assert names == set(PARAMETERS)
    for required in (
        "late_after", "absent_after", "min_presence", "leave_cutoff", "min_engagements",
        "camera_min_fraction", "late_credit", "partial_credit", "reconnect_grace",
        "outage_detect_window", "outage_min_fraction", "outage_min_participants", "service_gap",
        "fault_cancel_ratio", "recording_min_watched", "recording_credit", "cancel_notice",
        "mentor_grace", "exam_checkin_before", "min_live_rate", "min_async_rate",
        "min_core_assignments", "min_final_score", "video_complete_fraction", "excuse_window",
        "weekend", "class_cap", "cap_increase", "enforce_capacity", "end_grace",
        "recording_due", "retention", "teaching_model", "min_hours_rate",
    ):  # fmt: skip
        assert required in PARAMETERS


def test_defaults() -> None:
    p = resolve("platform")
    assert (p.late_after, p.absent_after, p.reconnect_grace) == (600, 1800, 60)
    assert (p.min_presence, p.fault_cancel_ratio, p.min_live_rate) == (0.8, 0.3, 0.75)
    assert (p.weekend, p.excuse_window, p.retention) == ((4, 5), 5, 730 * 86400)
    assert (p.mentor_grace, p.end_grace, p.recording_due) == (600, 300, 2 * 86400)
    assert (p.enforce_capacity, p.teaching_model, p.min_hours_rate) == (False, None, 0.25)


def test_profiles_switch_their_checks_on() -> None:
    assert set(PROFILES) == {"platform", "nelc", "aum"}
    nelc, aum = resolve("nelc"), resolve("aum")
    assert nelc.final_exam_gate and nelc.compliance_checks and not nelc.conduct_flags
    assert aum.conduct_flags and aum.per_mode_rates and aum.recording_checks
    assert nelc.late_after == aum.late_after == 600  # shared live-session rules


def test_course_then_session_overrides() -> None:
    p = resolve("aum", {"late_after": "15m", "teaching_model": "2+1"}, {"late_after": "5m"})
    assert (p.profile, p.late_after, p.teaching_model) == ("aum", 300, "2+1")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10m", 600), ("90s", 90), ("24h", 86400), ("2d", 172800), ("1w", 604800),
     ("24mo", 730 * 86400), ("1h30m", 5400), (" 2 h ", 7200), ("600", 600), (45, 45), (1.5, 1.5)],
)  # fmt: skip
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["10x", "", "-5m", True, -1, float("inf"), "m"])
def test_parse_duration_refuses(value: str | float) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_render_duration() -> None:
    assert [render_duration(x) for x in (600, 90, 7200, 86400, 0, 1.5, 730 * 86400)] == [
        "10m", "90s", "2h", "1d", "0s", "1.5s", "730d",
    ]  # fmt: skip


def test_every_problem_listed_with_a_clear_message() -> None:
    got = problems(
        "platform",
        {
            "lateafter": 1,
            "late_after": "10x",
            "min_presence": 1.5,
            "late_credit": "half",
            "partial_credit": [1],
            "min_engagements": -1,
            "class_cap": "ten",
            "enforce_capacity": "maybe",
            "weekend": "fri,funday",
            "timezone": "Mars/Base",
            "teaching_model": "3+1",
            "reconnect_grace": None,
        },
        {"min_live_rate": 0.5},
    )
    assert got == [
        "unknown parameter 'lateafter'",
        "late_after: '10x' is not a duration (use 90s, 10m, 2h, 1d)",
        "min_presence: 1.5 is outside 0..1",
        "late_credit: 'half' is not a number between 0 and 1",
        "partial_credit: [1] is not a number between 0 and 1",
        "min_engagements: -1 is not a whole number ≥ 0",
        "class_cap: 'ten' is not a whole number ≥ 0",
        "enforce_capacity: 'maybe' is not true or false",
        "weekend: 'funday' is not a weekday (use mon, tue, ..., sun)",
        "timezone: 'Mars/Base' is not a known time zone (use e.g. UTC, Asia/Riyadh)",
        "teaching_model: '3+1' is not one of 2+1, 1+2, 1+1 or null",
        "reconnect_grace: None is not a duration (use 90s, 10m, 2h, 1d)",
        "min_live_rate: is a course parameter and cannot be set per session",
    ]


def test_cross_field_checks() -> None:
    assert problems(course={"late_after": "40m"}) == [
        "late_after (40m) must not exceed absent_after (30m)"
    ]
    assert problems(course={"first_warning": 0.2}) == [
        "second_warning (0.3) must not exceed first_warning (0.2)"
    ]
    assert resolve("platform", {"late_after": "30m"}).late_after == 1800  # equal is fine
    assert problems("moodle") == ["unknown profile 'moodle' (use platform, nelc, aum)"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ({"weekend": "Sat Sun"}, {"weekend": (5, 6)}),
        ({"weekend": ["friday", 5]}, {"weekend": (4, 5)}),
        ({"weekend": []}, {"weekend": ()}),
        ({"enforce_capacity": "yes", "per_mode_rates": False}, {"enforce_capacity": True, "per_mode_rates": False}),
        ({"conduct_flags": "off"}, {"conduct_flags": False}),
        ({"class_cap": "40", "min_presence": "0.7"}, {"class_cap": 40, "min_presence": 0.7}),
        ({"teaching_model": None, "timezone": "Asia/Riyadh"}, {"teaching_model": None, "timezone": "Asia/Riyadh"}),
        ({"retention": "24mo"}, {"retention": 730 * 86400}),
    ],
)  # fmt: skip
def test_normalise_overrides(raw: dict[str, object], clean: dict[str, object]) -> None:
    assert normalise_overrides(raw) == clean


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"weekend": 5}, "weekend: 5 is not a list of weekdays (use mon, tue, ..., sun)"),
        ({"weekend": list(range(7))}, "weekend: a week needs at least one working day"),
        ({"weekend": [9]}, "weekend: 9 is not a weekday (use mon, tue, ..., sun)"),
        ({"timezone": ""}, "timezone: '' is not a known time zone (use e.g. UTC, Asia/Riyadh)"),
        ({"timezone": 3}, "timezone: 3 is not a known time zone (use e.g. UTC, Asia/Riyadh)"),
        ({"min_presence": True}, "min_presence: True is not a number between 0 and 1"),
        ({"class_cap": True}, "class_cap: True is not a whole number ≥ 0"),
    ],
)
def test_normalise_refuses(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as info:
        normalise_overrides(raw)
    assert info.value.problems == [message]
    assert str(info.value) == message


def test_as_dict_renders_durations_back() -> None:
    d = as_dict(resolve("nelc", {"teaching_model": "1+1"}))
    assert d["profile"] == "nelc"
    assert (d["late_after"], d["cancel_notice"], d["retention"]) == ("10m", "1d", "730d")
    assert d["weekend"] == ["fri", "sat"]
    assert d["min_presence"] == 0.8
    assert set(d) == set(PARAMETERS) | {"profile"}
    # Rendered values are valid overrides again.
    assert resolve("nelc", {k: v for k, v in d.items() if k != "profile"}) == resolve(
        "nelc", {"teaching_model": "1+1"}
    )


def test_describe_in_plain_words() -> None:
    lines = describe(resolve("platform", {"weekend": []}))
    assert lines[0] == "Profile: platform."
    assert any("within 10m of the start" in line for line in lines)
    assert "late_after = 10m: joining later than this after the start is late." in lines
    assert "min_presence = 80%: share of the session a learner must be present to count as present." in lines
    assert "enforce_capacity = no: refuse joins beyond the hard cap." in lines
    assert "weekend = none: days that are not working days." in lines
    assert "teaching_model = none: weekly synchronous + asynchronous meetings: 2+1, 1+2 or 1+1." in lines
    assert "per_mode_rates = yes: online and in-person rates are computed and applied separately." in describe(resolve("aum"))
    assert "weekend = fri, sat: days that are not working days." in describe(resolve("aum"))
