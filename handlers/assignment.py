"""Admins giving and taking away eligibility or active assignments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification
from handlers.clock import Clock
from handlers.commands import UserRef
from handlers.directory import find_role, require_principal, resolve_user, settings_of
from handlers.durations import MAX_DURATION
from handlers.errors import AlreadyActive, Forbidden, InvalidInput, NotActive
from handlers.grants.state import Holding, open_many, revoke_grants
from handlers.lifecycle import EXPIRE, RENEW, WARN, end_timers, renewal_timers
from handlers.present import role_ref
from handlers.records import (
    Audited,
    audit,
    audit_many,
    cancel_timers,
    message_row,
    new_request_id,
    new_request_ids,
    notify,
)
from handlers.user_text import user_text
from storage.models import OutboxMessage, Principal, Role, Schedule, ScheduleRequest, Timer
from storage.uow import UnitOfWork
from vocab.states import Action, MemberType, ScheduleKind, ScheduleState, Status


async def require_admin(s: AsyncSession, actor: str, what: str) -> Principal:
    me = await require_principal(s, actor)
    if not me.admin:
        raise Forbidden(f"Only admins can {what}.")
    return me


async def current_schedule(
    s: AsyncSession, *, principal_id: int, role_id: str, kind: str
) -> Schedule | None:
    """The admin-made (Assigned) schedule; activations are the requester's own business."""
    return await s.scalar(
        select(Schedule)
        .where(
            Schedule.principal_id == principal_id,
            Schedule.role_id == role_id,
            Schedule.kind == kind,
            Schedule.state == ScheduleState.ACTIVE,
            Schedule.member_type == MemberType.ASSIGNED,
        )
        .limit(1)
    )


async def assign(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    user: UserRef,
    role: str,
    kind: str,
    duration: timedelta | None = None,
    until: datetime | None = None,
    justification: str | None = None,
) -> str:
    now = clock.now()
    justification = user_text(justification, what="justification")
    async with uow.transaction() as s:
        me = await require_admin(s, actor, "assign roles")
        who = await resolve_user(s, user)
        r = await find_role(s, role)
        end = until if until is not None else (now + duration if duration else None)
        if end is not None and end <= now:
            raise InvalidInput("The end of the assignment must be in the future.")
        if end is not None and end - now > MAX_DURATION:  # the same cap as a typed duration
            raise InvalidInput(
                f"The assignment would last too long (at most "
                f"{MAX_DURATION.days} days); leave out the end for a "
                "permanent one."
            )
        schedule = await grant_schedule(
            s,
            actor=me,
            principal=who,
            role=r,
            kind=kind,
            end=end,
            now=now,
            justification=justification,
        )
        return (
            f"{who.display_name} is now {_kind_words(kind)} {r.display_name} "
            f"{_until(schedule.end_at)}."
        )


async def grant_schedule(
    s: AsyncSession,
    *,
    actor: Principal | str,
    principal: Principal,
    role: Role,
    kind: str,
    end: datetime | None,
    now: datetime,
    justification: str | None = None,
    from_policy: bool = False,
) -> Schedule:
    """Create an Assigned schedule with its request, audit, timers and notification.
    Shared by chat commands and policy apply so both follow the same rules."""
    settings = settings_of(role)
    if end is None:
        allowed = (
            settings.allow_permanent_eligible
            if kind == ScheduleKind.ELIGIBLE
            else settings.allow_permanent_active
        )
        if not allowed:
            raise Forbidden(
                f"{role.display_name} does not allow permanent {kind} assignments; "
                "give a duration or an end date."
            )
    existing = await current_schedule(s, principal_id=principal.id, role_id=role.id, kind=kind)
    if existing is not None:
        raise AlreadyActive(
            f"{principal.display_name} is already {_kind_words(kind)} {role.display_name} "
            f"{_until(existing.end_at)}; remove that first."
        )
    who = actor.email if isinstance(actor, Principal) else actor
    creator_id = actor.id if isinstance(actor, Principal) else principal.id
    grant = NewAssignment(
        principal=principal,
        role=role,
        kind=kind,
        end=end,
        created_by_id=creator_id,
        justification=justification,
    )
    (schedule_id,) = await record_assignments(
        s, actor=who, grants=[grant], now=now, from_policy=from_policy
    )
    schedule = await s.get(Schedule, schedule_id)
    assert schedule is not None  # just written
    return schedule


