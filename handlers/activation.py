"""Asking for a role, cancelling the ask, and giving the role back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.activation_lookup import AskLookup, Held, look_up_ask
from handlers.activation_rows import insert_request
from handlers.activation_rules import ActivationAsk, CheckedAsk, check_ask
from handlers.clock import Clock
from handlers.directory import approvers_for, find_role, require_principal, settings_of
from handlers.durations import format_duration
from handlers.errors import (
    AlreadyActive,
    AlreadyDecided,
    AlreadyPending,
    Forbidden,
    NotActive,
    NotEligible,
    TooSoonToDeactivate,
    UnknownRequest,
)
from handlers.grants.state import revoke_grants, revoke_request_grants
from handlers.group_eligibility import GroupMembership, GroupWindow
from handlers.lifecycle import EXPIRE, START, TIMEOUT, WARN, provision
from handlers.present import person, request_view, role_ref
from handlers.records import (
    add_timers,
    audit,
    audit_all,
    cancel_timers,
    message_rows,
    new_request_id,
    notify,
    queue_messages,
    update_cards,
)
from handlers.settings import RoleSettings
from storage.audit import NewEvent
from storage.models import Principal, Role, Schedule, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Action, MemberType, ScheduleKind, ScheduleState, Status

__all__ = ["ActivationAsk", "cancel_request", "deactivate", "request_activation"]


async def request_activation(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    ask: ActivationAsk,
    groups: GroupMembership | None = None,
) -> RequestView:
    # Asked before the transaction: a directory lookup must not hold the database.
    via = await groups.windows(uow, actor=actor, role=ask.role) if groups else []
    now = clock.now()
    async with uow.transaction() as s:
        found = await look_up_ask(s, actor=actor, role=ask.role)
        me, role = found.me, found.role
        settings = settings_of(role)
        checked = check_ask(
            ask, role_id=role.id, role_name=role.display_name, settings=settings, now=now
        )
        group = _check_free(found, role=role, start=checked.start, end=checked.end, via=via)
        approvers = await _approvers(s, me=me, role=role, settings=settings)
        short_id = found.free_id or await new_request_id(s)
        values = _request_row(
            me=me,
            role=role,
            ask=checked,
            now=now,
            short_id=short_id,
            deadline=now + settings.approval_timeout if approvers else None,
        )
        at_once = not approvers and checked.start <= now
        # Granted at once, the request is written with its schedule: one statement less.
        req = ScheduleRequest(id=None if at_once else await insert_request(s, values), **values)
        req.principal, req.created_by, req.role = me, me, role
        created = NewEvent(
            at=now,
            actor=me.email,
            action="request.created",
            target=f"{me.email}/{role.id}",
            details={
                "request": req.short_id,
                "duration": int(checked.duration.total_seconds()),
                "justification": checked.justification,
                "ticket": checked.ticket.number if checked.ticket else None,
                "approval": settings.require_approval,
                **({"group": group} if group else {}),
            },
        )
        if approvers:
            await audit_all(s, [created])
            return await _ask_approvers(s, req=req, me=me, approvers=approvers, now=now)
        if at_once:
            return await provision(
                s, req=req, now=now, earlier=[created], stored=True, unsaved=values
            )
        await audit_all(s, [created])
        await add_timers(s, [(START, checked.start)], subject_id=req.id)
        return await request_view(s, req)


def _check_free(
    found: AskLookup,
    *,
    role: Role,
    start: datetime,
    end: datetime,
    via: list[GroupWindow],
) -> str | None:
    """Eligible for the whole time, not active already, not asked already. Returns the
    group that makes the person eligible when no eligibility of their own does."""
    own: list[Held | GroupWindow] = [
        h for h in found.held if h.kind == ScheduleKind.ELIGIBLE and h.start_at <= start
    ]
    groups = [w for w in via if w.role_id == role.id and w.start_at <= start]
    # The one lasting longest; on a tie the person's own, so a group is named only when needed.
    eligible = sorted(
        [*own, *groups],
        reverse=True,
        key=lambda h: (h.end_at is None, h.end_at or start, not isinstance(h, GroupWindow)),
    )
    if not eligible:
        raise NotEligible(
            f"You are not eligible for {role.display_name}. Ask an admin to assign it."
        )
    if eligible[0].end_at is not None and eligible[0].end_at < end:
        raise NotEligible(
            f"Your eligibility for {role.display_name} ends at "
            f"{v.when(eligible[0].end_at.isoformat())}, before the activation would end; "
            "ask for a shorter time."
        )
    active = next((h for h in found.held if h.kind == ScheduleKind.ACTIVE), None)
    if active is not None:
        until = v.when(active.end_at.isoformat()) if active.end_at else "removed"
        raise AlreadyActive(f"{role.display_name} is already active for you until {until}.")
    pending = found.pending
    if pending is not None:
        state = (
            "waiting for approval"
            if pending.status == Status.PENDING_APPROVAL
            else (f"scheduled to start at {v.when(pending.start_at.isoformat())}")
        )
        raise AlreadyPending(
            f"You already asked for {role.display_name}: {pending.short_id} is {state}. "
            f"Cancel it with: cancel {pending.short_id}"
        )
    best = eligible[0]
    return best.group_id if isinstance(best, GroupWindow) else None


async def _approvers(
    s: AsyncSession, *, me: Principal, role: Role, settings: RoleSettings
) -> list[Principal]:
    """Who is asked to decide; nobody when the role needs no approval."""
    if not settings.require_approval:
        return []
    approvers = await approvers_for(s, settings=settings, requester_id=me.id)
    if not approvers:
        raise Forbidden(
            f"Nobody but you can approve {role.display_name}; "
            "an admin must name another approver first."
        )
    return approvers


def _request_row(
    *,
    me: Principal,
    role: Role,
    ask: CheckedAsk,
    now: datetime,
    short_id: str,
    deadline: datetime | None,
) -> dict[str, Any]:
    """The request's row as it ends up (provisioned at once, when nobody need approve and it
    starts now), so provisioning does not UPDATE the row just written. A plain INSERT, not a
    unit of work: the object made of it, with the relations already held, is what the rest
    of the use case (and its views) read, so nothing is read back."""
    at_once = deadline is None and ask.start <= now
    return {
        "short_id": short_id,
        "action": Action.SELF_ACTIVATE,
        "status": Status.PENDING_APPROVAL
        if deadline
        else (Status.PROVISIONED if at_once else Status.GRANTED),
        "completed_at": now if at_once else None,
        "kind": ScheduleKind.ACTIVE,
        "principal_id": me.id,
        "role_id": role.id,
        "created_by_id": me.id,
        "justification": ask.justification,
        "ticket_system": ask.ticket.system if ask.ticket else None,
        "ticket_number": ask.ticket.number if ask.ticket else None,
        "start_at": ask.start,
        "duration_seconds": int(ask.duration.total_seconds()),
        "created_at": now,
        "approval_deadline": deadline,
    }


async def _ask_approvers(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    me: Principal,
    approvers: list[Principal],
    now: datetime,
) -> RequestView:
    """The approvers get a card to decide on; the requester hears it is waiting."""
    assert req.approval_deadline is not None and req.duration_seconds is not None
    await add_timers(s, [(TIMEOUT, req.approval_deadline)], subject_id=req.id)
    view = await request_view(s, req)
    role, channel = req.role, settings_of(req.role).approval_channel
    ask = Notification(
        kind=v.APPROVAL_NEEDED,
        request=view,
        role=role_ref(role),
        headline=f"{me.display_name} asks for {role.display_name} "
        f"for {format_duration(timedelta(seconds=req.duration_seconds))}.",
    )
    told = Notification(
        kind=v.SUBMITTED,
        request=view,
        role=role_ref(role),
        headline=f"Request {req.short_id} for {role.display_name} is waiting for "
        f"approval (until {v.when(view.deadline)}).",
    )
    await queue_messages(
        s,
        [
            *message_rows(
                now=now, recipients=approvers, channel=channel or None, request_id=req.id, note=ask
            ),
            *message_rows(now=now, recipients=[me], request_id=req.id, note=told),
        ],
    )
    return view


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
            .where(
                ScheduleRequest.id == req.id,
                ScheduleRequest.status.in_(cancellable),
                ScheduleRequest.completed_at.is_(None),
            )
            .values(status=Status.CANCELED, decided_at=now, completed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            await s.refresh(req)
            raise AlreadyDecided(f"{request_id} can no longer be canceled (it is {req.status}).")
        await s.refresh(req)
        await cancel_timers(s, subject_id=req.id, kinds=[TIMEOUT, START], now=now)
        await revoke_request_grants(s, request_id=req.id, now=now)
        await audit(
            s,
            at=now,
            actor=me,
            action="request.canceled",
            target=f"{req.principal.email}/{req.role_id}",
            request=req.short_id,
        )
        by = None if me.id == req.principal_id else me
        view = await request_view(
            s, req, decision=Decision(by=person(me), outcome=Status.CANCELED, at=now.isoformat())
        )
        if by is not None:
            notify(
                s,
                now=now,
                recipients=[req.principal],
                request_id=req.id,
                note=Notification(
                    kind=v.CANCELED,
                    request=view,
                    role=role_ref(req.role),
                    headline=f"{me.display_name} canceled your request "
                    f"{req.short_id} for {req.role.display_name}.",
                ),
            )
        update_cards(
            s,
            now=now,
            request_id=req.id,
            note=Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line()),
        )
        return view


async def deactivate(uow: UnitOfWork, clock: Clock, *, actor: str, role: str) -> str:
    now = clock.now()
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        r = await find_role(s, role, usable_by=me.id)
        schedule = await s.scalar(
            select(Schedule)
            .where(
                Schedule.principal_id == me.id,
                Schedule.role_id == r.id,
                Schedule.kind == ScheduleKind.ACTIVE,
                Schedule.state == ScheduleState.ACTIVE,
            )
            .limit(1)
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
        await revoke_grants(s, schedule_ids=[schedule.id], now=now)
        req = ScheduleRequest(
            short_id=await new_request_id(s),
            action=Action.SELF_DEACTIVATE,
            status=Status.REVOKED,
            kind=ScheduleKind.ACTIVE,
            principal_id=me.id,
            role_id=r.id,
            created_by_id=me.id,
            start_at=now,
            created_at=now,
            completed_at=now,
        )
        s.add(req)
        await s.flush()
        await audit(
            s,
            at=now,
            actor=me,
            action="role.deactivated",
            target=f"{me.email}/{r.id}",
            schedule=schedule.id,
            request=req.short_id,
        )
        text = f"{r.display_name} is deactivated. Your access has ended."
        notify(
            s,
            now=now,
            recipients=[me],
            request_id=req.id,
            note=Notification(kind=v.DEACTIVATED, role=role_ref(r), headline=text),
        )
        return text
