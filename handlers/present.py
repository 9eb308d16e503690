"""Turning rows into view data for cards."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import Decision, Person, RequestView, RoleRef
from handlers.directory import settings_of
from storage.models import ApprovalStep, Principal, Role, ScheduleRequest


def person(p: Principal) -> Person:
    return Person(email=p.email, name=p.display_name)


def role_ref(r: Role) -> RoleRef:
    return RoleRef(id=r.id, name=r.display_name)


def ticket_text(req: ScheduleRequest) -> str | None:
    if not req.ticket_number:
        return None
    return f"{req.ticket_system}:{req.ticket_number}" if req.ticket_system else req.ticket_number


async def request_view(
    session: AsyncSession, req: ScheduleRequest, *, decision: Decision | None = None
) -> RequestView:
    if decision is None and req.decided_at is not None:
        step = await session.scalar(
            select(ApprovalStep)
            .where(ApprovalStep.request_id == req.id)
            .order_by(ApprovalStep.id.desc())
            .limit(1)
        )
        by = person(step.reviewer) if step else None
        decision = Decision(
            by=by,
            outcome=req.status,
            at=req.decided_at.isoformat(),
            reason=step.justification if step else None,
        )
    return RequestView(
        id=req.short_id,
        status=req.status,
        action=req.action,
        requester=person(req.principal),
        role=role_ref(req.role),
        duration_seconds=req.duration_seconds,
        start_at=req.start_at.isoformat(),
        created_at=req.created_at.isoformat(),
        justification=req.justification,
        ticket=ticket_text(req),
        deadline=req.approval_deadline.isoformat() if req.approval_deadline else None,
        needs_approver_justification=settings_of(req.role).approver_justification,
        decision=decision,
    )
