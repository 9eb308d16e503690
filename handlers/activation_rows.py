"""What an activation writes: its request (when asked and granted at once), its schedule and
the timers that end it, in as few statements as the database allows.

Asking is the busiest write there is, and on PostgreSQL each statement is a round trip and
SQLAlchemy's work around it: there the rows go in one statement, INSERTs chained in a WITH.
SQLite has no INSERT inside a WITH; its statements cost no round trip, so it writes them one
by one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.records import add_timers, table_of
from storage.models import Schedule, ScheduleRequest, Timer
from storage.uow import note_queued
from vocab.states import TimerStatus

_REQUESTS, _SCHEDULES, _TIMERS = table_of(ScheduleRequest), table_of(Schedule), table_of(Timer)
_INSERT_REQUEST = insert(_REQUESTS).returning(_REQUESTS.c.id)
_INSERT_SCHEDULE = insert(_SCHEDULES).returning(_SCHEDULES.c.id)
SCHEDULE_COLUMNS = (
    "principal_id",
    "role_id",
    "kind",
    "member_type",
    "state",
    "start_at",
    "end_at",
    "created_at",
)
REQUEST_COLUMNS = (
    "short_id",
    "action",
    "status",
    "kind",
    "principal_id",
    "role_id",
    "created_by_id",
    "justification",
    "ticket_system",
    "ticket_number",
    "start_at",
    "duration_seconds",
    "created_at",
    "completed_at",
    "approval_deadline",
)


@cache
def _in_one(timers: int, with_request: bool) -> Select[Any]:
    """The statement: parameters `s_<column>` of the schedule (`request_id` among them unless
    the request is inserted too, `r_<column>`), `kind<i>` and `due_at<i>` of each timer; it
    returns the request's id (or NULL) and the schedule's."""
    asked = (
        insert(_REQUESTS)
        .values({c: bindparam(f"r_{c}", type_=_REQUESTS.c[c].type) for c in REQUEST_COLUMNS})
        .returning(_REQUESTS.c.id)
        .cte("asked")
        if with_request
        else None
    )
    made = (
        insert(_SCHEDULES)
        .values(
            {
                **{c: bindparam(f"s_{c}", type_=_SCHEDULES.c[c].type) for c in SCHEDULE_COLUMNS},
                "request_id": select(asked.c.id).scalar_subquery()
                if asked is not None
                else bindparam("s_request_id", type_=_SCHEDULES.c.request_id.type),
            }
        )
        .returning(_SCHEDULES.c.id)
        .cte("made")
    )
    rows = [
        select(
            bindparam(f"kind{i}", type_=_TIMERS.c.kind.type),
            bindparam(f"due_at{i}", type_=_TIMERS.c.due_at.type),
            made.c.id,
            literal(TimerStatus.PENDING, type_=_TIMERS.c.status.type),
            literal(0, type_=_TIMERS.c.attempts.type),
        )
        for i in range(timers)
    ]
    statement = select(
        (select(asked.c.id).scalar_subquery() if asked is not None else literal(None)).label(
            "asked"
        ),
        made.c.id.label("made"),
    )
    if timers:
        timed = (
            insert(_TIMERS)
            .from_select(
                ["kind", "due_at", "subject_id", "status", "attempts"],
                rows[0] if timers == 1 else union_all(*rows),
                include_defaults=False,
            )
            .cte("timed")
        )
        statement = statement.add_cte(timed)
    return statement


async def insert_activation(
    session: AsyncSession,
    *,
    schedule: dict[str, Any],
    timers: Sequence[tuple[str, datetime]],
    request: dict[str, Any] | None = None,
) -> tuple[int | None, int]:
    """Insert the schedule (SCHEDULE_COLUMNS, and `request_id` unless `request` is given:
    REQUEST_COLUMNS, inserted first) and its timers (kind, due); (request id, schedule id)."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {f"s_{c}": v for c, v in schedule.items()}
        if request is not None:
            params.update({f"r_{c}": v for c, v in request.items()})
        for i, (kind, due_at) in enumerate(timers):
            params[f"kind{i}"], params[f"due_at{i}"] = kind, due_at
        ids = (await conn.execute(_in_one(len(timers), request is not None), params)).one()
        if timers:
            note_queued(session)
        return ids[0], ids[1]
    request_id = None
    if request is not None:
        request_id = int((await conn.execute(_INSERT_REQUEST, request)).scalar_one())
        schedule = {**schedule, "request_id": request_id}
    schedule_id = int((await conn.execute(_INSERT_SCHEDULE, schedule)).scalar_one())
    await add_timers(session, timers, subject_id=schedule_id)
    return request_id, schedule_id


async def insert_request(session: AsyncSession, request: dict[str, Any]) -> int:
    """A request on its own (REQUEST_COLUMNS): one that waits for approval or for its start."""
    conn = await session.connection()
    return int((await conn.execute(_INSERT_REQUEST, request)).scalar_one())
