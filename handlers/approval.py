"""Approving and denying: the first decision wins, and nobody approves their own request."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.clock import Clock
from handlers.directory import deciders_of, require_principal, settings_of
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
from handlers.records import (
    add_timers,
    audit,
    audit_all,
    cancel_timers,
    card_update_row,
    message_rows,
    queue_messages,
    table_of,
)
from handlers.renew import apply_renewal
from handlers.user_text import user_text
from storage.audit import NewEvent
from storage.models import ApprovalStep, Principal, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import Action, ReviewResult, Status


async def decide(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    request_id: str,
    approve: bool,
    justification: str | None = None,
    check_only: bool = False,
) -> RequestView:
    """Approve or deny. A refused attempt is audited (and committed) before the error is raised.

    check_only: run every check a click would meet but decide nothing, so a transport can
    refuse at once instead of first opening a form asking for a reason."""
    now = clock.now()
    justification = user_text(justification, what="justification")
    if justification and len(justification) > MAX_JUSTIFICATION:
        raise InvalidInput(f"The justification is too long (at most {MAX_JUSTIFICATION}).")
    async with uow.transaction() as s:
        me, req = await _decider_and_request(s, actor=actor, request_id=request_id)
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
            s,
            at=now,
            actor=me,
            action="approval.refused",
            target=f"{req.principal.email}/{req.role_id}",
            request=req.short_id,
            reason=refusal.code,
            attempted=verb,
        )
    raise refusal


async def _refusal(
    s: AsyncSession, *, me: Principal, req: ScheduleRequest, verb: str
) -> PimError | None:
    if req.principal_id == me.id:
        return SelfApprovalForbidden(f"You cannot {verb} your own request {req.short_id}.")
    deciders = await deciders_of(
        s, action=req.action, settings=settings_of(req.role), requester_id=req.principal_id
    )
    if me.id not in {p.id for p in deciders}:
        return NotAnApprover(
            f"You are not an approver for {req.role.display_name}, so you cannot {verb} "
            f"{req.short_id}."
        )
    return None


async def _decider_and_request(
    s: AsyncSession, *, actor: str, request_id: str
) -> tuple[Principal, ScheduleRequest | None]:
    """Who clicks and what they click on, in one statement (the request with its people and
    role, joined)."""
    row = (
        await s.execute(
            _DECIDER_AND_REQUEST, {"email": actor.strip().lower(), "request": request_id}
        )
    ).first()
    if row is None:
        await require_principal(s, actor)  # raises, with its message
        raise AssertionError("unreachable")
    return row[0], row[1]


_INSERT_STEP = insert(table_of(ApprovalStep))
_DECIDER_AND_REQUEST = (
    select(Principal, ScheduleRequest)
    .outerjoin(ScheduleRequest, ScheduleRequest.short_id == bindparam("request"))
    .where(func.lower(Principal.email) == bindparam("email"))
)


async def _record_decision(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    me: Principal,
    approve: bool,
    justification: str | None,
    now: datetime,
) -> RequestView:
    outcome = Status.GRANTED if approve else Status.DENIED
    # (An extension changes the running activation instead: apply_extension.)
    # (So does a renewal, on the assignment: apply_renewal.)
    moves_end = req.action in (Action.SELF_EXTEND, Action.SELF_RENEW)
    at_once = approve and not moves_end and req.start_at <= now
    # The guard on status is what makes concurrent clicks safe: only one UPDATE matches.
    # An approval that takes effect now is written as it ends up (provisioned), so
    # provisioning does not UPDATE the row again.
    result = await s.execute(
        update(ScheduleRequest)
        .where(ScheduleRequest.id == req.id, ScheduleRequest.status == Status.PENDING_APPROVAL)
        .values(
            status=Status.PROVISIONED if at_once else outcome,
            decided_at=now,
            completed_at=now if at_once or not approve else None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await s.refresh(req)
        raise AlreadyDecided(await _already(s, req))
    # In memory, the request is decided (not yet provisioned): what the requester is told
    # first. Committed values, so the unit of work writes nothing more for it.
    for name, value in (
        ("status", outcome),
        ("decided_at", now),
        ("completed_at", None if approve else now),
    ):
        set_committed_value(req, name, value)
    await s.execute(
        _INSERT_STEP,
        {
            "request_id": req.id,
            "reviewer_id": me.id,
            "decision": ReviewResult.APPROVE if approve else ReviewResult.DENY,
            "justification": justification,
            "decided_at": now,
        },
    )
    await cancel_timers(s, subject_id=req.id, kinds=[TIMEOUT], now=now)
    decided = NewEvent(
        at=now,
        actor=me.email,
        action="request.approved" if approve else "request.denied",
        target=f"{req.principal.email}/{req.role_id}",
        details={"request": req.short_id, "justification": justification},
    )
    decision = Decision(by=person(me), outcome=outcome, at=now.isoformat(), reason=justification)
    view = await request_view(s, req, decision=decision)
    told = _tell_decision(req=req, me=me, view=view, approve=approve, now=now)
    if approve and req.action == Action.SELF_EXTEND:  # more time on a running activation
        await queue_messages(s, told)
        done = replace(decision, outcome=Status.PROVISIONED)
        await apply_extension(s, req=req, now=now, earlier=[decided], decision=done)
        return await request_view(s, req, decision=done)
    if approve and req.action == Action.SELF_RENEW:  # a later end for the assignment
        await queue_messages(s, told)
        done = replace(decision, outcome=Status.PROVISIONED)
        await apply_renewal(s, req=req, now=now, earlier=[decided], decision=done)
        return await request_view(s, req, decision=done)
    if at_once:
        # What the stored approval step would say, without reading it back.
        done = replace(decision, outcome=Status.PROVISIONED)
        return await provision(
            s, req=req, now=now, earlier=[decided], decision=done, told=told, stored=True
        )
    await audit_all(s, [decided])
    await queue_messages(s, told)
    if approve:
        await add_timers(s, [(START, req.start_at)], subject_id=req.id)
    return view


def _tell_decision(
    *,
    req: ScheduleRequest,
    me: Principal,
    view: RequestView,
    approve: bool,
    now: datetime,
) -> list[dict[str, Any]]:
    """The requester hears the outcome; every posted copy of the card shows it."""
    role = req.role.display_name
    if approve:
        headline = f"{me.display_name} approved your request {req.short_id} for {role}."
    else:
        headline = f"{me.display_name} denied your request {req.short_id} for {role}."
        if view.decision and view.decision.reason:
            headline += f" Reason: {view.decision.reason}"
    return [
        *message_rows(
            now=now,
            recipients=[req.principal],
            request_id=req.id,
            note=Notification(
                kind=v.APPROVED if approve else v.DENIED,
                request=view,
                role=role_ref(req.role),
                headline=headline,
            ),
        ),
        card_update_row(
            now=now,
            request_id=req.id,
            note=Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line()),
        ),
    ]


async def _already(s: AsyncSession, req: ScheduleRequest) -> str:
    view = await request_view(s, req)
    return f"{req.short_id} is already decided: {view.outcome_line()}."
