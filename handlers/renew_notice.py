"""Telling a holder, and the admins, that an admin-made assignment ends soon: the RENEW
timer's work. The holder's notice carries Renew (selfRenew); the admins' says how to extend
it (adminExtend). One batch of timers is one transaction, like the other lifecycle timers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification, RoleRef
from handlers.directory import admins
from handlers.records import SYSTEM_ACTOR, audit_all, message_row, notify_all
from handlers.renew import holding
from storage.audit import NewEvent
from storage.models import Principal, Role, Schedule, Timer
from vocab.states import MemberType, ScheduleState


async def renewal_due(session: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
    """Offer renewal for each assignment of these timers still running and not yet over
    (caught up after downtime, an ended one gets its expiry notice instead)."""
    ids = [t.subject_id for t in timers if t.subject_id is not None]
    rows = (
        await session.execute(
            select(
                Schedule.id,
                Schedule.kind,
                Schedule.role_id,
                Schedule.end_at,
                Schedule.request_id,
                Schedule.principal_id,
                Principal.email,
                Principal.display_name,
                Role.display_name.label("role_name"),
            )
            .join(Principal, Principal.id == Schedule.principal_id)
            .join(Role, Role.id == Schedule.role_id)
            .where(
                Schedule.id.in_(ids),
                Schedule.state == ScheduleState.ACTIVE,
                Schedule.member_type == MemberType.ASSIGNED,
                Schedule.end_at > now,
            )
            .order_by(Schedule.end_at, Schedule.id)
        )
    ).all()
    if not rows:
        return
    staff = await admins(session)
    events, messages = [], []
    for row in rows:
        end = row.end_at.isoformat()
        left = v.compact_duration(max(1, int((row.end_at - now).total_seconds())))
        role = RoleRef(id=row.role_id, name=row.role_name)
        what = holding(kind=row.kind, role=row.role_name)
        messages.append(
            message_row(
                now=now,
                recipient_id=row.principal_id,
                request_id=row.request_id,
                note=Notification(
                    kind=v.RENEWABLE,
                    role=role,
                    end_at=end,
                    headline=f"Your {what} ends in {left} (at {v.when(end)}).",
                ),
            )
        )
        to_admins = Notification(
            kind=v.ASSIGNMENT_ENDING,
            role=role,
            end_at=end,
            headline=f"{row.display_name}'s {what} ends in {left} (at {v.when(end)}).",
            details=(
                f"→ extend: extend-assignment {row.email} {row.role_id} {row.kind} "
                "DURATION|until DATE",
            ),
        )
        payload = to_admins.to_dict()
        messages += [
            message_row(
                now=now,
                note=to_admins,
                payload=payload,
                recipient_id=a.id,
                request_id=row.request_id,
            )
            for a in staff
            if a.id != row.principal_id
        ]
        events.append(
            NewEvent(
                at=now,
                actor=SYSTEM_ACTOR,
                action="assignment.renewal_offered",
                target=f"{row.email}/{row.role_id}",
                details={"schedule": row.id, "kind": row.kind, "end": end},
            )
        )
    await audit_all(session, events)
    await notify_all(session, messages)
