"""Policy as code: `pim-bot policy apply FILE [--dry-run] [--prune]` and
`pim-bot policy export`.

The file is the source of truth for what it lists: a listed principal gets exactly the name,
Slack id, Teams id and admin flag the file gives (an omitted id is cleared); a listed role gets
exactly its name, description and settings (omitted settings take the defaults). Principals and
roles the file does not list are left alone: this version never deletes people or roles.
`prune` removes only current Assigned schedules that a policy made and the file no longer
lists: never activations, never assignments an admin made in chat. An assignment the file
lists that an admin already made in chat is left as it is, so it keeps its origin.

Reading and checking the file lives in handlers.policy.file, the diff in handlers.policy.plan
(assignments: handlers.policy.plan_assignments), writing it in handlers.policy.carry.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql_text

from handlers.clock import Clock
from handlers.policy.carry import carry_out
from handlers.policy.directory import carry_directory, export_directory, plan_directory
from handlers.policy.file import parse_policy, policy_failure
from handlers.policy.limits import DEFAULT_MAX_BYTES
from handlers.policy.plan import (
    Change,
    PlanDraft,
    PolicyPlan,
    end_text,
    plan_principals,
    plan_roles,
)
from handlers.policy.plan_assignments import plan_assignments
from handlers.policy.planner import MANY, custom_plans, refresh_statistics
from handlers.policy.reviews_section import export_reviews, plan_reviews
from handlers.policy.yaml_lines import dump_yaml
from handlers.settings import RoleSettings
from storage.models import Principal, Role, Schedule
from storage.uow import UnitOfWork
from vocab.states import MemberType, ScheduleState

__all__ = ["Change", "PolicyPlan", "apply_policy", "export_policy"]

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process sharing the database.
_POLICY_LOCK_KEY = 7_244_614


async def apply_policy(
    uow: UnitOfWork,
    clock: Clock,
    *,
    text: str,
    source: str = "policy.yaml",
    dry_run: bool = False,
    prune: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PolicyPlan:
    """Check the whole file, plan, and (unless dry_run) carry out the plan in one transaction.

    Raises PolicyError listing every problem by line; then nothing has changed. A file past a
    limit (over max_bytes, aliases, nesting, long strings) is refused at its first excess.
    Each change is audited with actor `policy:<source>`.
    """
    with _no_cycle_collection():
        return await _apply(
            uow, clock, text=text, source=source, dry_run=dry_run, prune=prune, max_bytes=max_bytes
        )


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector walks every live object each time it runs in full, and it
    runs more often the more objects are made: a large file's million values, made while
    the file's million others are alive, cost it minutes (time growing with the square of
    the file). Nothing here makes cycles worth collecting early; it resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _apply(
    uow: UnitOfWork,
    clock: Clock,
    *,
    text: str,
    source: str,
    dry_run: bool,
    prune: bool,
    max_bytes: int,
) -> PolicyPlan:
    now = clock.now()
    doc = parse_policy(text, source=source, now=now, max_bytes=max_bytes)
    async with uow.transaction() as s:
        if uow.dialect == "postgresql":
            # Replicas applying PIM_POLICY at start-up take turns instead of racing to create.
            await s.execute(sql_text("SELECT pg_advisory_xact_lock(:k)"), {"k": _POLICY_LOCK_KEY})
        draft = PlanDraft(source=source, now=now)
        async with custom_plans(s):
            await plan_principals(s, doc, draft)
            await plan_roles(s, doc, draft)
            await plan_assignments(s, doc, draft, prune=prune)
            await plan_reviews(s, doc.reviews, draft, prune=prune)
            await plan_directory(
                s, sources=doc.directory, groups=doc.group_assignments, draft=draft, prune=prune
            )
        if draft.errors:
            raise policy_failure(source, draft.errors)
        if not dry_run:
            await carry_out(s, draft)
            await carry_directory(s, changes=draft.changes, now=now)
            if len(draft.changes) >= MANY:
                await refresh_statistics(s)
    logger.info(
        "policy %s: %d change(s)%s", source, len(draft.changes), " (dry run)" if dry_run else ""
    )
    return PolicyPlan(draft.changes, applied=not dry_run)


async def export_policy(uow: UnitOfWork) -> str:
    """The database as a policy file. Applied to an empty database it recreates the principals,
    admins, roles and current Assigned schedules (policy-made and admin-made alike); applied
    to the same database it plans no change. Activations are not exported: they are requests."""
    async with uow.transaction() as s:
        people = list(await s.scalars(select(Principal).order_by(Principal.email)))
        roles = list(await s.scalars(select(Role).order_by(Role.id)))
        schedules = list(
            await s.scalars(
                select(Schedule).where(
                    Schedule.state == ScheduleState.ACTIVE,
                    Schedule.member_type == MemberType.ASSIGNED,
                )
            )
        )
        reviews = await export_reviews(s)
        sources, groups = await export_directory(s)
    doc: dict[str, Any] = {"admins": [p.email for p in people if p.admin], "principals": []}
    for p in people:
        entry = {"email": p.email, "name": p.display_name or p.email}
        entry.update({k: v for k, v in (("slack_id", p.slack_id), ("teams_id", p.teams_id)) if v})
        doc["principals"].append(entry)
    doc["roles"] = []
    for r in roles:
        role: dict[str, Any] = {"id": r.id, "name": r.display_name}
        if r.description:
            role["description"] = r.description
        settings = RoleSettings.from_mapping(r.settings).to_policy()
        if settings:
            role["settings"] = settings
        if r.grant_targets:
            role["grant"] = r.grant_targets
        doc["roles"].append(role)
    doc["assignments"] = []
    for sched in sorted(schedules, key=lambda x: (x.principal.email, x.role_id, x.kind)):
        item: dict[str, Any] = {
            "principal": sched.principal.email,
            "role": sched.role_id,
            "type": sched.kind,
        }
        if sched.end_at is not None:
            # As text: PyYAML would tag a timestamp inside {...} with !!timestamp.
            item["end"] = end_text(sched.end_at)
        doc["assignments"].append(item)
    doc["assignments"] += groups
    if sources:
        doc["directory"] = sources
    if reviews:
        doc["reviews"] = reviews
    return "# pim-bot policy, exported: `pim-bot policy apply FILE` recreates it\n" + dump_yaml(doc)
