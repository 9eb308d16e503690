"""Planning a policy: the difference between checked specs and the database, as changes a
person can read, each with the step that carries it out (see handlers.policy.apply).

Principals, admins and roles are planned here; assignments in handlers.policy.plan_assignments,
which builds on the PlanDraft and change wording of this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.directory import principal_by_email
from handlers.durations import format_duration
from handlers.policy.file import PolicyDoc, PrincipalSpec, RoleSpec
from handlers.records import audit
from handlers.settings import RoleSettings, SettingsError
from storage.models import Principal, Role

CREATE, UPDATE, REMOVE = "create", "update", "remove"
_SIGN = {CREATE: "+", UPDATE: "~", REMOVE: "-"}
_PAST = {CREATE: "created", UPDATE: "updated", REMOVE: "removed"}

Step = Callable[[AsyncSession], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # create / update / remove
    kind: str  # principal / admin / role / assignment
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
class PlanDraft:
    """A plan being built: its changes, the steps that carry them out, and what blocks it."""

    source: str
    now: datetime
    changes: list[Change] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Run first, so unique values (Slack ids, role names) can move between two rows.
    release: list[Step] = field(default_factory=list)
    steps: list[tuple[Change, Step]] = field(default_factory=list)

    @property
    def actor(self) -> str:
        return f"policy:{self.source}"

    def add(self, op: str, kind: str, key: str, shown: str, step: Step, **details: Any) -> None:
        change = Change(op, kind, key, f"{_SIGN[op]} {kind} {shown}", details)
        self.changes.append(change)
        self.steps.append((change, step))

    async def carry_out(self, s: AsyncSession) -> None:
        for release in self.release:
            await release(s)
        await s.flush()
        for change, step in self.steps:
            await step(s)
            # grant_schedule and end_schedule write their own audit events.
            if change.kind != "assignment":
                await audit(s, at=self.now, actor=self.actor, target=change.key,
                            action=f"policy.{change.kind}.{_PAST[change.op]}", **change.details)


# --- principals and admins -----------------------------------------------------------------


async def plan_principals(s: AsyncSession, doc: PolicyDoc, draft: PlanDraft) -> None:
    emails = [p.email for p in doc.principals]
    found = await s.scalars(select(Principal).where(func.lower(Principal.email).in_(emails)))
    existing = {p.email.lower(): p for p in found}
    for column in ("slack_id", "teams_id"):
        wanted = {getattr(p, column): p for p in doc.principals if getattr(p, column)}
        if not wanted:
            continue
        holders = await s.scalars(select(Principal).where(
            getattr(Principal, column).in_(list(wanted)),
            func.lower(Principal.email).not_in(emails),
        ))
        for other in holders:
            spec = wanted[getattr(other, column)]
            draft.errors.append((spec.line, f"{column} {getattr(other, column)} of {spec.email} "
                                 f"already belongs to {other.email}, who is not in this file"))
    for spec in doc.principals:
        current = existing.get(spec.email)
        if current is None:
            draft.add(CREATE, "principal", spec.email, f"{spec.email} ({spec.name})",
                      _create_principal(spec, draft.now),
                      name=spec.name, slack_id=spec.slack_id, teams_id=spec.teams_id)
        else:
            # An id the file leaves out is kept: Slack and Teams fill them in by email lookup,
            # and re-applying the file at every start must not undo that.
            spec = replace(spec, slack_id=spec.slack_id or current.slack_id,
                           teams_id=spec.teams_id or current.teams_id)
            diff = _diff({"name": (current.display_name, spec.name),
                          "slack_id": (current.slack_id, spec.slack_id),
                          "teams_id": (current.teams_id, spec.teams_id)})
            if diff:
                if current.slack_id != spec.slack_id or current.teams_id != spec.teams_id:
                    draft.release.append(_release_ids(current))
                draft.add(UPDATE, "principal", spec.email, f"{spec.email}: {_describe(diff)}",
                          _update_principal(current, spec), **_audited(diff))
        if spec.admin != (current.admin if current is not None else False):
            draft.add(CREATE if spec.admin else REMOVE, "admin", spec.email, spec.email,
                      _set_admin(spec.email, spec.admin))


def _create_principal(spec: PrincipalSpec, now: datetime) -> Step:
    async def step(s: AsyncSession) -> None:
        s.add(Principal(email=spec.email, display_name=spec.name, slack_id=spec.slack_id,
                        teams_id=spec.teams_id, admin=False, from_policy=True, created_at=now))
        await s.flush()

    return step


def _release_ids(current: Principal) -> Step:
    async def step(s: AsyncSession) -> None:
        current.slack_id = current.teams_id = None

    return step


def _update_principal(current: Principal, spec: PrincipalSpec) -> Step:
    async def step(s: AsyncSession) -> None:
        current.display_name = spec.name
        current.slack_id, current.teams_id = spec.slack_id, spec.teams_id

    return step


def _set_admin(email: str, admin: bool) -> Step:
    async def step(s: AsyncSession) -> None:
        person = await principal_by_email(s, email)
        assert person is not None  # created by an earlier step of the same plan
        person.admin = admin

    return step


# --- roles -----------------------------------------------------------------------------------


async def plan_roles(s: AsyncSession, doc: PolicyDoc, draft: PlanDraft) -> None:
    ids = [r.id for r in doc.roles]
    existing = {r.id: r for r in await s.scalars(select(Role).where(Role.id.in_(ids)))}
    by_name = {r.name.lower(): r for r in doc.roles}
    # Chat finds roles by name case-insensitively, so a clash in case only is a clash too.
    clashes = await s.scalars(select(Role).where(
        func.lower(Role.display_name).in_(list(by_name)), Role.id.not_in(ids)))
    for other in clashes:
        spec = by_name[other.display_name.lower()]
        draft.errors.append((spec.line, f"role {spec.id}: the name {spec.name!r} already belongs "
                             f"to role {other.id}, which is not in this file"))
    for spec in doc.roles:
        current = existing.get(spec.id)
        if current is None:
            draft.add(CREATE, "role", spec.id, f"{spec.id} ({spec.name})",
                      _create_role(spec, draft.now), name=spec.name,
                      description=spec.description, settings=spec.settings.to_policy())
            continue
        diff = _diff({"name": (current.display_name, spec.name),
                      "description": (current.description, spec.description)})
        diff.update(_settings_diff(current.settings, spec.settings))
        if not diff:
            continue
        if current.display_name != spec.name:
            draft.release.append(_release_name(current))
        draft.add(UPDATE, "role", spec.id, f"{spec.id}: {_describe(diff)}",
                  _update_role(current, spec), **_audited(diff))


def _settings_diff(stored: dict[str, Any], new: RoleSettings) -> dict[str, tuple[Any, Any]]:
    try:
        old = RoleSettings.from_mapping(stored)
    except SettingsError:
        return {"settings": ("(unreadable)", "(as in the file)")}
    return {f.name: (getattr(old, f.name), getattr(new, f.name))
            for f in fields(RoleSettings) if getattr(old, f.name) != getattr(new, f.name)}


def _create_role(spec: RoleSpec, now: datetime) -> Step:
    async def step(s: AsyncSession) -> None:
        s.add(Role(id=spec.id, display_name=spec.name, description=spec.description,
                   settings=spec.settings.to_mapping(), from_policy=True, created_at=now))
        await s.flush()

    return step


def _release_name(current: Role) -> Step:
    async def step(s: AsyncSession) -> None:
        current.display_name = f"~renaming~{current.id}"  # role ids are unique, so is this

    return step


def _update_role(current: Role, spec: RoleSpec) -> Step:
    async def step(s: AsyncSession) -> None:
        current.display_name, current.description = spec.name, spec.description
        current.settings = spec.settings.to_mapping()

    return step


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

