"""Standing warnings raised at finalisation: each once per course and learner, each with its
LMS message in order, for a whole class at once."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from app.kit.db import outbox, warnings
from tests.finalise.helpers import attendance, class_events, end, import_events, past_start
from tests.support import Server, schedule


async def test_a_class_of_absent_learners_gets_each_warning_once_with_its_message_in_order(
    server: Server, api: httpx.AsyncClient, sid: str
) -> None:
    course = f"warn-{sid}"
    await schedule(api, sid, learners=40, start=past_start(), course_id=course)
    await import_events(api, sid, class_events(past_start()))
    await end(api, sid)
    await attendance(api, sid)
    absent = [f"u{i}" for i in range(3, 41)]  # u1 present, u2 late (class_events)

    async def stored() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        async with server.resources.engine.connect() as conn:
            rows = await conn.execute(
                select(warnings.c.user_id, warnings.c.level).where(warnings.c.course_id == course)
            )
            raised = sorted((r.user_id, r.level) for r in rows)
            msgs = await conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.key.like(f"standing:{course}:%"))
                .order_by(outbox.c.id)
            )
            sent = [(m.payload["data"]["user_id"], m.payload["data"]["level"]) for m in msgs]
        return raised, sent

    raised, sent = await stored()
    assert raised == sorted((u, level) for u in absent for level in (1, 2))
    assert sorted(sent) == raised  # one message per warning
    for user in absent:  # per learner (one outbox key), level 1 before level 2
        assert [level for u, level in sent if u == user] == [1, 2]

    # A revision raises nothing again.
    excuse = await api.post(
        "/v1/excuses", json={"user_id": "u3", "session_id": sid, "category": "medical"}
    )
    decision = f"/v1/excuses/{excuse.json()['id']}/decision"
    await api.post(decision, json={"decision": "accepted"})
    await attendance(api, sid, revision=2)
    assert await stored() == (raised, sent)
