"""What extending an activation and renewing an assignment share: one pending ask at a time,
and what deciding it comes to, the access's new end audited and told to its holder or, when
the access ended meanwhile, the request failed, audited, and the requester told why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification
from handlers.errors import AlreadyPending
from handlers.grants.extension import Extending
from handlers.present import request_view, role_ref
from handlers.records import SYSTEM_ACTOR, audit_all, notify
from storage.audit import NewEvent
from storage.models import Principal, Role, ScheduleRequest
from vocab.states import Action, Status


async def check_not_pending(
    s: AsyncSession, *, me: Principal, role: Role, action: Action, verb: str
) -> None:
    """Refuse a second ask of this kind while one waits for approval."""
    pending = await s.scalar(
        select(ScheduleRequest.short_id)
        .where(
            ScheduleRequest.principal_id == me.id,
            ScheduleRequest.role_id == role.id,
            ScheduleRequest.action == action,
            ScheduleRequest.status == Status.PENDING_APPROVAL,
        )
        .limit(1)
    )
    if pending is not None:
        raise AlreadyPending(
            f"You already asked to {verb} {role.display_name}: {pending} is "
            f"waiting for approval. Cancel it with: cancel {pending}"
        )


async def fail_request(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    now: datetime,
    earlier: list[NewEvent],
    reason: str,
    headline: str,
) -> None:
    req.status = Status.FAILED
    failed = NewEvent(
        at=now,
        actor=SYSTEM_ACTOR,
        action="request.failed",
        target=f"{req.principal.email}/{req.role_id}",
        details={"request": req.short_id, "reason": reason},
    )
    await audit_all(s, [*earlier, failed])
    notify(
        s,
        now=now,
        recipients=[req.principal],
        request_id=req.id,
        note=Notification(kind=v.EXPIRED, role=role_ref(req.role), headline=headline),
    )


async def tell_new_end(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    now: datetime,
    end: datetime,
    action: str,
    details: dict[str, object],
    grants: Extending,
    earlier: list[NewEvent],
    decision: Decision | None,
    kind: str,
    headline: str,
) -> None:
    """Audit the new end (after `earlier`, with what it did to the grants) and tell the
    holder, with the request as it now stands."""
    target = f"{req.principal.email}/{req.role_id}"
    await audit_all(
        s,
        [
            *earlier,
            NewEvent(at=now, actor=SYSTEM_ACTOR, action=action, target=target, details=details),
            *grants.event(at=now, target=target, details=details),
        ],
    )
    view = await request_view(s, req, decision=decision)
    notify(
        s,
        now=now,
        recipients=[req.principal],
        request_id=req.id,
        note=Notification(
            kind=kind,
            request=view,
            role=role_ref(req.role),
            end_at=end.isoformat(),
            headline=headline,
            details=grants.lines,
        ),
    )