class Assignee(Protocol):
    """What recording an assignment reads of its principal: a Principal, or a policy
    apply's row of two columns (loading 100,000 whole objects cost it seconds)."""

    @property
    def id(self) -> int: ...

    @property
    def email(self) -> str: ...


@dataclass(frozen=True, slots=True)
class NewAssignment:
    principal: Assignee
    role: Role
    kind: str
    end: datetime | None
    created_by_id: int
    justification: str | None = None


async def record_assignments(
    s: AsyncSession,
    *,
    actor: str,
    grants: Sequence[NewAssignment],
    now: datetime,
    from_policy: bool,
    short_ids: Sequence[str] = (),
) -> list[int]:
    """Write Assigned schedules, each with its request, timers, audit event and notification;
    return the schedules' ids. The caller has checked the rules (grant_schedule one at a
    time, policy apply for a whole file).

    Rows go in as lists of values, a few statements per batch: ORM objects would make SQLite
    insert them one by one to learn each new id. `short_ids`: free request ids, one per
    grant, drawn by the caller (new_request_ids); by default they are drawn here."""
    short_ids = short_ids or await new_request_ids(s, len(grants))
    requests = _pairs(
        await s.execute(
            insert(ScheduleRequest).returning(ScheduleRequest.short_id, ScheduleRequest.id),
            [
                {
                    "short_id": short_id,
                    "action": Action.ADMIN_ASSIGN,
                    "status": Status.PROVISIONED,
                    "kind": g.kind,
                    "principal_id": g.principal.id,
                    "role_id": g.role.id,
                    "created_by_id": g.created_by_id,
                    "justification": g.justification,
                    "start_at": now,
                    "duration_seconds": int((g.end - now).total_seconds()) if g.end else None,
                    "created_at": now,
                    "decided_at": now,
                    "completed_at": now,
                }
                for g, short_id in zip(grants, short_ids, strict=True)
            ],
        )
    )
    request_ids = [requests[short_id] for short_id in short_ids]
    schedules = _pairs(
        await s.execute(
            insert(Schedule).returning(Schedule.request_id, Schedule.id),
            [
                {
                    "principal_id": g.principal.id,
                    "role_id": g.role.id,
                    "kind": g.kind,
                    "member_type": MemberType.ASSIGNED,
                    "state": ScheduleState.ACTIVE,
                    "start_at": now,
                    "end_at": g.end,
                    "request_id": request_id,
                    "from_policy": from_policy,
                    "created_at": now,
                }
                for g, request_id in zip(grants, request_ids, strict=True)
            ],
        )
    )
    schedule_ids = [schedules[request_id] for request_id in request_ids]
    timers, messages, events = [], [], []
    notes: dict[tuple[str, str, datetime | None], tuple[Notification, dict[str, Any]]] = {}
    for g, short_id, request_id, schedule_id in zip(
        grants, short_ids, request_ids, schedule_ids, strict=True
    ):
        warning = (
            settings_of(g.role).expiry_warning if g.kind == ScheduleKind.ACTIVE else timedelta(0)
        )
        timers += [
            {"kind": kind, "due_at": due, "subject_id": schedule_id}
            for kind, due in [
                *end_timers(start=now, end=g.end, warning=warning),
                *renewal_timers(start=now, end=g.end),
            ]
        ]
        end = g.end.isoformat() if g.end else None
        events.append(
            Audited(
                actor=actor,
                action=f"{g.kind}.assigned",
                target=f"{g.principal.email}/{g.role.id}",
                details={
                    "request": short_id,
                    "end": end,
                    "permanent": g.end is None,
                    "justification": g.justification,
                    "policy": from_policy,
                },
            )
        )
        key = (g.role.id, g.kind, g.end)
        if key not in notes:  # one per role, kind and end: a batch shares a handful
            note = Notification(
                kind=v.ASSIGNED,
                role=role_ref(g.role),
                end_at=end,
                headline=f"You are now {_kind_words(g.kind)} {g.role.display_name} "
                f"{_until(g.end)}.",
            )
            notes[key] = (note, note.to_dict())
        note, payload = notes[key]
        messages.append(
            message_row(
                now=now,
                note=note,
                recipient_id=g.principal.id,
                request_id=request_id,
                payload=payload,
            )
        )
    if timers:
        await s.execute(insert(Timer), timers)
    await open_many(
        s,
        now=now,
        items=[
            Holding(schedule_id, request_id, g.principal.id, g.role)
            for g, request_id, schedule_id in zip(grants, request_ids, schedule_ids, strict=True)
            if g.kind == ScheduleKind.ACTIVE
        ],
    )
    await audit_many(s, at=now, events=events)
    await s.execute(insert(OutboxMessage), messages)
    return schedule_ids


