"""Renewing an admin-made assignment nearing its end (Entra's selfRenew and adminExtend).

The holder asks (`renew ROLE [DURATION]`): a request admins decide, as Entra routes
renewals to admins. An admin can also move the end directly (`extend-assignment`). Either
way the assignment keeps its row and its start; its end moves, with its timers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Decision, Notification, RequestView
from handlers.assignment import current_schedule, require_admin
from handlers.clock import Clock
from handlers.commands import UserRef
from handlers.directory import deciders_of, find_role, require_principal, resolve_user, settings_of
from handlers.durations import MAX_DURATION, format_duration
from handlers.errors import Forbidden, InvalidInput, NotActive
from handlers.grants.extension import Extending, extend_grants
from handlers.lifecycle import EXPIRE, RENEW, TIMEOUT, WARN, end_timers, renewal_timers
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
from storage.models import Schedule, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Action, ScheduleKind, Status


def holding(*, kind: str, role: str) -> str:
    """ "eligibility for Role" or "active assignment to Role"."""
    if kind == ScheduleKind.ELIGIBLE:
        return f"eligibility for {role}"
    return f"active assignment to {role}"


async def assignment_of(
    s: AsyncSession, *, principal_id: int, role_id: str, kind: str | None = None
) -> Schedule | None:
    """The admin-made assignment: of `kind`, or the eligibility first, then the active one."""
    for k in [kind] if kind else [ScheduleKind.ELIGIBLE, ScheduleKind.ACTIVE]:
        found = await current_schedule(s, principal_id=principal_id, role_id=role_id, kind=k)
        if found is not None:
            return found
    return None


async def request_renewal(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    role: str,
    duration: timedelta | None = None,
    justification: str | None = None,
) -> RequestView:
    """Ask the admins for `duration` more (default: as long as the assignment was)."""
    now = clock.now()
    why = user_text(justification, what="justification")
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        r = await find_role(s, role, usable_by=me.id)
        held = await assignment_of(s, principal_id=me.id, role_id=r.id)
        if held is None:
            raise NotActive(f"You have no assignment to {r.display_name} to renew.")
        if held.end_at is None:
            raise NotActive(
                f"Your {holding(kind=held.kind, role=r.display_name)} is permanent; "
                "there is nothing to renew."
            )
        extra = duration or held.end_at - held.start_at
        end = held.end_at + extra
        _check_length(end=end, now=now)
        await check_not_pending(s, me=me, role=r, action=Action.SELF_RENEW, verb="renew")
        approvers = await deciders_of(
            s, action=Action.SELF_RENEW, settings=settings_of(r), requester_id=me.id
        )
        if not approvers:
            raise Forbidden(f"Nobody but you can approve renewing {r.display_name}.")
        timeout = settings_of(r).approval_timeout
        # start_at/duration describe the added stretch, so a card's "until" is the new end.
        req = ScheduleRequest(
            short_id=await new_request_id(s),
            action=Action.SELF_RENEW,
            status=Status.PENDING_APPROVAL,
            kind=held.kind,
            principal_id=me.id,
            role_id=r.id,
            created_by_id=me.id,
            justification=why,
            start_at=held.end_at,
            duration_seconds=int(extra.total_seconds()),
            created_at=now,
            approval_deadline=now + timeout,
        )
        req.principal, req.created_by, req.role = me, me, r
        s.add(req)
        await s.flush()
        await audit_all(
            s,
            [
                NewEvent(
                    at=now,
                    actor=me.email,
                    action="request.created",
                    target=f"{me.email}/{r.id}",
                    details={
                        "request": req.short_id,
                        "action": Action.SELF_RENEW,
                        "schedule": held.id,
                        "end": end.isoformat(),
                        "justification": why,
                    },
                )
            ],
        )
        add_timer(s, kind=TIMEOUT, due_at=now + timeout, subject_id=req.id)
        view = await request_view(s, req)
        notify(
            s,
            now=now,
            recipients=approvers,
            request_id=req.id,
            note=Notification(
                kind=v.APPROVAL_NEEDED,
                request=view,
                role=role_ref(r),
                headline=f"{me.display_name} asks to renew their "
                f"{holding(kind=held.kind, role=r.display_name)} by {format_duration(extra)} "
                f"(until {v.when(end.isoformat())}).",
            ),
        )
        return view


async def apply_renewal(
    s: AsyncSession,
    *,
    req: ScheduleRequest,
    now: datetime,
    earlier: list[NewEvent],
    decision: Decision | None = None,
) -> None:
    """Move the assignment's end by the request's length; fail (and say so) when it has
    ended meanwhile."""
    assert req.duration_seconds is not None
    held = await current_schedule(
        s, principal_id=req.principal_id, role_id=req.role_id, kind=req.kind
    )
    req.completed_at = now
    if held is None or held.end_at is None:
        await fail_request(
            s,
            req=req,
            now=now,
            earlier=earlier,
            reason="the assignment had ended",
            headline=f"Your {holding(kind=req.kind, role=req.role.display_name)} had "
            f"already ended, so {req.short_id} could not renew it. Ask an admin to assign it "
            "again.",
        )
        return
    end = held.end_at + timedelta(seconds=req.duration_seconds)
    req.status = Status.PROVISIONED
    grants = await move_end(s, schedule=held, end=end, now=now)
    await tell_new_end(
        s,
        req=req,
        now=now,
        end=end,
        action="assignment.renewed",
        details={
            "request": req.short_id,
            "schedule": held.id,
            "kind": held.kind,
            "end": end.isoformat(),
        },
        grants=grants,
        earlier=earlier,
        decision=decision,
        kind=v.ASSIGNED,
        headline=f"Your {holding(kind=held.kind, role=req.role.display_name)} is renewed until "
        f"{v.when(end.isoformat())}.",
    )


async def extend_assignment(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    user: UserRef,
    role: str,
    kind: str | None = None,
    duration: timedelta | None = None,
    until: datetime | None = None,
    justification: str | None = None,
) -> str:
    """An admin moves the end of someone's assignment later (Entra's adminExtend)."""
    now = clock.now()
    why = user_text(justification, what="justification")
    async with uow.transaction() as s:
        me = await require_admin(s, actor, "extend assignments")
        who = await resolve_user(s, user)
        r = await find_role(s, role)
        held = await assignment_of(s, principal_id=who.id, role_id=r.id, kind=kind)
        what = f"{kind} assignment" if kind else "assignment"
        if held is None:
            raise NotActive(f"{who.display_name} has no {what} for {r.display_name}.")
        if held.end_at is None:
            what = holding(kind=held.kind, role=r.display_name)
            raise NotActive(
                f"{who.display_name}'s {what} is permanent; there is nothing to extend."
            )
        end = until if until is not None else held.end_at + (duration or timedelta())
        if end <= held.end_at:
            raise InvalidInput(
                f"The new end must be after the current one ({v.when(held.end_at.isoformat())})."
            )
        _check_length(end=end, now=now)
        req = ScheduleRequest(
            short_id=await new_request_id(s),
            action=Action.ADMIN_EXTEND,
            status=Status.PROVISIONED,
            kind=held.kind,
            principal_id=who.id,
            role_id=r.id,
            created_by_id=me.id,
            justification=why,
            start_at=held.end_at,
            duration_seconds=int((end - held.end_at).total_seconds()),
            created_at=now,
            decided_at=now,
            completed_at=now,
        )
        s.add(req)
        await s.flush()
        grants = await move_end(s, schedule=held, end=end, now=now)
        details = {
            "request": req.short_id,
            "schedule": held.id,
            "kind": held.kind,
            "end": end.isoformat(),
        }
        target = f"{who.email}/{r.id}"
        await audit_all(
            s,
            [
                NewEvent(
                    at=now,
                    actor=me.email,
                    action="assignment.extended",
                    target=target,
                    details={**details, "justification": why},
                ),
                *grants.event(at=now, target=target, details=details),
            ],
        )
        notify(
            s,
            now=now,
            recipients=[who],
            request_id=req.id,
            note=Notification(
                kind=v.ASSIGNED,
                role=role_ref(r),
                end_at=end.isoformat(),
                headline=f"{me.display_name} extended your "
                f"{holding(kind=held.kind, role=r.display_name)} until {v.when(end.isoformat())}.",
                details=grants.lines,
            ),
        )
        return (
            f"{who.display_name}'s {holding(kind=held.kind, role=r.display_name)} now ends "
            f"{v.when(end.isoformat())}. Request {req.short_id}."
        )


async def move_end(
    s: AsyncSession, *, schedule: Schedule, end: datetime, now: datetime
) -> Extending:
    """A new end for an assignment, with new end, warning and renewal timers; an active one's
    grants are queued to carry the new end to their targets."""
    schedule.end_at = end
    await cancel_timers(s, subject_id=schedule.id, kinds=[EXPIRE, WARN, RENEW], now=now)
    warning = (
        settings_of(schedule.role).expiry_warning
        if schedule.kind == ScheduleKind.ACTIVE
        else timedelta(0)
    )
    for kind, due in [
        *end_timers(start=schedule.start_at, end=end, warning=warning),
        *renewal_timers(start=now, end=end),
    ]:
        add_timer(s, kind=kind, due_at=due, subject_id=schedule.id)
    return await extend_grants(s, schedule_id=schedule.id, now=now)


def _check_length(*, end: datetime, now: datetime) -> None:
    if end - now > MAX_DURATION:  # the same cap as `assign`
        raise InvalidInput(
            f"The assignment would then last too long (at most {MAX_DURATION.days} days from now)."
        )
