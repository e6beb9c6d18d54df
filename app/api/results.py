"""Results for the LMS (CONTRACT "Results", scope `results:read`) and the learner's own
records (`/v1/me/records`, a participant token without `sid`).

Every result is served with an ETag; a matching `If-None-Match` is answered 304.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import FileResponse, Response

from app.api.deps import DbDep, ParticipantDep, require
from app.finalise import ledger
from app.kit import clock
from app.kit.auth import ApiPrincipal
from app.kit.db import courses, roster, session_results, sessions
from app.kit.problems import Problem, not_found
from app.live.lifecycle import FINAL_STATUSES
from app.rules import excuses as rules_excuses
from app.rules import standing as rules_standing
from app.rules.evidence import Window
from app.rules.outcome import SessionOutcome

router = APIRouter(prefix="/v1", tags=["results"])
pages = APIRouter(tags=["pages"])

Reader = Annotated[ApiPrincipal, Depends(require("results:read"))]
PathId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
Format = Annotated[Literal["json", "csv"], Query(description="`json` (default) or `csv`")]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
EXCUSE_HOW = (
    "Ask your institution to record an excuse for a session within the excuse window after the "
    "session's date (working days; weekends do not count). Accepted medical, bereavement, "
    "official and travel excuses take the session out of your attendance percentage and give "
    "you alternative content; an accepted technical claim credits the time you lost."
)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def cached(request: Request, body: bytes, media_type: str, **headers: str) -> Response:
    """A response with an ETag; 304 when the client already has it."""
    tag = _etag(body)
    match = request.headers.get("if-none-match")
    if match and tag in {m.strip() for m in match.split(",")} | ({"*"} & {match.strip()}):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, media_type=media_type, headers={"ETag": tag, **headers})


def json_response(request: Request, body: Any) -> Response:
    return cached(request, orjson.dumps(body), "application/json")


def csv_response(request: Request, header: list[str], rows: list[list[Any]], name: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return cached(
        request,
        buf.getvalue().encode(),
        "text/csv; charset=utf-8",
        **{"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _duration_s(s: Any) -> float:
    start = clock.from_dt(s.scheduled_start)
    scheduled = float(s.duration_minutes) * 60.0
    if s.ended_at is not None and start <= clock.from_dt(s.ended_at) < start + scheduled:
        return clock.from_dt(s.ended_at) - start
    return scheduled


async def _session(db: AsyncConnection, session_id: str) -> Any:
    row = (await db.execute(select(sessions).where(sessions.c.id == session_id))).first()
    if row is None:
        raise not_found("session", session_id)
    return row


def _require_finalised(row: Any) -> None:
    if row.status not in FINAL_STATUSES or row.revision == 0:
        raise Problem(
            409,
            "not_finalised",
            f"session '{row.id}' is {row.status}; results exist once it is finalised",
            extra={"session_status": row.status},
        )


async def attendance_body(db: AsyncConnection, row: Any) -> dict[str, Any]:
    result = (
        await db.execute(
            select(session_results).where(
                session_results.c.session_id == row.id,
                session_results.c.revision == row.revision,
            )
        )
    ).one()
    recs = await ledger.current_records(db, [row.id])
    return {
        "session": {
            "id": row.id,
            "course_id": row.course_id,
            "kind": row.kind,
            "mode": row.mode,
            "scheduled_start": clock.iso(clock.from_dt(row.scheduled_start)),
            "duration_s": _duration_s(row),
            "status": result.status,
            "fault_ratio": result.fault_ratio,
            "outage_windows": [
                {"start": clock.iso(w["start"]), "end": clock.iso(w["end"]), "cause": w["cause"]}
                for w in result.outage_windows
            ],
            "reschedule_required": result.reschedule_required,
            "remedies": list(result.remedies),
            "compliance": result.compliance,
            "revision": result.revision,
            "finalised_at": clock.iso(clock.from_dt(result.finalised_at)),
        },
        "records": [ledger.record_out(r) for r in recs],
    }


RECORD_CSV = [
    "session_id",
    "user_id",
    "role",
    "status",
    "credit",
    "reasons",
    "flags",
    "first_join",
    "last_seen",
    "connected_s",
    "present_s",
    "camera_s",
    "active_s",
    "engagements",
    "revision",
]


@router.get(
    "/sessions/{session_id}/attendance",
    summary="A finalised session's result and records (409 before finalisation)",
    responses={304: {"description": "Not modified (If-None-Match)"}},
)
async def attendance(
    session_id: PathId, request: Request, db: DbDep, _: Reader, format: Format = "json"
) -> Response:
    row = await _session(db, session_id)
    _require_finalised(row)
    body = await attendance_body(db, row)
    if format == "csv":
        rows = [
            [
                session_id,
                r["user_id"],
                r["role"],
                r["status"],
                r["credit"],
                ";".join(r["reasons"]),
                ";".join(r["flags"]),
                r["first_join"] or "",
                r["last_seen"] or "",
                r["connected_s"],
                r["present_s"],
                "" if r["camera_s"] is None else r["camera_s"],
                r["active_s"],
                r["engagements"],
                r["revision"],
            ]
            for r in body["records"]
        ]
        return csv_response(request, RECORD_CSV, rows, f"attendance-{session_id}.csv")
    return json_response(request, body)


def _cursor_encode(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(422, "invalid_cursor", "the cursor is not one this API returned") from exc


def minimums(policy: Any) -> dict[str, float]:
    return {
        "min_live_rate": policy.min_live_rate,
        "min_async_rate": policy.min_async_rate,
        "min_core_assignments": policy.min_core_assignments,
        "min_final_score": policy.min_final_score,
    }


@router.get(
    "/courses/{course_id}/standing",
    summary="Every learner's course standing (cursor pagination: `?cursor=&limit=`)",
)
async def standings(
    course_id: PathId,
    request: Request,
    db: DbDep,
    _: Reader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    learners = await ledger.course_learners(db, course_id)
    exists = await db.scalar(select(courses.c.id).where(courses.c.id == course_id))
    if exists is None:
        raise not_found("course", course_id)
    after = _cursor_decode(cursor) if cursor else None
    page = [u for u in learners if after is None or u > after][: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    book = await ledger.load_course(db, course_id, user_ids=page)
    assert book is not None
    body = {
        "course_id": course_id,
        "minimums": minimums(book.policy),
        "items": [ledger.standing_out(book.standing(u), persisted_only=True) for u in page],
        "next_cursor": _cursor_encode(page[-1]) if more and page else None,
    }
    return json_response(request, body)


@router.get("/courses/{course_id}/standing/{user_id}", summary="One learner's course standing")
async def standing(
    course_id: PathId, user_id: PathId, request: Request, db: DbDep, _: Reader
) -> Response:
    book = await ledger.load_course(db, course_id, user_ids=[user_id])
    if book is None:
        raise not_found("course", course_id)
    if user_id not in book.learners:
        raise Problem(404, "not_found", f"user '{user_id}' is not a learner of '{course_id}'")
    body = {
        "course_id": course_id,
        **ledger.standing_out(book.standing(user_id), persisted_only=True),
        "minimums": minimums(book.policy),
    }
    return json_response(request, body)


def parse_week(week: str) -> tuple[int, int]:
    m = WEEK_RE.match(week)
    if m is None:
        raise Problem(422, "invalid_week", "week must be an ISO week like 2026-W47")
    year, number = int(m.group(1)), int(m.group(2))
    try:
        dt.date.fromisocalendar(year, number, 1)
    except ValueError as exc:
        raise Problem(422, "invalid_week", f"{week} is not a week of {year}") from exc
    return year, number


@router.get(
    "/courses/{course_id}/reports/weekly",
    summary="Weekly attendance report of a course (ISO week, course time zone)",
)
async def weekly(
    course_id: PathId,
    request: Request,
    db: DbDep,
    _: Reader,
    week: Annotated[str, Query(description="ISO week, e.g. 2026-W47")],
    format: Format = "json",
) -> Response:
    year, number = parse_week(week)
    course = (await db.execute(select(courses).where(courses.c.id == course_id))).first()
    if course is None:
        raise not_found("course", course_id)
    tz_name = ledger.course_timezone(course)
    tz = zoneinfo.ZoneInfo(tz_name)
    monday = dt.date.fromisocalendar(year, number, 1)
    lo = dt.datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    hi = lo + dt.timedelta(days=7)
    rows = (
        await db.execute(
            select(sessions, session_results.c.status.label("result_status"))
            .join(
                session_results,
                (session_results.c.session_id == sessions.c.id)
                & (session_results.c.revision == sessions.c.revision),
            )
            .where(
                sessions.c.course_id == course_id,
                sessions.c.scheduled_start >= lo,
                sessions.c.scheduled_start < hi,
            )
            .order_by(sessions.c.scheduled_start, sessions.c.id)
        )
    ).all()
    recs = await ledger.current_records(db, [s.id for s in rows])
    by_session: dict[str, list[Any]] = {}
    for r in recs:
        by_session.setdefault(r.session_id, []).append(ledger.record_from_row(r))
    outcomes = []
    for s in rows:
        start = clock.from_dt(s.scheduled_start)
        outcomes.append(
            SessionOutcome(
                session_id=s.id,
                kind=s.kind,
                mode=s.mode,
                status=s.result_status,
                provisional=False,
                start=start,
                end=start + _duration_s(s),
                fault_ratio=0.0,
                outage_windows=tuple[Window, ...](),
                reschedule_required=False,
                remedies=(),
                compliance={},
                records=tuple(by_session.get(s.id, [])),
            )
        )
    reports = [
        r
        for r in rules_standing.weekly_report(outcomes, tz_name)
        if (r.iso_year, r.iso_week) == (year, number)
    ]
    summary = reports[0] if reports else None
    per_session = [rules_standing.weekly_report([o], tz_name)[0] for o in outcomes]
    session_rows: list[dict[str, Any]] = [
        {
            "session_id": o.session_id,
            "scheduled_start": clock.iso(o.start),
            "kind": o.kind,
            "mode": o.mode,
            "status": o.status,
            "learners": rep.records,
            "by_status": dict(rep.by_status),
            "attendance_rate": rep.attendance_rate,
            "present_hours": rep.present_hours,
        }
        for o, rep in zip(outcomes, per_session, strict=True)
    ]
    if format == "csv":
        header = [
            "week",
            "session_id",
            "scheduled_start",
            "kind",
            "mode",
            "status",
            "learners",
            "present",
            "late",
            "partial",
            "absent",
            "excused",
            "attendance_rate",
            "present_hours",
        ]
        lines = [
            [
                week,
                r["session_id"],
                r["scheduled_start"],
                r["kind"],
                r["mode"],
                r["status"],
                r["learners"],
                *(r["by_status"].get(k, 0) for k in ("present", "late", "partial", "absent")),
                r["by_status"].get("excused", 0),
                "" if r["attendance_rate"] is None else round(r["attendance_rate"], 4),
                round(r["present_hours"], 3),
            ]
            for r in session_rows
        ]
        return csv_response(request, header, lines, f"weekly-{course_id}-{week}.csv")
    body = {
        "course_id": course_id,
        "week": week,
        "timezone": tz_name,
        "sessions": len(outcomes),
        "cancelled_sessions": summary.cancelled_sessions if summary else 0,
        "records": summary.records if summary else 0,
        "by_status": dict(summary.by_status) if summary else {},
        "attendance_rate": summary.attendance_rate if summary else None,
        "present_hours": summary.present_hours if summary else 0.0,
        "session_reports": session_rows,
    }
    return json_response(request, body)


_ME_RECORDS = text(
    """
    SELECT DISTINCT ON (r.session_id) r.*, s.course_id, s.kind, s.mode, s.scheduled_start,
           s.duration_minutes, s.ended_at, s.status AS session_status, c.title AS course_title
    FROM records r JOIN sessions s ON s.id = r.session_id JOIN courses c ON c.id = s.course_id
    WHERE r.user_id = :uid AND s.revision > 0 AND s.status = ANY(:final)
    ORDER BY r.session_id, r.revision DESC
    """
)


@router.get(
    "/me/records",
    summary="The learner's own records and standings (participant token without `sid`)",
    tags=["me"],
)
async def my_records(request: Request, db: DbDep, who: ParticipantDep) -> Response:
    if who.session_id is not None:
        raise Problem(403, "forbidden", "use a dashboard token (one without `sid`)")
    uid = who.user_id
    rows = list(
        (await db.execute(_ME_RECORDS, {"uid": uid, "final": sorted(FINAL_STATUSES)})).all()
    )
    rows.sort(key=lambda r: (r.scheduled_start, r.session_id))
    records = []
    for r in rows:
        out = ledger.record_out(r)
        out.pop("user_id")
        out.pop("role")
        records.append(
            {
                "session": {
                    "id": r.session_id,
                    "course_id": r.course_id,
                    "course_title": r.course_title,
                    "kind": r.kind,
                    "mode": r.mode,
                    "scheduled_start": clock.iso(clock.from_dt(r.scheduled_start)),
                    "duration_s": _duration_s(r),
                    "status": r.session_status,
                },
                **out,
            }
        )
    course_ids = (
        await db.execute(
            select(sessions.c.course_id)
            .join(roster, roster.c.session_id == sessions.c.id)
            .where(roster.c.user_id == uid, roster.c.role == "learner")
            .distinct()
            .order_by(sessions.c.course_id)
        )
    ).scalars()
    standings_out = []
    window = 5
    for cid in list(course_ids):
        book = await ledger.load_course(db, cid, user_ids=[uid])
        if book is None:
            continue
        window = book.policy.excuse_window
        standings_out.append(
            {
                "course_id": cid,
                "course_title": book.course.title,
                **ledger.standing_out(book.standing(uid), persisted_only=True),
                "minimums": minimums(book.policy),
            }
        )
    name = who.name
    if name is None:
        name = await db.scalar(
            select(roster.c.name)
            .where(roster.c.user_id == uid, roster.c.name.is_not(None))
            .limit(1)
        )
    body: dict[str, Any] = {"user_id": uid}
    if name:
        body["name"] = name
    body["records"] = records
    body["standings"] = standings_out
    body["excuses"] = {
        "window_working_days": window,
        "categories": list(rules_excuses.CATEGORIES),
        "how": EXCUSE_HOW,
    }
    return json_response(request, body)


def _page(name: str) -> Response:
    path = STATIC_DIR / name
    if not path.is_file():
        raise Problem(404, "not_found", f"the page {name} is not installed")
    return FileResponse(path, media_type="text/html")


@pages.get("/me", summary="The learner's dashboard page (`?token=`)", include_in_schema=True)
async def me_page() -> Response:
    return _page("me.html")


@pages.get("/panel/{session_id}", summary="The instructor's live panel page (`?token=`)")
async def panel_page(session_id: PathId) -> Response:
    return _page("panel.html")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
