"""Approving and denying: the first decision wins, and nobody approves their own request."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.clock import Clock
from handlers.directory import approvers_for, require_principal, settings_of
from handlers.errors import (
    AlreadyDecided,
    InvalidInput,
    JustificationRequired,
    NotAnApprover,
    PimError,
    SelfApprovalForbidden,
    UnknownRequest,
)
from handlers.extend import apply_extension
from handlers.lifecycle import START, TIMEOUT, provision
from handlers.present import person, request_view, role_ref
from handlers.records import add_timer, audit, audit_all, cancel_timers, notify, update_cards
from handlers.user_text import user_text
from storage.audit import NewEvent
from storage.models import ApprovalStep, Principal, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import Action, ReviewResult, Status


async def decide(
    uow: UnitOfWork, clock: Clock, *, actor: str, request_id: str, approve: bool,
    justification: str | None = None, check_only: bool = False,
) -> RequestView:
    """Approve or deny. A refused attempt is audited (and committed) before the error is raised.

    check_only: run every check a click would meet but decide nothing, so a transport can
    refuse at once instead of first opening a form asking for a reason."""
    now = clock.now()
    justification = user_text(justification, what="justification")
    if justification and len(justification) > MAX_JUSTIFICATION:
        raise InvalidInput(f"The justification is too long (at most {MAX_JUSTIFICATION}).")
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == request_id))
        if req is None:
            raise UnknownRequest(f"There is no request {request_id}.")
        settings = settings_of(req.role)
        verb = "approve" if approve else "deny"
        refusal = await _refusal(s, me=me, req=req, verb=verb)
        if refusal is None:
            if req.status != Status.PENDING_APPROVAL:
                raise AlreadyDecided(await _already(s, req))
            if check_only:
                return await request_view(s, req)
            if settings.approver_justification and not justification:
                raise JustificationRequired(
                    f"{req.role.display_name} asks approvers for a reason: "
                    f"{verb} {request_id} <reason>"
                )
            if not approve and not justification:
                raise JustificationRequired(f"Say why you deny it: deny {request_id} <reason>")
            return await _record_decision(
                s, req=req, me=me, approve=approve, justification=justification, now=now
            )
        await audit(
            s, at=now, actor=me, action="approval.refused",
            target=f"{req.principal.email}/{req.role_id}", request=req.short_id,
            reason=refusal.code, attempted=verb,
        )
    raise refusal


async def _refusal(
    s: AsyncSession, *, me: Principal, req: ScheduleRequest, verb: str
) -> PimError | None:
    if req.principal_id == me.id:
        return SelfApprovalForbidden(f"You cannot {verb} your own request {req.short_id}.")
    deciders = await approvers_for(s, settings=settings_of(req.role),
                                   requester_id=req.principal_id)
    if me.id not in {p.id for p in deciders}:
        return NotAnApprover(
            f"You are not an approver for {req.role.display_name}, so you cannot {verb} "
            f"{req.short_id}."
        )
    return None


async def _record_decision(
    s: AsyncSession, *, req: ScheduleRequest, me: Principal, approve: bool,
    justification: str | None, now: datetime,
) -> RequestView:
    outcome = Status.GRANTED if approve else Status.DENIED
    # The guard on status is what makes concurrent clicks safe: only one UPDATE matches.
    # ("evaluate" also updates `req` in memory, so nothing is read back.)
    result = await s.execute(
        update(ScheduleRequest)
        .where(ScheduleRequest.id == req.id, ScheduleRequest.status == Status.PENDING_APPROVAL)
        .values(status=outcome, decided_at=now,
                completed_at=None if approve else now)
        .execution_options(synchronize_session="evaluate")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await s.refresh(req)
        raise AlreadyDecided(await _already(s, req))
    s.add(ApprovalStep(request_id=req.id, reviewer_id=me.id,
                       decision=ReviewResult.APPROVE if approve else ReviewResult.DENY,
                       justification=justification, decided_at=now))
    await cancel_timers(s, subject_id=req.id, kinds=[TIMEOUT], now=now)
    decided = NewEvent(
        at=now, actor=me.email, action="request.approved" if approve else "request.denied",
        target=f"{req.principal.email}/{req.role_id}",
        details={"request": req.short_id, "justification": justification},
    )
    decision = Decision(by=person(me), outcome=outcome, at=now.isoformat(), reason=justification)
    view = await request_view(s, req, decision=decision)
    _tell_decision(s, req=req, me=me, view=view, approve=approve, now=now)
    if approve and req.action == Action.SELF_EXTEND:  # more time on a running activation
        done = replace(decision, outcome=Status.PROVISIONED)
        await apply_extension(s, req=req, now=now, earlier=[decided], decision=done)
        return await request_view(s, req, decision=done)
    if approve and req.start_at <= now:
        # What the stored approval step would say, without reading it back.
        done = replace(decision, outcome=Status.PROVISIONED)
        await provision(s, req=req, now=now, earlier=[decided], decision=done)
        return await request_view(s, req, decision=done)
    await audit_all(s, [decided])
    if approve:
        add_timer(s, kind=START, due_at=req.start_at, subject_id=req.id)
    return view


def _tell_decision(
    s: AsyncSession, *, req: ScheduleRequest, me: Principal, view: RequestView, approve: bool,
    now: datetime,
) -> None:
    """The requester hears the outcome; every posted copy of the card shows it."""
    role = req.role.display_name
    if approve:
        headline = f"{me.display_name} approved your request {req.short_id} for {role}."
    else:
        headline = f"{me.display_name} denied your request {req.short_id} for {role}."
        if view.decision and view.decision.reason:
            headline += f" Reason: {view.decision.reason}"
    notify(s, now=now, recipients=[req.principal], request_id=req.id,
           note=Notification(kind=v.APPROVED if approve else v.DENIED, request=view,
                             role=role_ref(req.role), headline=headline))
    update_cards(s, now=now, request_id=req.id,
                 note=Notification(kind=v.REQUEST_UPDATE, request=view,
                                   headline=view.outcome_line()))


async def _already(s: AsyncSession, req: ScheduleRequest) -> str:
    view = await request_view(s, req)
    return f"{req.short_id} is already decided: {view.outcome_line()}."
