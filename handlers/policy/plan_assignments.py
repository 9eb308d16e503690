"""Planning a policy's assignments: which Assigned schedules to grant, move or (with --prune)
end so the database matches the file, as changes in the PlanDraft of handlers.policy.plan."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.assignment import end_schedule, grant_schedule
from handlers.directory import principal_by_email
from handlers.errors import PimError
from handlers.policy.file import AssignmentSpec, PolicyDoc, policy_failure
from handlers.policy.plan import CREATE, REMOVE, UPDATE, PlanDraft, Step, end_text
from storage.models import MemberType, Role, Schedule, ScheduleState

__all__ = ["plan_assignments"]


async def plan_assignments(
    s: AsyncSession, doc: PolicyDoc, draft: PlanDraft, *, prune: bool
) -> None:
    current = await s.scalars(select(Schedule).where(Schedule.state == ScheduleState.ACTIVE))
    assigned: dict[tuple[str, str, str], Schedule] = {}
    activated: dict[tuple[str, str, str], Schedule] = {}
    for sched in current:
        into = assigned if sched.member_type == MemberType.ASSIGNED else activated
        into.setdefault((sched.principal.email.lower(), sched.role_id, sched.kind), sched)
    for spec in doc.assignments:
        key, name = "/".join(spec.key), f"{spec.principal} {spec.kind} {spec.role}"
        existing = assigned.get(spec.key)
        if existing is None and spec.key in activated:
            # grant_schedule refuses while an activation of the same role runs.
            until = end_text(activated[spec.key].end_at)
            draft.errors.append((spec.line, f"{spec.path}: {spec.principal} has activated "
                                 f"{spec.role} until {until}; remove that activation in chat "
                                 "or wait for it to end, then apply"))
        elif existing is None:
            draft.add(CREATE, "assignment", key, f"{name} {_until(spec.end)}",
                      _grant(spec, draft, replacing=None))
        elif existing.end_at != spec.end:
            draft.add(UPDATE, "assignment", key,
                      f"{name}: end {end_text(existing.end_at)} -> {end_text(spec.end)}",
                      _grant(spec, draft, replacing=existing))
    if not prune:
        return
    listed = {spec.key for spec in doc.assignments}
    for (email, role, kind), sched in sorted(assigned.items()):
        if sched.from_policy and (email, role, kind) not in listed:
            draft.add(REMOVE, "assignment", f"{email}/{role}/{kind}", f"{email} {kind} {role}",
                      _remove(sched, draft))


def _grant(spec: AssignmentSpec, draft: PlanDraft, *, replacing: Schedule | None) -> Step:
    async def step(s: AsyncSession) -> None:
        if replacing is not None:
            await end_schedule(s, actor=draft.actor, schedule=replacing, now=draft.now,
                               policy=True, notify_person=False)
        person = await principal_by_email(s, spec.principal)
        role = await s.get(Role, spec.role)
        assert person is not None and role is not None  # created by earlier steps if new
        try:
            await grant_schedule(s, actor=draft.actor, principal=person, role=role,
                                 kind=spec.kind, end=spec.end, now=draft.now, from_policy=True)
        except PimError as err:  # checked while planning; reaching this is a race or a bug
            raise policy_failure(draft.source, [(spec.line, f"{spec.path}: {err}")]) from err

    return step


def _remove(sched: Schedule, draft: PlanDraft) -> Step:
    async def step(s: AsyncSession) -> None:
        await end_schedule(s, actor=draft.actor, schedule=sched, now=draft.now, policy=True)

    return step


def _until(end: datetime | None) -> str:
    return f"until {end_text(end)}" if end else "permanently"
