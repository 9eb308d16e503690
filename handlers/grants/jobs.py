"""From claimed grant rows to the provider calls they stand for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.grants.provider import GrantAction, GrantJob, Person
from handlers.grants.targets import from_json
from storage.models import Grant, Principal, Role, Schedule, ScheduleRequest
from vocab.states import GrantStatus

# What a claimed row asks of its provider, by its status.
ACTION: dict[GrantStatus, GrantAction] = {
    GrantStatus.PENDING_PROVISIONING: "grant",
    GrantStatus.PENDING_EXTENSION: "extend",
    GrantStatus.PENDING_REVOKE: "revoke",
}


async def jobs_for(session: AsyncSession, grants: Sequence[Grant]) -> list[GrantJob]:
    """One job per row, its person, role and request read in one query."""
    if not grants:
        return []
    rows = await session.execute(
        select(
            Grant.id,
            Principal,
            Role.display_name,
            Schedule.start_at,
            Schedule.end_at,
            ScheduleRequest.short_id,
            ScheduleRequest.justification,
            ScheduleRequest.ticket_system,
            ScheduleRequest.ticket_number,
        )
        .join(Principal, Principal.id == Grant.principal_id)
        .join(Role, Role.id == Grant.role_id)
        .join(Schedule, Schedule.id == Grant.schedule_id)
        .outerjoin(ScheduleRequest, ScheduleRequest.id == Grant.request_id)
        .where(Grant.id.in_([g.id for g in grants]))
    )
    facts = {row[0]: row for row in rows}
    return [_job(g, facts[g.id]) for g in grants if g.id in facts]


def _job(g: Grant, row: Any) -> GrantJob:
    _, who, role_name, start, end, short_id, justification, system, number = row
    action = ACTION.get(g.status, "grant")
    ticket = f"{system}:{number}" if system and number else (number or None)
    return GrantJob(
        grant_id=g.grant_id,
        action=action,
        target=from_json(g.target),
        person=Person(
            email=who.email, name=who.display_name, slack_id=who.slack_id, teams_id=who.teams_id
        ),
        role_id=g.role_id,
        role_name=role_name,
        request_id=short_id or "",
        start=start,
        end=end,
        justification=justification,
        ticket=ticket,
    )