async def remove(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    user: UserRef,
    role: str,
    kind: str | None = None,
) -> str:
    now = clock.now()
    async with uow.transaction() as s:
        me = await require_admin(s, actor, "remove assignments")
        who = await resolve_user(s, user)
        r = await find_role(s, role)
        kinds = [kind] if kind else [ScheduleKind.ELIGIBLE, ScheduleKind.ACTIVE]
        removed = []
        for k in kinds:
            schedule = await current_schedule(s, principal_id=who.id, role_id=r.id, kind=k)
            if schedule is not None:
                await end_schedule(s, actor=me, schedule=schedule, now=now)
                removed.append(_kind_noun(k))
        if not removed:
            kind_word = f"{kind} assignment" if kind else "assignment"
            raise NotActive(f"{who.display_name} has no {kind_word} for {r.display_name}.")
        return f"Removed {' and '.join(removed)} of {r.display_name} from {who.display_name}."


async def end_schedule(
    s: AsyncSession,
    *,
    actor: Principal | str,
    schedule: Schedule,
    now: datetime,
    policy: bool = False,
    notify_person: bool = True,
) -> None:
    """End an assignment early. notify_person=False when it is replaced at once (a policy
    change of end date), so the person gets one message, not "removed" then "assigned"."""
    schedule.state, schedule.ended_at = ScheduleState.REMOVED, now
    await cancel_timers(s, subject_id=schedule.id, kinds=[EXPIRE, WARN, RENEW], now=now)
    await revoke_grants(s, schedule_ids=[schedule.id], now=now)
    creator_id = actor.id if isinstance(actor, Principal) else schedule.principal_id
    req = ScheduleRequest(
        short_id=await new_request_id(s),
        action=Action.ADMIN_REMOVE,
        status=Status.REVOKED,
        kind=schedule.kind,
        principal_id=schedule.principal_id,
        role_id=schedule.role_id,
        created_by_id=creator_id,
        start_at=now,
        created_at=now,
        decided_at=now,
        completed_at=now,
    )
    s.add(req)
    await s.flush()
    await audit(
        s,
        at=now,
        actor=actor,
        action=f"{schedule.kind}.removed",
        target=f"{schedule.principal.email}/{schedule.role_id}",
        schedule=schedule.id,
        request=req.short_id,
        policy=policy,
    )
    if notify_person:
        notify(
            s,
            now=now,
            recipients=[schedule.principal],
            request_id=req.id,
            note=Notification(
                kind=v.REMOVED,
                role=role_ref(schedule.role),
                headline=f"Your {_kind_noun(schedule.kind)} of {schedule.role.display_name} "
                "was removed by an admin.",
            ),
        )


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    """{first: second} of each returned row (RETURNING of a batch comes back in any order)."""
    return {row[0]: row[1] for row in rows}


def _kind_words(kind: str) -> str:
    return "eligible for" if kind == ScheduleKind.ELIGIBLE else "assigned"


def _kind_noun(kind: str) -> str:
    return "eligibility" if kind == ScheduleKind.ELIGIBLE else "active assignment"


def _until(end: datetime | None) -> str:
    return f"until {v.when(end.isoformat())}" if end else "permanently"
