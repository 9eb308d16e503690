"""The policy's people from the directory: `directory:` sources and assignments to groups.

```yaml
directory:
  - {entra_group: 0b6f3c1e-…}      # members of this group become principals
  - {slack: workspace}             # everyone in the installed Slack workspace
assignments:
  - {group: 0b6f3c1e-…, role: helpdesk-admin, type: eligible}
```
A file without `directory:` leaves the sources as they are; `directory: []` removes them.
A group can only be made eligible (its members activate for themselves); its assignment is
planned, applied, pruned and exported like a person's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.policy.checker import Checker, shown
from handlers.policy.yaml_lines import LineList, LineMap
from storage.models import DirectorySource, GroupAssignment
from vocab.states import ScheduleKind

__all__ = [
    "DirectorySpec",
    "GroupAssignmentSpec",
    "carry_directory",
    "export_directory",
    "group_assignment",
    "parse_directory",
    "plan_directory",
]

GROUP_KEYS = ("group", "role", "type", "end")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
SOURCE, GROUP = "directory", "group_assignment"


@dataclass(frozen=True, slots=True)
class DirectorySpec:
    kind: str  # entra_group / slack
    ref: str
    line: int


@dataclass(frozen=True, slots=True)
class GroupAssignmentSpec:
    group: str
    role: str
    end: datetime | None
    line: int


def parse_directory(check: Checker, root: LineMap) -> list[DirectorySpec] | None:
    """The sources, or None when the file has no `directory:` (leave them alone)."""
    if "directory" not in root:
        return None
    value, line = root.get("directory"), root.lines.get("directory", root.line)
    if value is None:
        return []
    items = [value] if isinstance(value, LineMap) else value
    if not isinstance(items, LineList | list):
        check.fail(
            line,
            "directory",
            "must be a list of sources, e.g. "
            "[{entra_group: <group object id>}, {slack: workspace}]",
        )
        return []
    out: list[DirectorySpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"directory[{index}]" if isinstance(value, LineList) else "directory"
        where = value.lines[index] if isinstance(value, LineList) else line
        spec = _source(check, item, path, where)
        if spec is not None:
            check.unique(seen, f"{spec.kind}:{spec.ref}", spec.line, path)
            out.append(spec)
    return out


def _source(check: Checker, item: Any, path: str, line: int) -> DirectorySpec | None:
    if not isinstance(item, LineMap) or len(item) != 1:
        check.fail(
            line, path, "must be one of {entra_group: <group object id>} or {slack: workspace}"
        )
        return None
    kind, ref = next(iter(item.items()))
    line = item.lines.get(kind, line)
    if kind == "entra_group":
        if isinstance(ref, str) and _GUID.fullmatch(ref.strip()):
            return DirectorySpec("entra_group", ref.strip().lower(), line)
        check.fail(
            line,
            f"{path}.entra_group",
            f"{shown(ref)} is not a group object id "
            "(a GUID, e.g. 0b6f3c1e-5d2a-4c1b-9e8f-1a2b3c4d5e6f)",
        )
    elif kind == "slack":
        if ref == "workspace":
            return DirectorySpec("slack", "workspace", line)
        check.fail(line, f"{path}.slack", f"must be workspace, not {shown(ref)}")
    else:
        check.fail(line, f"{path}.{kind}", "unknown source (expected entra_group or slack)")
    return None


def group_assignment(
    check: Checker,
    item: LineMap,
    path: str,
    *,
    roles: Mapping[str, Any],
    end: datetime | None,
    end_ok: bool,
) -> GroupAssignmentSpec | None:
    """One `assignments:` item that names a group. `roles`: the file's role specs by id
    (None for a broken one); `end`, `end_ok`: the item's end, read as a person's is."""
    check.keys(item, path, GROUP_KEYS)
    role_id = check.text(item, "role", path)
    if role_id is not None and role_id not in roles:
        check.fail(item.lines["role"], f"{path}.role", f"{role_id} is not listed under roles")
    kind = check.text(item, "type", path)
    role = roles.get(role_id or "")
    role_ok = role_id in roles and end_ok
    permanent_ok = role is None or role.settings.allow_permanent_eligible
    group = check.text(item, "group", path)
    line = item.lines.get("group", item.line)
    if group is not None and not _GUID.fullmatch(group):
        check.fail(line, f"{path}.group", f"{shown(group)} is not a group object id (a GUID)")
        group = None
    if kind is not None and kind != ScheduleKind.ELIGIBLE:
        check.fail(
            item.lines.get("type", line),
            f"{path}.type",
            "a group can only be made eligible: its members activate the role themselves",
        )
        return None
    if group is None or not role_ok or kind is None:
        return None
    if end is None and not permanent_ok:
        check.fail(
            item.line,
            path,
            f"{item['role']} does not allow permanent eligible assignments; give an end date",
        )
        return None
    return GroupAssignmentSpec(group.lower(), str(item["role"]), end, item.line)


def unique_groups(check: Checker, specs: list[GroupAssignmentSpec]) -> list[GroupAssignmentSpec]:
    seen: dict[tuple[str, str], int] = {}
    out = []
    for spec in specs:
        key = (spec.group, spec.role)
        if key in seen:
            check.fail(
                spec.line,
                "assignments",
                f"group {spec.group} eligible {spec.role} is "
                f"listed twice (first at line {seen[key]})",
            )
            continue
        seen[key] = spec.line
        out.append(spec)
    return out


# --- plan and carry out ------------------------------------------------------------------------


async def plan_directory(
    s: AsyncSession,
    *,
    sources: list[DirectorySpec] | None,
    groups: list[GroupAssignmentSpec],
    draft: Any,
    prune: bool,
) -> None:
    """Changes of kind `directory` and `group_assignment` in the draft (their details carry
    what handlers.policy.directory.carry_directory writes)."""
    if sources is not None:
        current = {(r.kind, r.ref) for r in await s.scalars(select(DirectorySource))}
        wanted = {(spec.kind, spec.ref) for spec in sources}
        for kind, ref in sorted(wanted - current):
            draft.add("create", SOURCE, f"{kind}:{ref}", f"{kind}: {ref}", source=[kind, ref])
        for kind, ref in sorted(current - wanted):
            draft.add("remove", SOURCE, f"{kind}:{ref}", f"{kind}: {ref}", source=[kind, ref])
    rows = {(g.group_id, g.role_id): g for g in await s.scalars(select(GroupAssignment))}
    for spec in groups:
        key, shown_as = f"{spec.group}/{spec.role}", f"group {spec.group} eligible {spec.role}"
        existing = rows.get((spec.group, spec.role))
        end = _text(spec.end)
        if existing is None:
            draft.add(
                "create",
                GROUP,
                key,
                f"{shown_as} {_until(spec.end)}",
                group=spec.group,
                role=spec.role,
                end=end,
            )
        elif existing.end_at != spec.end:
            draft.add(
                "update",
                GROUP,
                key,
                f"{shown_as}: end {_text(existing.end_at) or 'permanent'} -> {end or 'permanent'}",
                group=spec.group,
                role=spec.role,
                end=end,
            )
    if prune:
        listed = {(spec.group, spec.role) for spec in groups}
        for (group, role), row in sorted(rows.items()):
            if row.from_policy and (group, role) not in listed:
                draft.add(
                    "remove",
                    GROUP,
                    f"{group}/{role}",
                    f"group {group} eligible {role}",
                    group=group,
                    role=role,
                )


async def carry_directory(s: AsyncSession, *, changes: list[Any], now: datetime) -> None:
    for change in changes:
        d = change.details
        if change.kind == SOURCE and change.op == "create":
            s.add(DirectorySource(kind=d["source"][0], ref=d["source"][1], created_at=now))
        elif change.kind == SOURCE and change.op == "remove":
            await s.execute(
                delete(DirectorySource).where(
                    DirectorySource.kind == d["source"][0], DirectorySource.ref == d["source"][1]
                )
            )
        elif change.kind == GROUP and change.op == "create":
            s.add(
                GroupAssignment(
                    group_id=d["group"],
                    role_id=d["role"],
                    start_at=now,
                    end_at=_parse(d["end"]),
                    from_policy=True,
                    created_at=now,
                )
            )
        elif change.kind == GROUP and change.op == "update":
            await s.execute(
                update(GroupAssignment)
                .where(GroupAssignment.group_id == d["group"], GroupAssignment.role_id == d["role"])
                .values(end_at=_parse(d["end"]), from_policy=True)
            )
        elif change.kind == GROUP:
            await s.execute(
                delete(GroupAssignment).where(
                    GroupAssignment.group_id == d["group"], GroupAssignment.role_id == d["role"]
                )
            )
    await s.flush()


async def export_directory(s: AsyncSession) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The `directory:` list and the group assignments, as a policy file spells them."""
    sources = [
        {r.kind: r.ref}
        for r in await s.scalars(select(DirectorySource).order_by(DirectorySource.id))
    ]
    groups = []
    for g in await s.scalars(
        select(GroupAssignment).order_by(GroupAssignment.group_id, GroupAssignment.role_id)
    ):
        item: dict[str, Any] = {"group": g.group_id, "role": g.role_id, "type": "eligible"}
        if g.end_at is not None:
            item["end"] = _text(g.end_at)
        groups.append(item)
    return sources, groups


def _text(end: datetime | None) -> str | None:
    return end.isoformat().replace("+00:00", "Z") if end else None


def _parse(end: str | None) -> datetime | None:
    return datetime.fromisoformat(end.replace("Z", "+00:00")) if end else None


def _until(end: datetime | None) -> str:
    return f"until {_text(end)}" if end else "permanently"
