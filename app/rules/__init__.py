"""Attendance rules: the pure, sans-I/O core of Hadir.

Plain data in (events, session facts, a policy, the time as a parameter),
decisions out (statuses, credits, reason codes).  Nothing here awaits, reads
a clock, touches a database or Redis, or logs.  The finaliser, the live
panel and the REST API all call the same functions:

`app.rules.policy`
    `resolve(profile, course_overrides={}, session_overrides={}) -> Policy`;
    `PARAMETERS` (name → kind, default, description), `parse_duration`,
    `normalise_overrides`, `describe`, `as_dict`, `PolicyError.problems`.
`app.rules.evidence`
    `Event`, `Window`, `Interval`;
    `participant_evidence(events, window_start, window_end, policy,
    outage_windows=(), technical_claims=()) -> Evidence` (POLICY §1).
`app.rules.outage`
    `detect_mass_drops(events, window_start, window_end, policy)`,
    `MassDropDetector` (incremental, for the live path), `service_gaps`,
    `union`, `fault_ratio` (POLICY §3).
`app.rules.outcome`
    `SessionFacts`, `Participant`, `Cancellation`;
    `evaluate_session(facts, events, policy, *, now=None) -> SessionOutcome`
    with one `Record` per participant (POLICY §2-§4); `revise`.
`app.rules.standing`
    `CourseFacts`, `LearnerInputs`; `course_standing(course, learner) ->
    Standing` and `weekly_report(outcomes, timezone)` (POLICY §5, §7).
`app.rules.excuses`
    `excuse_deadline`, `excuse_accepted_in_time`, `check_excuse`,
    `apply_excuse`, `CATEGORIES` (POLICY §6).
`app.rules.compliance`
    `session_compliance`, `hard_cap`, `admit`, `instructors_required`,
    `course_compliance`, `teaching_model_check`, `recording_overdue`
    (POLICY §7).

All times are float POSIX seconds (UTC); durations are float seconds.
"""
