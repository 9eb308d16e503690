"""What happens to access over time: it starts, it warns, it ends; requests time out."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification
from handlers.directory import settings_of
from handlers.present import request_view, role_ref
from handlers.records import (
    SYSTEM_ACTOR,
    add_timer,
    audit,
    cancel_timers,
    notify,
    update_cards,
)
from storage.models import (
    MemberType,
    Schedule,
    ScheduleKind,
    ScheduleRequest,
    ScheduleState,
    Status,
)

EXPIRE, WARN, TIMEOUT, START = "expire", "warn", "timeout", "start"


async def provision(session: AsyncSession, *, req: ScheduleRequest, now: datetime) -> Schedule:
    """Make an approved (or approval-free) activation take effect now."""
    assert req.duration_seconds is not None
    end = now + timedelta(seconds=req.duration_seconds)
    schedule = Schedule(
        principal_id=req.principal_id, role_id=req.role_id, kind=ScheduleKind.ACTIVE,
        member_type=MemberType.ACTIVATED, state=ScheduleState.ACTIVE, start_at=now, end_at=end,
        request_id=req.id, created_at=now,
    )
    session.add(schedule)
    req.status = Status.PROVISIONED
    req.completed_at = now
    await session.flush()
    schedule_end_timers(session, schedule=schedule, now=now,
                        warning=settings_of(req.role).expiry_warning)
    await audit(
        session, at=now, actor=SYSTEM_ACTOR, action="role.activated",
        target=f"{req.principal.email}/{req.role_id}", request=req.short_id,
        end=end.isoformat(),
    )
    view = await request_view(session, req)
    notify(
        session, now=now, recipients=[req.principal], request_id=req.id,
        note=Notification(
            kind=v.ACTIVATED, request=view, role=role_ref(req.role), end_at=end.isoformat(),
            headline=f"{req.role.display_name} is active until {v.when(end.isoformat())}.",
        ),
    )
    return schedule


def schedule_end_timers(
    session: AsyncSession, *, schedule: Schedule, now: datetime, warning: timedelta
) -> None:
    for kind, due_at in end_timers(start=schedule.start_at, end=schedule.end_at,
                                   warning=warning):
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


async def expire(session: AsyncSession, *, schedule_id: int, now: datetime) -> bool:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None or schedule.state != ScheduleState.ACTIVE:
        return False
    result = await session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.state == ScheduleState.ACTIVE)
        .values(state=ScheduleState.EXPIRED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await cancel_timers(session, subject_id=schedule_id, kinds=[WARN], now=now)
    kind_word = "eligibility" if schedule.kind == ScheduleKind.ELIGIBLE else "access"
    await audit(
        session, at=now, actor=SYSTEM_ACTOR, action=f"{schedule.kind}.expired",
        target=f"{schedule.principal.email}/{schedule.role_id}", schedule=schedule.id,
        end=schedule.end_at.isoformat() if schedule.end_at else None,
        late_ms=int((now - schedule.end_at).total_seconds() * 1000) if schedule.end_at else 0,
    )
    notify(
        session, now=now, recipients=[schedule.principal], request_id=schedule.request_id,
        note=Notification(
            kind=v.EXPIRED, role=role_ref(schedule.role),
            end_at=schedule.end_at.isoformat() if schedule.end_at else None,
            headline=f"Your {schedule.role.display_name} {kind_word} has ended.",
        ),
    )
    return True


async def warn(session: AsyncSession, *, schedule_id: int, now: datetime) -> bool:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None or schedule.state != ScheduleState.ACTIVE or schedule.end_at is None:
        return False
    if now >= schedule.end_at:
        return False  # caught up after downtime: the expiry notice says it all
    left = v.compact_duration(max(1, int((schedule.end_at - now).total_seconds())))
    notify(
        session, now=now, recipients=[schedule.principal], request_id=schedule.request_id,
        note=Notification(
            kind=v.EXPIRING, role=role_ref(schedule.role), end_at=schedule.end_at.isoformat(),
            headline=(
                f"Your {schedule.role.display_name} access ends in {left} "
                f"(at {v.when(schedule.end_at.isoformat())})."
            ),
        ),
    )
    await audit(
        session, at=now, actor=SYSTEM_ACTOR, action="access.expiry_warned",
        target=f"{schedule.principal.email}/{schedule.role_id}", schedule=schedule.id,
    )
    return True


async def time_out(session: AsyncSession, *, request_id: int, now: datetime) -> bool:
    result = await session.execute(
        update(ScheduleRequest)
        .where(ScheduleRequest.id == request_id,
               ScheduleRequest.status == Status.PENDING_APPROVAL)
        .values(status=Status.TIMED_OUT, decided_at=now, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    req = await session.get(ScheduleRequest, request_id, populate_existing=True)
    assert req is not None
    await audit(
        session, at=now, actor=SYSTEM_ACTOR, action="request.timed_out",
        target=f"{req.principal.email}/{req.role_id}", request=req.short_id,
    )
    view = await request_view(
        session, req, decision=Decision(by=None, outcome=Status.TIMED_OUT, at=now.isoformat())
    )
    note = Notification(
        kind=v.TIMED_OUT, request=view, role=role_ref(req.role),
        headline=(
            f"Your request {req.short_id} for {req.role.display_name} timed out: "
            "nobody decided in time. Ask again if you still need it."
        ),
    )
    notify(session, now=now, recipients=[req.principal], request_id=req.id, note=note)
    update_cards(session, now=now, request_id=req.id,
                 note=Notification(kind=v.REQUEST_UPDATE, request=view,
                                   headline=view.outcome_line()))
    return True


async def start_scheduled(session: AsyncSession, *, request_id: int, now: datetime) -> bool:
    req = await session.get(ScheduleRequest, request_id)
    if req is None or req.status != Status.GRANTED:
        return False
    await provision(session, req=req, now=now)
    return True


async def pending_or_active(
    session: AsyncSession, *, principal_id: int, role_id: str
) -> tuple[Schedule | None, ScheduleRequest | None]:
    active = await session.scalar(
        select(Schedule).where(
            Schedule.principal_id == principal_id, Schedule.role_id == role_id,
            Schedule.kind == ScheduleKind.ACTIVE, Schedule.state == ScheduleState.ACTIVE,
        ).limit(1)
    )
    pending = await session.scalar(
        select(ScheduleRequest).where(
            ScheduleRequest.principal_id == principal_id, ScheduleRequest.role_id == role_id,
            ScheduleRequest.action == "selfActivate",
            ScheduleRequest.status.in_([Status.PENDING_APPROVAL, Status.GRANTED]),
        ).limit(1)
    )
    return active, pending
