"""Planning a policy's assignments: which Assigned schedules to grant, move or (with --prune)
end so the database matches the file, as changes in the PlanDraft of handlers.policy.plan."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.policy.file import PolicyDoc
from handlers.policy.plan import CREATE, REMOVE, UPDATE, PlanDraft, end_text
from storage.models import Principal, Schedule
from vocab.states import MemberType, ScheduleState

__all__ = ["plan_assignments"]


async def plan_assignments(
    s: AsyncSession, doc: PolicyDoc, draft: PlanDraft, *, prune: bool
) -> None:
    # Columns, not objects: a policy of 100,000 assignments is compared with as many rows.
    current = await s.execute(
        select(
            Schedule.id,
            func.lower(Principal.email),
            Schedule.role_id,
            Schedule.kind,
            Schedule.member_type,
            Schedule.end_at,
            Schedule.from_policy,
        )
        .join(Principal, Schedule.principal_id == Principal.id)
        .where(Schedule.state == ScheduleState.ACTIVE)
        .order_by(Schedule.id)
    )
    assigned: dict[tuple[str, str, str], Any] = {}
    activated: dict[tuple[str, str, str], Any] = {}
    for row in current:
        into = assigned if row.member_type == MemberType.ASSIGNED else activated
        into.setdefault((row[1], row.role_id, row.kind), row)
    for spec in doc.assignments:
        key, name = "/".join(spec.key), f"{spec.principal} {spec.kind} {spec.role}"
        existing = assigned.get(spec.key)
        if existing is None and spec.key in activated:
            # grant_schedule refuses while an activation of the same role runs.
            until = end_text(activated[spec.key].end_at)
            draft.errors.append(
                (
                    spec.line,
                    f"{spec.path}: {spec.principal} has activated "
                    f"{spec.role} until {until}; remove that activation in chat "
                    "or wait for it to end, then apply",
                )
            )
        elif existing is None:
            draft.add(CREATE, "assignment", key, f"{name} {_until(spec.end)}")
            draft.work.grants.append(spec)
        elif existing.end_at != spec.end:
            draft.add(
                UPDATE,
                "assignment",
                key,
                f"{name}: end {end_text(existing.end_at)} -> {end_text(spec.end)}",
            )
            # One message to the person for a moved end: "assigned", not "removed" first.
            draft.work.ends.append((existing.id, False))
            draft.work.grants.append(spec)
    if not prune:
        return
    listed = {spec.key for spec in doc.assignments}
    for (email, role, kind), row in sorted(assigned.items()):
        if row.from_policy and (email, role, kind) not in listed:
            draft.add(REMOVE, "assignment", f"{email}/{role}/{kind}", f"{email} {kind} {role}")
            draft.work.ends.append((row.id, True))


def _until(end: datetime | None) -> str:
    return f"until {end_text(end)}" if end else "permanently"
