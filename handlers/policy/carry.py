"""Carrying out a policy plan in batches: a few statements per thousand rows, so 100,000
principals with their assignments apply in one transaction in seconds, with memory bounded by
the batch, not the file (the plan itself is the only list as long as the file).

Order matters inside the transaction: unique values are released before they are given again,
people and roles exist before their assignments, and an assignment being moved ends before it
is granted anew.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.assignment import NewAssignment, end_schedule, record_assignments
from handlers.policy.grants import stored as stored_grants
from handlers.policy.plan import PAST, PlanDraft, chunked
from handlers.policy.planner import MANY, custom_plans, refresh_statistics
from handlers.policy.reviews_section import carry_reviews
from handlers.records import Audited, audit_many, new_request_ids
from storage.models import Principal, Role, Schedule

__all__ = ["carry_out"]


async def carry_out(s: AsyncSession, draft: PlanDraft) -> None:
    await _principals(s, draft)
    await _roles(s, draft)
    # Assignments are audited where they are written, as in chat (handlers.assignment).
    changes = [c for c in draft.changes if c.kind != "assignment"]
    for chunk in chunked(changes):
        await audit_many(
            s,
            at=draft.now,
            events=[
                Audited(
                    actor=draft.actor,
                    action=f"policy.{c.kind}.{PAST[c.op]}",
                    target=c.key,
                    details=c.details,
                )
                for c in chunk
            ],
        )
    await _end_schedules(s, draft)
    await _grants(s, draft)
    await carry_reviews(s, draft)


async def _principals(s: AsyncSession, draft: PlanDraft) -> None:
    work, now = draft.work, draft.now
    for ids in chunked(work.release_principals):
        await s.execute(
            update(Principal).where(Principal.id.in_(ids)).values(slack_id=None, teams_id=None)
        )
    for specs in chunked(work.new_principals):
        await s.execute(
            insert(Principal),
            [
                {
                    "email": p.email,
                    "display_name": p.name,
                    "slack_id": p.slack_id,
                    "teams_id": p.teams_id,
                    "admin": False,
                    "from_policy": True,
                    "created_at": now,
                }
                for p in specs
            ],
        )
    if len(work.new_principals) >= MANY:
        # The assignments that follow find these people by email, through its index.
        await refresh_statistics(s, "principals")
    for updates in chunked(work.principal_updates):
        await s.execute(
            update(Principal),
            [
                {"id": pid, "display_name": p.name, "slack_id": p.slack_id, "teams_id": p.teams_id}
                for pid, p in updates
            ],
        )
    for flag in (True, False):
        emails = [email for email, admin in work.admins if admin is flag]
        for chunk in chunked(emails):
            await s.execute(
                update(Principal).where(func.lower(Principal.email).in_(chunk)).values(admin=flag)
            )


async def _roles(s: AsyncSession, draft: PlanDraft) -> None:
    work, now = draft.work, draft.now
    for ids in chunked(work.release_roles):
        # Role ids are unique, so the names this gives are too.
        await s.execute(
            update(Role)
            .where(Role.id.in_(ids))
            .values(display_name=literal("~renaming~").concat(Role.id))
        )
    for specs in chunked(work.new_roles):
        await s.execute(
            insert(Role),
            [
                {
                    "id": r.id,
                    "display_name": r.name,
                    "description": r.description,
                    "settings": r.settings.to_mapping(),
                    "from_policy": True,
                    "created_at": now,
                    "grant_targets": stored_grants(r.grants),
                }
                for r in specs
            ],
        )
    for specs in chunked(work.role_updates):
        await s.execute(
            update(Role),
            [
                {
                    "id": r.id,
                    "display_name": r.name,
                    "description": r.description,
                    "settings": r.settings.to_mapping(),
                    "grant_targets": stored_grants(r.grants),
                }
                for r in specs
            ],
        )


async def _end_schedules(s: AsyncSession, draft: PlanDraft) -> None:
    # One at a time: ends are the few changes of a file that is edited, not the many of a
    # first apply.
    tell = dict(draft.work.ends)
    for ids in chunked(list(tell)):
        async with custom_plans(s):
            schedules = list(await s.scalars(select(Schedule).where(Schedule.id.in_(ids))))
        for schedule in schedules:
            await end_schedule(
                s,
                actor=draft.actor,
                schedule=schedule,
                now=draft.now,
                policy=True,
                notify_person=tell[schedule.id],
            )


async def _grants(s: AsyncSession, draft: PlanDraft) -> None:
    # populate_existing: the bulk updates above bypassed any copies the session holds.
    roles: dict[str, Role] = {}
    for ids in chunked(sorted({g.role for g in draft.work.grants})):
        roles.update(
            (r.id, r)
            for r in await s.scalars(
                select(Role).where(Role.id.in_(ids)).execution_options(populate_existing=True)
            )
        )
    for specs in chunked(draft.work.grants):
        emails = [g.principal for g in specs]
        async with custom_plans(s):
            # Two columns, not objects: an assignment needs no more of its principal.
            people = {
                row.email.lower(): _Assignee(row.id, row.email)
                for row in await s.execute(
                    select(Principal.id, Principal.email).where(
                        func.lower(Principal.email).in_(emails)
                    )
                )
            }
            short_ids = await new_request_ids(s, len(specs))
        grants = [
            NewAssignment(
                principal=people[g.principal],
                role=roles[g.role],
                kind=g.kind,
                end=g.end,
                created_by_id=people[g.principal].id,
            )
            for g in specs
        ]
        await record_assignments(
            s,
            actor=draft.actor,
            grants=grants,
            now=draft.now,
            from_policy=True,
            short_ids=short_ids,
        )


class _Assignee(NamedTuple):
    id: int
    email: str
