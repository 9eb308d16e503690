"""Extending an activation that is about to end (Entra's selfExtend).

The request asks for more time on the running activation, under the role's rules: approval
when the role requires it, a justification when it requires one, and the role's
`max_duration` counted from the activation's original start, so asking again and again
never holds a role longer than one activation could. The request stores that start and the
new total length, and takes effect (now, or when approved) by moving the end.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.clock import Clock
from handlers.directory import approvers_for, find_role, require_principal, settings_of
from handlers.durations import format_duration
from handlers.errors import (
    DurationOutOfRange,
    Forbidden,
    JustificationRequired,
    NotActive,
)
from handlers.grants.extension import extend_grants
from handlers.lifecycle import EXPIRE, TIMEOUT, WARN, schedule_end_timers
from handlers.new_end import check_not_pending, fail_request, tell_new_end
from handlers.present import request_view, role_ref
from handlers.records import (
    add_timer,
    audit_all,
    cancel_timers,
    new_request_id,
    notify,
)
from handlers.user_text import user_text
from storage.audit import NewEvent
from storage.models import Principal, Schedule, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Action, MemberType, ScheduleKind, ScheduleState, Status


async def request_extension(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    role: str,
    duration: timedelta | None = None,
    justification: str | None = None,
    duration_text: str | None = None,
) -> RequestView:
    """Ask for `duration` more (default: the role's default duration) on a running
    activation; granted at once when the role needs no approval."""
    now = clock.now()
    why = user_text(justification, what="justification")
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        r = await find_role(s, role, usable_by=me.id)
        settings = settings_of(r)
        active = await _running(s, principal_id=me.id, role_id=r.id)
        if active is None or active.end_at is None:
            raise NotActive(
                f"{r.display_name} is not active for you; ask for it with: activate {r.id}"
            )
        room = settings.max_duration - (active.end_at - active.start_at)
        # No duration (the Extend button): the default, or whatever room is left.
        extra = duration or min(settings.effective_default, max(room, timedelta(seconds=1)))
        total = active.end_at + extra - active.start_at
        if total > settings.max_duration:
            more = (
                f"extend by at most {format_duration(room)}"
                if room > timedelta()
                else "it is already as long as one activation may be"
            )
            raise DurationOutOfRange(
                f"{r.display_name} can be active for at most "
                f"{format_duration(settings.max_duration)} from its start at "
                f"{v.when(active.start_at.isoformat())}; {more} (you asked for "
                f"{duration_text or format_duration(extra)})."
            )
        if settings.require_justification and not why:
            raise JustificationRequired(
                f"{r.display_name} needs a justification: "
                f"extend {r.id} {format_duration(extra)} <why>"
            )
        await check_not_pending(s, me=me, role=r, action=Action.SELF_EXTEND, verb="extend")
        approvers: list[Principal] = []
        if settings.require_approval:
            approvers = await approvers_for(s, settings=settings, requester_id=me.id)
            if not approvers:
                raise Forbidden(f"Nobody but you can approve {r.display_name}.")
        req = ScheduleRequest(
            short_id=await new_request_id(s),
            action=Action.SELF_EXTEND,
            status=Status.PENDING_APPROVAL if approvers else Status.GRANTED,
            kind=ScheduleKind.ACTIVE,
            principal_id=me.id,
            role_id=r.id,
            created_by_id=me.id,
            justification=why,
            start_at=active.start_at,
            duration_seconds=int(total.total_seconds()),
            created_at=now,
            approval_deadline=now + settings.approval_timeout if approvers else None,
        )
        req.principal, req.created_by, req.role = me, me, r
        s.add(req)
        await s.flush()
        created = NewEvent(
            at=now,
            actor=me.email,
            action="request.created",
            target=f"{me.email}/{r.id}",
            details={
                "request": req.short_id,
                "action": Action.SELF_EXTEND,
                "extra": int(extra.total_seconds()),
                "end": (active.end_at + extra).isoformat(),
                "justification": why,
                "approval": bool(approvers),
            },
        )
        if not approvers:
            await apply_extension(s, req=req, now=now, earlier=[created])
            return await request_view(s, req)
        await audit_all(s, [created])
        add_timer(s, kind=TIMEOUT, due_at=now + settings.approval_timeout, subject_id=req.id)
        view = await request_view(s, req)
        notify(
            s,
            now=now,
            recipients=approvers,
            channel=settings.approval_channel or None,
            request_id=req.id,
            note=Notification(
                kind=v.APPROVAL_NEEDED,
                request=view,
                role=role_ref(r),
                headline=f"{me.display_name} asks to extend {r.display_name} by "
                f"{format_duration(extra)} (until {v.when((active.end_at + extra).isoformat())}).",
            ),
        )
        return view


async def apply_extension(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    now: datetime,
    earlier: list[NewEvent] | None = None,
    decision: Decision | None = None,
) -> None:
    """Move the running activation's end to the request's start + length, with its timers;
    a request whose activation ended meanwhile fails (and says so)."""
    assert req.duration_seconds is not None
    active = await _running(s, principal_id=req.principal_id, role_id=req.role_id)
    req.completed_at = now
    if active is None or active.end_at is None:
        await fail_request(
            s,
            req=req,
            now=now,
            earlier=earlier or [],
            reason="the activation had ended",
            headline=f"{req.role.display_name} had already ended, so {req.short_id} could "
            f"not extend it. Ask again with: activate {req.role_id}",
        )
        return
    end = active.start_at + timedelta(seconds=req.duration_seconds)
    active.end_at, req.status = end, Status.PROVISIONED
    await cancel_timers(s, subject_id=active.id, kinds=[EXPIRE, WARN], now=now)
    schedule_end_timers(s, schedule=active, now=now, warning=settings_of(req.role).expiry_warning)
    grants = await extend_grants(s, schedule_id=active.id, now=now)
    await tell_new_end(
        s,
        req=req,
        now=now,
        end=end,
        action="role.extended",
        details={"request": req.short_id, "schedule": active.id, "end": end.isoformat()},
        grants=grants,
        earlier=earlier or [],
        decision=decision,
        kind=v.ACTIVATED,
        headline=f"{req.role.display_name} is extended until {v.when(end.isoformat())}.",
    )


async def _running(s: AsyncSession, *, principal_id: int, role_id: str) -> Schedule | None:
    return await s.scalar(
        select(Schedule)
        .where(
            Schedule.principal_id == principal_id,
            Schedule.role_id == role_id,
            Schedule.kind == ScheduleKind.ACTIVE,
            Schedule.state == ScheduleState.ACTIVE,
            Schedule.member_type == MemberType.ACTIVATED,
        )
        .limit(1)
    )


async def last_justification(uow: UnitOfWork, *, actor: str, role: str) -> str | None:
    """What this person last wrote to get this role, to prefill "Request again"."""
    async with uow.read() as s:
        return await s.scalar(
            select(ScheduleRequest.justification)
            .join(Principal, Principal.id == ScheduleRequest.principal_id)
            .where(
                Principal.email == actor.strip().lower(),
                ScheduleRequest.role_id == role,
                ScheduleRequest.action == Action.SELF_ACTIVATE,
                ScheduleRequest.justification.is_not(None),
            )
            .order_by(ScheduleRequest.id.desc())
            .limit(1)
        )
