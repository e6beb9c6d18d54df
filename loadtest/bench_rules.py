"""CPU benchmark of the rules engine (run: python -m loadtest.bench_rules).

Measures `time.process_time` of `evaluate_session` for a 2-hour class with
1,000 and 2,000 learners x 60 events each, and of `course_standing` for
1,000 learners over 40 sessions; prints the median of several runs as a
Markdown table.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable

from app.rules.evidence import Event
from app.rules.outcome import Participant, SessionFacts, evaluate_session
from app.rules.policy import resolve
from app.rules.standing import CourseFacts, LearnerInputs, ScheduledSession, course_standing

START = 1_700_000_000.0
DURATION = 2 * 3600.0
EVENTS_PER_LEARNER = 60
RUNS = 7


def learner_events(uid: str, rng: random.Random) -> list[Event]:
    """60 events: a join, heartbeats (maybe one drop and re-join), engagements, a leave."""
    join = START + rng.uniform(-300, 900)
    leave = START + DURATION - rng.uniform(0, 1500)
    conn = f"c-{uid}"
    out = [Event(f"{uid}-join", uid, "join", join, conn)]
    step = (leave - join) / (EVENTS_PER_LEARNER - 4)
    drop_at = rng.randrange(10, 50) if rng.random() < 0.2 else -1
    for k in range(1, EVENTS_PER_LEARNER - 3):
        t = join + k * step
        if k == drop_at:
            out.append(Event(f"{uid}-drop", uid, "drop", t, conn, reason="abnormal"))
            out.append(Event(f"{uid}-rejoin", uid, "join", t + rng.uniform(5, 120), conn))
        else:
            cam, vis = rng.random() < 0.8, rng.random() < 0.9
            out.append(Event(f"{uid}-hb{k}", uid, "heartbeat", t, conn, camera=cam, visible=vis))
    out.append(Event(f"{uid}-e1", uid, "engagement", join + 600, conn, kind="chat"))
    if drop_at < 0:
        out.append(Event(f"{uid}-e2", uid, "engagement", join + 1200, conn, kind="poll_vote"))
    out.append(Event(f"{uid}-leave", uid, "leave", leave, conn))
    return out


def class_events(learners: int, seed: int = 1) -> tuple[SessionFacts, list[Event]]:
    """A 2-hour class of `learners` learners and one instructor, events shuffled."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(learners):
        events += learner_events(f"u{i}", rng)
    events.append(Event("t-join", "teacher", "join", START - 60))
    rng.shuffle(events)
    roster = (
        *(Participant(f"u{i}") for i in range(learners)),
        Participant("teacher", "instructor"),
    )
    facts = SessionFacts(
        session_id="bench",
        kind="class",
        mode="online",
        start=START,
        duration_s=DURATION,
        ended_at=None,
        camera_required=True,
        roster=roster,
    )
    return facts, events


def cpu_median(fn: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def main() -> None:
    policy = resolve("platform")
    rows: list[tuple[str, int, float]] = []
    for size in (1000, 2000):
        facts, events = class_events(size)
        assert len([e for e in events if e.user_id != "teacher"]) == size * EVENTS_PER_LEARNER
        outcome = evaluate_session(facts, events, policy)
        assert len(outcome.records) == size + 1

        def run(f: SessionFacts = facts, e: list[Event] = events) -> object:
            return evaluate_session(f, e, policy)

        ms = cpu_median(run) * 1000
        rows.append((f"evaluate_session, {size} learners x 60 events", len(events), ms))

    facts, events = class_events(1000)
    records = {r.user_id: r for r in evaluate_session(facts, events, policy).records}
    sessions = tuple(
        ScheduledSession(f"s{k}", START + k * 7 * 86400, DURATION, finalised=k < 30)
        for k in range(40)
    )
    course = CourseFacts(
        policy=policy,
        delivery="blended",
        starts_on=START - 86400,
        ends_on=START + 300 * 86400,
        sessions=sessions,
        now=START + 31 * 7 * 86400,
    )
    learners = [
        LearnerInputs(uid, {s.session_id: rec for s in sessions[:30]})
        for uid, rec in records.items()
        if rec.role == "learner"
    ]

    def standings() -> list[object]:
        return [course_standing(course, learner) for learner in learners]

    ms = cpu_median(standings) * 1000
    rows.append(("course_standing, 1000 learners x 40 sessions", 40 * len(learners), ms))

    print(f"Python {sys.version.split()[0]}, median CPU time of {RUNS} runs (time.process_time)")
    print()
    print("| case | inputs | median CPU ms |")
    print("|---|---:|---:|")
    for name, n, ms in rows:
        print(f"| {name} | {n:,} | {ms:.1f} |")


if __name__ == "__main__":
    main()
