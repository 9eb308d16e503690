"""A request that can no longer be carried out when it is decided: failed, audited, and the
requester told why (an extension or renewal whose access ended meanwhile)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification
from handlers.present import role_ref
from handlers.records import SYSTEM_ACTOR, audit_all, notify
from storage.audit import NewEvent
from storage.models import ScheduleRequest
from vocab.states import Status


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
