"""What happens to access over time: it starts, it warns, it ends; requests time out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.activation_rows import insert_activation
from handlers.directory import settings_of
from handlers.grants.state import open_grants
from handlers.present import request_view, role_ref
from handlers.records import (
    SYSTEM_ACTOR,
    add_timer,
    audit_all,
    message_rows,
    queue_messages,
)
from storage.audit import NewEvent
from storage.models import Schedule, ScheduleRequest
from vocab.states import MemberType, ScheduleKind, ScheduleState, Status

EXPIRE, WARN, TIMEOUT, START = "expire", "warn", "timeout", "start"
RENEW = "renew"  # an assignment nears its end: offer selfRenew / adminExtend
# How long before an assignment's end its holder and the admins hear of it (Entra notifies
# ahead of an eligibility's expiry; two weeks leaves time for an admin to decide).
RENEWAL_NOTICE = timedelta(days=14)


async def provision(
    session: AsyncSession,
    *,
    req: ScheduleRequest,
    now: datetime,
    earlier: Sequence[NewEvent] = (),
    decision: Decision | None = None,
    told: Sequence[dict[str, Any]] = (),
    stored: bool = False,
    unsaved: dict[str, Any] | None = None,
) -> RequestView:
    """Make an approved (or approval-free) activation take effect now. `earlier`: audit
    events of the same transaction that come first (written with this one, in one append);
    `told`: outbox rows (records.message_rows) that come before "it is active", likewise.
    `stored`: the caller already wrote the request as provisioned (in its INSERT or its
    guarded UPDATE), so it is not written again. Returns the request as it now stands, as
    the requester is shown it. `unsaved`: the request's row (activation_rows.REQUEST_COLUMNS),
    not written yet: it is written with the schedule, and `req` gets its id."""
    assert req.duration_seconds is not None
    end = now + timedelta(seconds=req.duration_seconds)
    values: dict[str, Any] = {
        "principal_id": req.principal_id,
        "role_id": req.role_id,
        "kind": ScheduleKind.ACTIVE,
        "member_type": MemberType.ACTIVATED,
        "state": ScheduleState.ACTIVE,
        "start_at": now,
        "end_at": end,
        "created_at": now,
    }
    if unsaved is None:
        values["request_id"] = req.id
    # Plain INSERTs: the ORM's unit of work would cost more than everything else here.
    timers = end_timers(start=now, end=end, warning=settings_of(req.role).expiry_warning)
    request_id, schedule_id = await insert_activation(
        session, schedule=values, timers=timers, request=unsaved
    )
    if unsaved is not None:
        set_committed_value(req, "id", request_id)
        values["request_id"] = request_id
    schedule = Schedule(id=schedule_id, **values)
    if stored:
        set_committed_value(req, "status", Status.PROVISIONED)
        set_committed_value(req, "completed_at", now)
    else:
        req.status = Status.PROVISIONED
        req.completed_at = now
    grant_lines = await open_grants(session, schedule=schedule, role=req.role, now=now)
    view = await request_view(session, req, decision=decision)
    await queue_messages(
        session,
        [
            *told,
            *message_rows(
                now=now,
                recipients=[req.principal],
                request_id=req.id,
                note=Notification(
                    kind=v.ACTIVATED,
                    request=view,
                    role=role_ref(req.role),
                    end_at=end.isoformat(),
                    headline=f"{req.role.display_name} is active until {v.when(end.isoformat())}.",
                    details=tuple(grant_lines),
                ),
            ),
        ],
        audit_next=True,
    )
    # The audit events last: on PostgreSQL their append holds the chain's lock until
    # commit (taken by the outbox INSERT just before), so every other asker waits only for
    # the two INSERTs and the COMMIT.
    await audit_all(
        session,
        [
            *earlier,
            NewEvent(
                at=now,
                actor=SYSTEM_ACTOR,
                action="role.activated",
                target=f"{req.principal.email}/{req.role_id}",
                details={"request": req.short_id, "end": end.isoformat()},
            ),
        ],
    )
    return view


def schedule_end_timers(
    session: AsyncSession, *, schedule: Schedule, now: datetime, warning: timedelta
) -> None:
    for kind, due_at in end_timers(start=schedule.start_at, end=schedule.end_at, warning=warning):
        add_timer(session, kind=kind, due_at=due_at, subject_id=schedule.id)


def end_timers(
    *, start: datetime, end: datetime | None, warning: timedelta
) -> list[tuple[str, datetime]]:
    """(kind, due) of the timers a schedule from start to end needs: none when permanent."""
    if end is None:
        return []
    # Entra sends no warning when the whole activation is shorter than the warning window.
    if warning and end - start > warning:
        return [(EXPIRE, end), (WARN, end - warning)]
    return [(EXPIRE, end)]


def renewal_timers(*, start: datetime, end: datetime | None) -> list[tuple[str, datetime]]:
    """(kind, due) of the renewal offer an admin-made assignment from start to end gets:
    none when permanent, or when it is no longer than the notice (it would come at once)."""
    if end is None or end - start <= RENEWAL_NOTICE:
        return []
    return [(RENEW, end - RENEWAL_NOTICE)]


async def start_scheduled(session: AsyncSession, *, request_id: int, now: datetime) -> bool:
    req = await session.get(ScheduleRequest, request_id)
    if req is None or req.status != Status.GRANTED:
        return False
    await provision(session, req=req, now=now)
    return True
