"""Ending access, warning before it ends, and timing requests out: a batch at a time.

A shift change ends thousands of activations at once. Each function here takes a batch of
claimed timers and does its work in a handful of set-based statements (one UPDATE, one
SELECT, one INSERT per table) inside the caller's transaction, so a batch commits, with its
audit events and outbox rows, in one short transaction however large it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RoleRef
from handlers.grants.state import revoke_grants
from handlers.lifecycle import WARN
from handlers.present import request_view, role_ref
from handlers.records import SYSTEM_ACTOR, audit_all, message_row, notify_all
from storage.audit import NewEvent
from storage.models import Principal, Role, Schedule, ScheduleRequest, Timer
from vocab.states import ScheduleKind, ScheduleState, Status, TimerStatus


def _subjects(timers: Sequence[Timer]) -> list[int]:
    return [t.subject_id for t in timers if t.subject_id is not None]


def _schedules_with_names(ids: Sequence[int]) -> Select[*tuple[Any, ...]]:
    # Columns, not ORM objects: a batch of 500 is one joined SELECT and no identity map.
    return (
        select(
            Schedule.id,
            Schedule.kind,
            Schedule.role_id,
            Schedule.end_at,
            Schedule.request_id,
            Schedule.principal_id,
            Principal.email,
            Role.display_name,
        )
        .join(Principal, Principal.id == Schedule.principal_id)
        .join(Role, Role.id == Schedule.role_id)
        .where(Schedule.id.in_(ids))
        .order_by(Schedule.end_at, Schedule.id)
    )


async def expire_due(session: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
    """End every schedule of these timers that is still active."""
    # The guard on state makes a schedule end once, whoever else ends it meanwhile.
    ended = list(
        await session.scalars(
            update(Schedule)
            .where(Schedule.id.in_(_subjects(timers)), Schedule.state == ScheduleState.ACTIVE)
            .values(state=ScheduleState.EXPIRED, ended_at=now)
            .returning(Schedule.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not ended:
        return
    await revoke_grants(session, schedule_ids=ended, now=now)
    # Skip warnings another replica has claimed in its own (uncommitted) batch: waiting for
    # it while holding these schedules, when it holds the audit chain's lock and waits for
    # ours, is a deadlock. Its warn_due sees the end and says nothing, or warns just before.
    warnings = (
        select(Timer.id)
        .where(Timer.subject_id.in_(ended), Timer.kind == WARN, Timer.status == TimerStatus.PENDING)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        update(Timer)
        .where(Timer.id.in_(warnings.scalar_subquery()))
        .values(status=TimerStatus.CANCELED, done_at=now)
        .execution_options(synchronize_session=False)
    )
    events, messages = [], []
    for row in await session.execute(_schedules_with_names(ended)):
        end = row.end_at.isoformat() if row.end_at else None
        events.append(
            NewEvent(
                at=now,
                actor=SYSTEM_ACTOR,
                action=f"{row.kind}.expired",
                target=f"{row.email}/{row.role_id}",
                details={
                    "schedule": row.id,
                    "end": end,
                    "late_ms": int((now - row.end_at).total_seconds() * 1000) if row.end_at else 0,
                },
            )
        )
        kind_word = "eligibility" if row.kind == ScheduleKind.ELIGIBLE else "access"
        messages.append(
            message_row(
                now=now,
                recipient_id=row.principal_id,
                request_id=row.request_id,
                note=Notification(
                    kind=v.EXPIRED,
                    role=RoleRef(id=row.role_id, name=row.display_name),
                    end_at=end,
                    headline=f"Your {row.display_name} {kind_word} has ended.",
                ),
            )
        )
    await audit_all(session, events)
    await notify_all(session, messages)


async def warn_due(session: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
    """Tell people their access ends soon; skip any that ended already or is past its end
    (caught up after downtime: the expiry notice says it all)."""
    events, messages = [], []
    query = _schedules_with_names(_subjects(timers)).where(
        Schedule.state == ScheduleState.ACTIVE, Schedule.end_at > now
    )
    for row in await session.execute(query):
        left = v.compact_duration(max(1, int((row.end_at - now).total_seconds())))
        messages.append(
            message_row(
                now=now,
                recipient_id=row.principal_id,
                request_id=row.request_id,
                note=Notification(
                    kind=v.EXPIRING,
                    role=RoleRef(id=row.role_id, name=row.display_name),
                    end_at=row.end_at.isoformat(),
                    headline=(
                        f"Your {row.display_name} access ends in {left} "
                        f"(at {v.when(row.end_at.isoformat())})."
                    ),
                ),
            )
        )
        events.append(
            NewEvent(
                at=now,
                actor=SYSTEM_ACTOR,
                action="access.expiry_warned",
                target=f"{row.email}/{row.role_id}",
                details={"schedule": row.id},
            )
        )
    await audit_all(session, events)
    await notify_all(session, messages)


async def time_out_due(session: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
    """Time out every request of these timers that nobody decided."""
    timed_out = list(
        await session.scalars(
            update(ScheduleRequest)
            .where(
                ScheduleRequest.id.in_(_subjects(timers)),
                ScheduleRequest.status == Status.PENDING_APPROVAL,
            )
            .values(status=Status.TIMED_OUT, decided_at=now, completed_at=now)
            .returning(ScheduleRequest.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not timed_out:
        return
    requests = await session.scalars(
        select(ScheduleRequest)
        .where(ScheduleRequest.id.in_(timed_out))
        .order_by(ScheduleRequest.id)
        .execution_options(populate_existing=True)
    )
    events, messages = [], []
    decision = Decision(by=None, outcome=Status.TIMED_OUT, at=now.isoformat())
    for req in requests.unique():
        events.append(
            NewEvent(
                at=now,
                actor=SYSTEM_ACTOR,
                action="request.timed_out",
                target=f"{req.principal.email}/{req.role_id}",
                details={"request": req.short_id},
            )
        )
        view = await request_view(session, req, decision=decision)  # no query: decided
        told = Notification(
            kind=v.TIMED_OUT,
            request=view,
            role=role_ref(req.role),
            headline=(
                f"Your request {req.short_id} for {req.role.display_name} timed out: "
                "nobody decided in time. Ask again if you still need it."
            ),
        )
        cards = Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line())
        messages += [
            message_row(now=now, recipient_id=req.principal_id, request_id=req.id, note=told),
            message_row(now=now, recipient_id=None, request_id=req.id, note=cards),
        ]
    await audit_all(session, events)
    await notify_all(session, messages)
