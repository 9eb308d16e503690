"""Read-only views: my roles, my requests, what I can approve, the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Text, bindparam, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import (
    AuditLine,
    AuditView,
    FormView,
    Person,
    RequestListView,
    RequestView,
    RoleLine,
    RoleRef,
    RolesView,
)
from handlers.clock import Clock
from handlers.directory import (
    deciders_of,
    find_role,
    principal_by_email,
    require_person,
    require_principal,
    settings_of,
    unknown_person,
)
from handlers.durations import format_duration
from handlers.errors import Forbidden, UnknownPrincipal, UnknownRequest
from handlers.group_eligibility import GroupMembership
from handlers.group_roles import form_with_group_roles, with_group_roles
from handlers.present import request_view
from handlers.settings import RoleSettings
from storage.models import AuditEvent, Principal, Role, Schedule, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Action, ScheduleKind, ScheduleState, Status

# `/pim roles` is the command people run most: one prebuilt statement (building one costs
# about as much as running it) that reads plain rows, with the pending request alongside.
_PENDING = (
    select(ScheduleRequest.short_id)
    .where(
        ScheduleRequest.principal_id == Schedule.principal_id,
        ScheduleRequest.role_id == Schedule.role_id,
        # two comparisons, not IN: an IN list is re-expanded at every execution
        or_(
            ScheduleRequest.status == Status.PENDING_APPROVAL,
            ScheduleRequest.status == Status.GRANTED,
        ),
        ScheduleRequest.action == Action.SELF_ACTIVATE,
    )
    .order_by(ScheduleRequest.id.desc())
    .limit(1)
    .correlate(Schedule)
    .scalar_subquery()
)
_ROLE_COLUMNS = (
    Schedule.role_id,
    Schedule.kind,
    Schedule.start_at,
    Schedule.end_at,
    Schedule.member_type,
    Role.display_name,
    cast(Role.settings, Text).label("settings"),
    _PENDING.label("pending"),
)
_ROLE_ROWS = (
    select(*_ROLE_COLUMNS)
    .join(Role, Role.id == Schedule.role_id)
    .where(Schedule.principal_id == bindparam("me"), Schedule.state == ScheduleState.ACTIVE)
    .order_by(Schedule.role_id)
)
# The person and their roles in one statement (a person without roles: one row of NULLs), so
# on PostgreSQL `/pim roles` is one round trip (UnitOfWork.lookup_rows).
_ME_AND_ROLES = (
    select(
        Principal.id.label("me_id"),
        Principal.email.label("me_email"),
        Principal.display_name.label("me_name"),
        *_ROLE_COLUMNS,
    )
    .select_from(Principal)
    .outerjoin(
        Schedule, (Schedule.principal_id == Principal.id) & (Schedule.state == ScheduleState.ACTIVE)
    )
    .outerjoin(Role, Role.id == Schedule.role_id)
    .where(func.lower(Principal.email) == bindparam("email"))
    .order_by(Principal.id, Schedule.role_id)
)


def _role_lines(conn: Connection, me: int) -> tuple[RoleLine, ...]:
    return _lines(conn.execute(_ROLE_ROWS, {"me": me}))


def _lines(rows: Iterable[Row[Any]]) -> tuple[RoleLine, ...]:
    by_role: dict[str, dict[str, Row[Any]]] = {}
    for found in rows:
        by_role.setdefault(found.role_id, {})[found.kind] = found
    lines = []
    for role_id, kinds in by_role.items():
        elig, active = kinds.get(ScheduleKind.ELIGIBLE), kinds.get(ScheduleKind.ACTIVE)
        row = elig or active
        if row is None:
            continue
        max_seconds, requires_approval, needs_why, needs_ticket = _limits(row.settings)
        lines.append(
            RoleLine(
                role=RoleRef(id=role_id, name=row.display_name),
                max_duration_seconds=max_seconds,
                requires_approval=requires_approval,
                eligible_until=elig.end_at.isoformat() if elig and elig.end_at else None,
                active_until=(active.end_at.isoformat() if active.end_at else "permanent")
                if active
                else None,
                active_since=active.start_at.isoformat() if active else None,
                member_type=active.member_type if active else None,
                pending_request=row.pending,
                requires_justification=needs_why,
                requires_ticket=needs_ticket,
            )
        )
    return tuple(lines)


@lru_cache(maxsize=1024)
def _limits(settings_json: str) -> tuple[int, bool, bool, bool]:
    """What a roles line shows of a role's settings, parsed once per distinct settings text
    (parsing them is a tenth of a `/pim roles`)."""
    settings = RoleSettings.from_mapping(json.loads(settings_json))
    return (
        int(settings.max_duration.total_seconds()),
        settings.require_approval,
        settings.require_justification,
        settings.require_ticket,
    )


def _roles_view(rows: Sequence[Any], actor: str) -> RolesView:
    if not rows:
        raise unknown_person(actor)
    me = rows[0]
    # Several principals whose emails differ only in case: the first, as require_person.
    mine = [row for row in rows if row.me_id == me.me_id and row.role_id is not None]
    return RolesView(person=Person(email=me.me_email, name=me.me_name), roles=_lines(mine))


async def my_roles(
    uow: UnitOfWork, *, actor: str, groups: GroupMembership | None = None
) -> RolesView:
    rows = await uow.lookup_rows(_ME_AND_ROLES, {"email": actor.strip().lower()})
    view = _roles_view(rows, actor)
    return view if groups is None else (await with_group_roles(uow, groups, view))[0]


_ELIGIBLE_IDS = select(Schedule.role_id).where(
    Schedule.principal_id == bindparam("me"),
    Schedule.kind == ScheduleKind.ELIGIBLE,
    Schedule.state == ScheduleState.ACTIVE,
)


def _form_view(conn: Connection, actor: str) -> FormView:
    me = require_person(conn, actor)
    eligible_ids = set(conn.scalars(_ELIGIBLE_IDS, {"me": me.id}))
    return FormView(
        person=Person(email=me.email, name=me.display_name),
        roles=tuple(line for line in _role_lines(conn, me.id) if line.role.id in eligible_ids),
    )


async def activation_form(
    uow: UnitOfWork, *, actor: str, groups: GroupMembership | None = None
) -> FormView:
    form = await uow.run_read(lambda conn: _form_view(conn, actor))
    if groups is None:
        return form
    view, group_roles = await with_group_roles(
        uow, groups, RolesView(person=form.person, roles=await _all_lines(uow, actor))
    )
    return form_with_group_roles(form, view, group_roles)


async def _all_lines(uow: UnitOfWork, actor: str) -> tuple[RoleLine, ...]:
    return (await my_roles(uow, actor=actor)).roles


async def my_requests(uow: UnitOfWork, *, actor: str) -> RequestListView:
    async with uow.read() as s:
        me = await require_principal(s, actor)
        rows = (
            await s.scalars(
                select(ScheduleRequest)
                .where(
                    ScheduleRequest.principal_id == me.id,
                    ScheduleRequest.status.in_([Status.PENDING_APPROVAL, Status.GRANTED]),
                )
                .order_by(ScheduleRequest.created_at)
            )
        ).all()
        views = tuple([await request_view(s, r) for r in rows])
        return RequestListView(
            title="Your pending requests",
            requests=views,
            for_approver=False,
            empty_text="You have no pending requests.",
        )


async def my_approvals(uow: UnitOfWork, *, actor: str) -> RequestListView:
    async with uow.read() as s:
        me = await require_principal(s, actor)
        rows = (
            await s.scalars(
                select(ScheduleRequest)
                .where(
                    ScheduleRequest.status == Status.PENDING_APPROVAL,
                    ScheduleRequest.principal_id != me.id,
                )
                .order_by(ScheduleRequest.created_at)
            )
        ).all()
        views = []
        for r in rows:
            deciders = await deciders_of(
                s, action=r.action, settings=settings_of(r.role), requester_id=r.principal_id
            )
            if any(p.id == me.id for p in deciders):
                views.append(await request_view(s, r))
        return RequestListView(
            title=APPROVALS_TITLE,
            requests=tuple(views),
            for_approver=True,
            empty_text="Nothing is waiting for you.",
        )


APPROVALS_TITLE = "Requests you can decide"


async def approvals_as_shown(
    uow: UnitOfWork, *, actor: str, request_ids: list[str]
) -> RequestListView:
    """The `approvals` list a person had on screen, each request as it is now: one just
    decided shows its outcome in its row, and the others keep theirs."""
    async with uow.read() as s:
        await require_principal(s, actor)
        rows = {
            r.short_id: r
            for r in (
                await s.scalars(
                    select(ScheduleRequest).where(ScheduleRequest.short_id.in_(request_ids[:100]))
                )
            ).unique()
        }
        views = [await request_view(s, rows[rid]) for rid in request_ids if rid in rows]
    return RequestListView(
        title=APPROVALS_TITLE,
        requests=tuple(views),
        for_approver=True,
        empty_text="Nothing is waiting for you.",
    )


async def audit_trail(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    subject: str | None,
    since: timedelta | None,
    limit: int = 20,
    since_text: str | None = None,
) -> AuditView:
    async with uow.read() as s:
        me = await require_principal(s, actor)
        if not me.admin:
            raise Forbidden("Only admins can read the audit trail.")
        stmt = select(AuditEvent)
        title = "Audit trail"
        if subject:
            target, is_person = await _audit_subject(s, subject)
            if is_person:
                stmt = stmt.where(
                    or_(AuditEvent.target.startswith(f"{target}/"), AuditEvent.actor == target)
                )
            else:
                stmt = stmt.where(AuditEvent.target.endswith(f"/{target}"))
            title += f" for {target}"
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= clock.now() - since)
            title += f" since {since_text or format_duration(since)}"
        rows = (await s.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1))).all()
        lines = tuple(
            AuditLine(
                id=e.id,
                at=e.at.isoformat(),
                actor=e.actor,
                action=e.action,
                target=e.target,
                summary=_summary(e),
            )
            for e in reversed(rows[:limit])
        )
        return AuditView(title=title, events=lines, truncated=len(rows) > limit)


async def _audit_subject(s: AsyncSession, subject: str) -> tuple[str, bool]:
    text = subject.strip()
    if text.startswith("<@"):
        slack_id = text[2:].split("|")[0].rstrip(">")
        p = await s.scalar(select(Principal).where(Principal.slack_id == slack_id))
        if p is None:
            raise UnknownPrincipal(f"No such person: {text}.")
        return p.email, True
    if "@" in text:
        p = await principal_by_email(s, text)
        if p is None:
            raise UnknownPrincipal(f"No such person: {text}.")
        return p.email, True
    # A quoted display name may be a person's ("Bob Builder") as well as a role's.
    wanted = text.strip("\"'").strip().lower()
    p = await s.scalar(select(Principal).where(func.lower(Principal.display_name) == wanted))
    role_named = await s.scalar(
        select(Role.id).where(
            (func.lower(Role.id) == wanted) | (func.lower(Role.display_name) == wanted)
        )
    )
    if p is not None and role_named is None:
        return p.email, True
    return (await find_role(s, text)).id, False


def _summary(e: AuditEvent) -> str:
    d = e.details or {}
    bits = [f"{k}={d[k]}" for k in ("request", "end", "justification", "reason") if d.get(k)]
    return ", ".join(bits)


async def request_details(uow: UnitOfWork, *, request_id: str) -> RequestView:
    async with uow.read() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == request_id))
        if req is None:
            raise UnknownRequest(f"There is no request {request_id}.")
        return await request_view(s, req)


async def home(
    uow: UnitOfWork, *, actor: str, groups: GroupMembership | None = None
) -> tuple[RolesView, RequestListView, RequestListView]:
    """Everything the Slack App Home shows, for one person."""
    return (
        await my_roles(uow, actor=actor, groups=groups),
        await my_requests(uow, actor=actor),
        await my_approvals(uow, actor=actor),
    )
