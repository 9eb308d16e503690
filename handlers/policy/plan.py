"""Planning a policy: the difference between checked specs and the database, as changes a
person can read, and the work that carries them out (handlers.policy.carry does it in batches).

Principals, admins and roles are planned here; assignments in handlers.policy.plan_assignments,
which builds on the PlanDraft and change wording of this module. The database is read in
chunks of BATCH values, so a file of any size stays within every driver's limit on bound
parameters (SQLite's is 999 in older builds, asyncpg's 32,767).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.durations import format_duration
from handlers.policy.file import AssignmentSpec, PolicyDoc, PrincipalSpec, RoleSpec
from handlers.policy.grants import granted, shown_grants
from handlers.policy.grants import stored as stored_grants
from handlers.reviews.definitions import ReviewSpec
from handlers.settings import RoleSettings, SettingsError
from storage.models import Principal, Role

CREATE, UPDATE, REMOVE = "create", "update", "remove"
_SIGN = {CREATE: "+", UPDATE: "~", REMOVE: "-"}
PAST = {CREATE: "created", UPDATE: "updated", REMOVE: "removed"}
BATCH = 500

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # create / update / remove
    kind: str  # principal / admin / role / assignment / review
    key: str  # email, role id, or email/role/type
    line: str  # what a person reads, e.g. "~ role helpdesk-admin: max_duration 8h -> 4h"
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(slots=True)
class PolicyPlan:
    changes: list[Change] = field(default_factory=list)
    applied: bool = False  # carried out (even when empty), as opposed to a dry run

    def render(self) -> str:
        return "\n".join(c.line for c in self.changes) if self.changes else "No changes."


@dataclass
class Work:
    """What carrying out a plan writes, gathered by kind so each kind goes in batches."""

    # Cleared first, so unique values (Slack ids, role names) can move between two rows.
    release_principals: list[int] = field(default_factory=list)
    release_roles: list[str] = field(default_factory=list)
    new_principals: list[PrincipalSpec] = field(default_factory=list)
    principal_updates: list[tuple[int, PrincipalSpec]] = field(default_factory=list)
    admins: list[tuple[str, bool]] = field(default_factory=list)
    new_roles: list[RoleSpec] = field(default_factory=list)
    role_updates: list[RoleSpec] = field(default_factory=list)
    ends: list[tuple[int, bool]] = field(default_factory=list)  # schedule id, tell the person
    grants: list[AssignmentSpec] = field(default_factory=list)
    reviews: list[ReviewSpec] = field(default_factory=list)  # created or changed
    retired_reviews: list[str] = field(default_factory=list)


@dataclass
class PlanDraft:
    """A plan being built: its changes, the work that carries them out, and what blocks it."""

    source: str
    now: datetime
    changes: list[Change] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    work: Work = field(default_factory=Work)

    @property
    def actor(self) -> str:
        return f"policy:{self.source}"

    def add(self, op: str, kind: str, key: str, shown: str, **details: Any) -> None:
        self.changes.append(Change(op, kind, key, f"{_SIGN[op]} {kind} {shown}", details))


# --- principals and admins -----------------------------------------------------------------


async def plan_principals(s: AsyncSession, doc: PolicyDoc, draft: PlanDraft) -> None:
    emails = [p.email for p in doc.principals]
    existing: dict[str, Any] = {}
    for chunk in chunked(emails):
        found = await s.execute(
            select(
                Principal.id,
                Principal.email,
                Principal.display_name,
                Principal.slack_id,
                Principal.teams_id,
                Principal.admin,
            ).where(func.lower(Principal.email).in_(chunk))
        )
        existing.update((row.email.lower(), row) for row in found)
    listed = set(emails)
    for column in ("slack_id", "teams_id"):
        wanted = {getattr(p, column): p for p in doc.principals if getattr(p, column)}
        for ids in chunked(list(wanted)):
            holders = await s.execute(
                select(Principal.email, getattr(Principal, column)).where(
                    getattr(Principal, column).in_(ids)
                )
            )
            for email, value in holders:
                if email.lower() in listed:
                    continue
                spec = wanted[value]
                draft.errors.append(
                    (
                        spec.line,
                        f"{column} {value} of {spec.email} "
                        f"already belongs to {email}, who is not in this file",
                    )
                )
    for spec in doc.principals:
        current = existing.get(spec.email)
        if current is None:
            draft.add(
                CREATE,
                "principal",
                spec.email,
                f"{spec.email} ({spec.name})",
                name=spec.name,
                slack_id=spec.slack_id,
                teams_id=spec.teams_id,
            )
            draft.work.new_principals.append(spec)
        else:
            # An id the file leaves out is kept: Slack and Teams fill them in by email lookup,
            # and re-applying the file at every start must not undo that.
            spec = replace(
                spec,
                slack_id=spec.slack_id or current.slack_id,
                teams_id=spec.teams_id or current.teams_id,
            )
            diff = _diff(
                {
                    "name": (current.display_name, spec.name),
                    "slack_id": (current.slack_id, spec.slack_id),
                    "teams_id": (current.teams_id, spec.teams_id),
                }
            )
            if diff:
                if current.slack_id != spec.slack_id or current.teams_id != spec.teams_id:
                    draft.work.release_principals.append(current.id)
                draft.add(
                    UPDATE,
                    "principal",
                    spec.email,
                    f"{spec.email}: {_describe(diff)}",
                    **_audited(diff),
                )
                draft.work.principal_updates.append((current.id, spec))
        if spec.admin != (current.admin if current is not None else False):
            draft.add(CREATE if spec.admin else REMOVE, "admin", spec.email, spec.email)
            draft.work.admins.append((spec.email, spec.admin))


# --- roles -----------------------------------------------------------------------------------


async def plan_roles(s: AsyncSession, doc: PolicyDoc, draft: PlanDraft) -> None:
    ids = [r.id for r in doc.roles]
    existing: dict[str, Role] = {}
    for chunk in chunked(ids):
        existing.update((r.id, r) for r in await s.scalars(select(Role).where(Role.id.in_(chunk))))
    by_name = {r.name.lower(): r for r in doc.roles}
    listed = set(ids)
    # Chat finds roles by name case-insensitively, so a clash in case only is a clash too.
    for names in chunked(list(by_name)):
        clashes = await s.execute(
            select(Role.id, Role.display_name).where(func.lower(Role.display_name).in_(names))
        )
        for other_id, other_name in clashes:
            if other_id in listed:
                continue
            spec = by_name[other_name.lower()]
            draft.errors.append(
                (
                    spec.line,
                    f"role {spec.id}: the name {spec.name!r} already "
                    f"belongs to role {other_id}, which is not in this file",
                )
            )
    for spec in doc.roles:
        current = existing.get(spec.id)
        if current is None:
            draft.add(
                CREATE,
                "role",
                spec.id,
                f"{spec.id} ({spec.name}){granted(spec.grants)}",
                name=spec.name,
                description=spec.description,
                settings=spec.settings.to_policy(),
                **_grant_detail(spec),
            )
            draft.work.new_roles.append(spec)
            continue
        diff = _diff(
            {
                "name": (current.display_name, spec.name),
                "description": (current.description, spec.description),
            }
        )
        diff.update(_settings_diff(current.settings, spec.settings))
        diff.update(
            _diff(
                {
                    "grant": (
                        shown_grants(current.grant_targets),
                        shown_grants(stored_grants(spec.grants)),
                    )
                }
            )
        )
        if not diff:
            continue
        if current.display_name != spec.name:
            draft.work.release_roles.append(spec.id)
        draft.add(UPDATE, "role", spec.id, f"{spec.id}: {_describe(diff)}", **_audited(diff))
        draft.work.role_updates.append(spec)


def _grant_detail(spec: RoleSpec) -> dict[str, Any]:
    """A new role's targets, in the plan's details (and so in its audit event)."""
    return {"grant": stored_grants(spec.grants)} if spec.grants else {}


def _settings_diff(stored: dict[str, Any], new: RoleSettings) -> dict[str, tuple[Any, Any]]:
    try:
        old = RoleSettings.from_mapping(stored)
    except SettingsError:
        return {"settings": ("(unreadable)", "(as in the file)")}
    return {
        f.name: (getattr(old, f.name), getattr(new, f.name))
        for f in fields(RoleSettings)
        if getattr(old, f.name) != getattr(new, f.name)
    }


# --- how changes read ------------------------------------------------------------------------


def _diff(pairs: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    return {name: (old, new) for name, (old, new) in pairs.items() if old != new}


def _describe(diff: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{name} {_show(old)} -> {_show(new)}" for name, (old, new) in diff.items())


def _audited(diff: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Audit details: each changed field as [before, after], in JSON-friendly form."""
    return {name: [_plain(old), _plain(new)] for name, (old, new) in diff.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    return list(value) if isinstance(value, tuple) else value


def _show(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}" if value else "{}"
    return f'"{value}"' if " " in str(value) else str(value)


def end_text(end: datetime | None) -> str:
    return end.astimezone(UTC).isoformat().replace("+00:00", "Z") if end else "permanent"
