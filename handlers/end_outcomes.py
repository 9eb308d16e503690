"""What an extension or renewal comes to once decided: the access's new end audited and told
to its holder, or, when the access ended meanwhile, the request failed, audited, and the
requester told why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification
from handlers.grants.extension import Extending
from handlers.present import request_view, role_ref
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
