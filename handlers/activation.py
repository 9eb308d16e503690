"""Asking for a role, cancelling the ask, and giving the role back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.clock import Clock
from handlers.commands import Ticket
from handlers.directory import approvers_for, find_role, require_principal, settings_of
from handlers.durations import format_duration
from handlers.errors import (
    AlreadyActive,
    AlreadyDecided,
    AlreadyPending,
    DurationOutOfRange,
    Forbidden,
    InvalidInput,
    JustificationRequired,
    NotActive,
    NotEligible,
    TicketRequired,
    TooSoonToDeactivate,
    UnknownRequest,
)
from handlers.lifecycle import (
    EXPIRE,
    START,
    TIMEOUT,
    WARN,
    pending_or_active,
    provision,
)
from handlers.present import person, request_view, role_ref
from handlers.records import add_timer, audit, cancel_timers, new_request_id, notify, update_cards
from handlers.user_text import user_text
from storage.models import (
    Action,
    MemberType,
    Schedule,
    ScheduleKind,
    ScheduleRequest,
    ScheduleState,
    Status,
)
from storage.uow import UnitOfWork

MAX_JUSTIFICATION = 500


@dataclass(frozen=True, slots=True)
class ActivationAsk:
    role: str
    duration: timedelta | None = None
    justification: str | None = None
    ticket: Ticket | None = None
    start_at: datetime | None = None


async def request_activation(
    uow: UnitOfWork, clock: Clock, *, actor: str, ask: ActivationAsk
) -> RequestView:
    now = clock.now()
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        role = await find_role(s, ask.role)
        settings = settings_of(role)
        duration = ask.duration if ask.duration is not None else settings.effective_default
        if not settings.min_duration <= duration <= settings.max_duration:
            raise DurationOutOfRange(
                f"{role.display_name} can be activated for {format_duration(settings.min_duration)}"
                f" to {format_duration(settings.max_duration)}; you asked for "
                f"{format_duration(duration)}."
            )
        start = ask.start_at or now
        if start < now - timedelta(minutes=1):
            raise InvalidInput("The start time is in the past.")
        justification = user_text(ask.justification, what="justification")
        if justification and len(justification) > MAX_JUSTIFICATION:
            raise InvalidInput(f"The justification is too long (at most {MAX_JUSTIFICATION}).")
        if settings.require_justification and not justification:
            raise JustificationRequired(
                f"{role.display_name} needs a justification: "
                f"activate {role.id} {format_duration(duration)} <why you need it>"
            )
        if settings.require_ticket and ask.ticket is None:
            raise TicketRequired(
                f"{role.display_name} needs a ticket: activate {role.id} ticket:INC-123 <why>"
            )
        await _check_eligible(s, principal_id=me.id, role_name=role.display_name,
                              role_id=role.id, start=start, end=start + duration)
        active, pending = await pending_or_active(s, principal_id=me.id, role_id=role.id)
        if active is not None:
            until = v.when(active.end_at.isoformat()) if active.end_at else "removed"
            raise AlreadyActive(f"{role.display_name} is already active for you until {until}.")
        if pending is not None:
            state = "waiting for approval" if pending.status == Status.PENDING_APPROVAL else (
                f"scheduled to start at {v.when(pending.start_at.isoformat())}")
            raise AlreadyPending(
                f"You already asked for {role.display_name}: {pending.short_id} is {state}. "
                f"Cancel it with: cancel {pending.short_id}"
            )
        approvers = []
        if settings.require_approval:
            approvers = await approvers_for(s, settings=settings, requester_id=me.id)
            if not approvers:
                raise Forbidden(
                    f"Nobody but you can approve {role.display_name}; "
                    "an admin must name another approver first."
                )
        req = ScheduleRequest(
            short_id=await new_request_id(s), action=Action.SELF_ACTIVATE,
            status=Status.PENDING_APPROVAL if settings.require_approval else Status.GRANTED,
            kind=ScheduleKind.ACTIVE, principal_id=me.id, role_id=role.id, created_by_id=me.id,
            justification=justification,
            ticket_system=ask.ticket.system if ask.ticket else None,
            ticket_number=ask.ticket.number if ask.ticket else None,
            start_at=start, duration_seconds=int(duration.total_seconds()), created_at=now,
            approval_deadline=now + settings.approval_timeout if settings.require_approval
            else None,
        )
        s.add(req)
        await s.flush()
        await s.refresh(req)
        await audit(
            s, at=now, actor=me, action="request.created", target=f"{me.email}/{role.id}",
            request=req.short_id, duration=int(duration.total_seconds()),
            justification=justification, ticket=ask.ticket.number if ask.ticket else None,
            approval=settings.require_approval,
        )
        if settings.require_approval:
            assert req.approval_deadline is not None
            add_timer(s, kind=TIMEOUT, due_at=req.approval_deadline, subject_id=req.id)
            view = await request_view(s, req)
            notify(
                s, now=now, recipients=approvers, channel=settings.approval_channel or None,
                request_id=req.id,
                note=Notification(
                    kind=v.APPROVAL_NEEDED, request=view, role=role_ref(role),
                    headline=f"{me.display_name} asks for {role.display_name} "
                    f"for {format_duration(duration)}.",
                ),
            )
            notify(
                s, now=now, recipients=[me], request_id=req.id,
                note=Notification(
                    kind=v.SUBMITTED, request=view, role=role_ref(role),
                    headline=f"Request {req.short_id} for {role.display_name} is waiting for "
                    f"approval (until {v.when(view.deadline)}).",
                ),
            )
            return view
        if start <= now:
            await provision(s, req=req, now=now)
        else:
            add_timer(s, kind=START, due_at=start, subject_id=req.id)
        return await request_view(s, req)


async def _check_eligible(
    s: AsyncSession, *, principal_id: int, role_id: str, role_name: str,
    start: datetime, end: datetime,
) -> None:
    eligibility = await s.scalar(
        select(Schedule).where(
            Schedule.principal_id == principal_id, Schedule.role_id == role_id,
            Schedule.kind == ScheduleKind.ELIGIBLE, Schedule.state == ScheduleState.ACTIVE,
            Schedule.start_at <= start,
        ).order_by(Schedule.end_at.is_(None).desc(), Schedule.end_at.desc()).limit(1)
    )
    if eligibility is None:
        raise NotEligible(f"You are not eligible for {role_name}. Ask an admin to assign it.")
    if eligibility.end_at is not None and eligibility.end_at < end:
        raise NotEligible(
            f"Your eligibility for {role_name} ends at {v.when(eligibility.end_at.isoformat())},"
            " before the activation would end; ask for a shorter time."
        )


async def cancel_request(
    uow: UnitOfWork, clock: Clock, *, actor: str, request_id: str
) -> RequestView:
    now = clock.now()
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == request_id))
        if req is None:
            raise UnknownRequest(f"There is no request {request_id}.")
        if req.principal_id != me.id and not me.admin:
            raise Forbidden(f"{request_id} is not yours to cancel.")
        cancellable = [Status.PENDING_APPROVAL, Status.GRANTED]
        result = await s.execute(
            update(ScheduleRequest)
            .where(ScheduleRequest.id == req.id, ScheduleRequest.status.in_(cancellable),
                   ScheduleRequest.completed_at.is_(None))
            .values(status=Status.CANCELED, decided_at=now, completed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            await s.refresh(req)
            raise AlreadyDecided(f"{request_id} can no longer be canceled (it is {req.status}).")
        await s.refresh(req)
        await cancel_timers(s, subject_id=req.id, kinds=[TIMEOUT, START], now=now)
        await audit(s, at=now, actor=me, action="request.canceled",
                    target=f"{req.principal.email}/{req.role_id}", request=req.short_id)
        by = None if me.id == req.principal_id else me
        view = await request_view(
            s, req, decision=Decision(by=person(me), outcome=Status.CANCELED, at=now.isoformat())
        )
        if by is not None:
            notify(s, now=now, recipients=[req.principal], request_id=req.id,
                   note=Notification(kind=v.CANCELED, request=view, role=role_ref(req.role),
                                     headline=f"{me.display_name} canceled your request "
                                     f"{req.short_id} for {req.role.display_name}."))
        update_cards(s, now=now, request_id=req.id,
                     note=Notification(kind=v.REQUEST_UPDATE, request=view,
                                       headline=view.outcome_line()))
        return view


async def deactivate(uow: UnitOfWork, clock: Clock, *, actor: str, role: str) -> str:
    now = clock.now()
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        r = await find_role(s, role)
        schedule = await s.scalar(
            select(Schedule).where(
                Schedule.principal_id == me.id, Schedule.role_id == r.id,
                Schedule.kind == ScheduleKind.ACTIVE, Schedule.state == ScheduleState.ACTIVE,
            ).limit(1)
        )
        if schedule is None:
            raise NotActive(f"{r.display_name} is not active for you.")
        if schedule.member_type == MemberType.ASSIGNED:
            raise Forbidden(
                f"{r.display_name} was assigned to you by an admin; ask an admin to remove it."
            )
        earliest = schedule.start_at + settings_of(r).min_active_before_deactivate
        if now < earliest:
            raise TooSoonToDeactivate(
                f"{r.display_name} can be deactivated from {v.when(earliest.isoformat())} "
                f"({format_duration(settings_of(r).min_active_before_deactivate)} "
                "after activation)."
            )
        schedule.state, schedule.ended_at = ScheduleState.REMOVED, now
        await cancel_timers(s, subject_id=schedule.id, kinds=[EXPIRE, WARN], now=now)
        req = ScheduleRequest(
            short_id=await new_request_id(s), action=Action.SELF_DEACTIVATE,
            status=Status.REVOKED, kind=ScheduleKind.ACTIVE, principal_id=me.id, role_id=r.id,
            created_by_id=me.id, start_at=now, created_at=now, completed_at=now,
        )
        s.add(req)
        await s.flush()
        await audit(s, at=now, actor=me, action="role.deactivated", target=f"{me.email}/{r.id}",
                    schedule=schedule.id, request=req.short_id)
        text = f"{r.display_name} is deactivated. Your access has ended."
        notify(s, now=now, recipients=[me], request_id=req.id,
               note=Notification(kind=v.DEACTIVATED, role=role_ref(r), headline=text))
        return text
