"""`roles` and the activation form, counting the roles a person is eligible for through a
group (handlers.group_eligibility) beside the ones assigned to them by name."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import Connection, Text, cast, func, or_, select

from cards.views import FormView, RoleLine, RoleRef, RolesView
from handlers.group_eligibility import GroupMembership, GroupWindow
from handlers.settings import RoleSettings
from storage.models import Principal, Role, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Action, Status


async def with_group_roles(
    uow: UnitOfWork, groups: GroupMembership, view: RolesView
) -> tuple[RolesView, set[str]]:
    """`view` (built from the person's own schedules) with the roles they are eligible for
    only through a group, and the ids of every role a group makes them eligible for. A role
    they also hold by name keeps its own line."""
    via = await groups.windows(uow, actor=view.person.email)
    if not via:
        return view, set()
    best = _latest_end(via)
    lines = {line.role.id: line for line in view.roles}
    missing = [role_id for role_id in best if role_id not in lines]
    extra = await uow.run_read(lambda conn: _new_lines(conn, view.person.email, missing))
    for role_id, line in extra.items():
        end = best[role_id].end_at
        lines[role_id] = replace(line, eligible_until=end.isoformat() if end else None)
    return replace(view, roles=tuple(lines[k] for k in sorted(lines))), set(best)


def form_with_group_roles(form: FormView, view: RolesView, group_role_ids: set[str]) -> FormView:
    """The form's roles: the person's own eligible ones and those of their groups."""
    wanted = {line.role.id for line in form.roles} | group_role_ids
    return replace(form, roles=tuple(line for line in view.roles if line.role.id in wanted))


def _latest_end(via: list[GroupWindow]) -> dict[str, GroupWindow]:
    best: dict[str, GroupWindow] = {}
    for w in via:
        held = best.get(w.role_id)
        if held is None or (
            held.end_at is not None and (w.end_at is None or w.end_at > held.end_at)
        ):
            best[w.role_id] = w
    return best


def _new_lines(conn: Connection, email: str, role_ids: list[str]) -> dict[str, RoleLine]:
    if not role_ids:
        return {}
    pending = dict(
        conn.execute(
            select(ScheduleRequest.role_id, func.max(ScheduleRequest.short_id))
            .join(Principal, Principal.id == ScheduleRequest.principal_id)
            .where(
                func.lower(Principal.email) == email.lower(),
                ScheduleRequest.role_id.in_(role_ids),
                ScheduleRequest.action == Action.SELF_ACTIVATE,
                or_(
                    ScheduleRequest.status == Status.PENDING_APPROVAL,
                    ScheduleRequest.status == Status.GRANTED,
                ),
            )
            .group_by(ScheduleRequest.role_id)
        ).all()
    )
    out = {}
    for role_id, name, raw in conn.execute(
        select(Role.id, Role.display_name, cast(Role.settings, Text)).where(Role.id.in_(role_ids))
    ):
        settings = RoleSettings.from_mapping(json.loads(raw))
        out[role_id] = RoleLine(
            role=RoleRef(id=role_id, name=name),
            max_duration_seconds=int(settings.max_duration.total_seconds()),
            requires_approval=settings.require_approval,
            pending_request=pending.get(role_id),
        )
    return out
