"""The policy file's `reviews:` section: checking it by line, planning it against the
database, carrying it out, and exporting it.

A definition the file lists is created or updated to exactly what the file says; a new or
moved first instance gets its opening timer (handlers.reviews.schedule). One the file no
longer lists stays, unless `--prune`, which retires it (its open instance runs to its end).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.durations import DurationError, parse_duration
from handlers.policy.checker import Checker, shown
from handlers.policy.yaml_lines import LineList, LineMap
from handlers.reviews.definitions import (
    ON_NO_RESPONSE,
    RECURRENCES,
    REVIEWER_KINDS,
    SCOPES,
    ReviewSpec,
)
from handlers.reviews.schedule import retire_definition, schedule_next
from storage.models import ReviewDefinition

_KEYS = (
    "id",
    "name",
    "roles",
    "assignments",
    "reviewers",
    "recurrence",
    "start",
    "duration",
    "on_no_response",
    "auto_apply",
    "require_reason",
)
# Short enough that a timer key (`review-open:<id>:<number>:<epoch>`) fits its column.
_ID = re.compile(r"[a-z0-9][a-z0-9\-_.]{0,59}")


def check_reviews(
    check: Checker, root: LineMap, *, roles: set[str], emails: set[str]
) -> list[ReviewSpec]:
    """Every `reviews:` entry as a ReviewSpec; mistakes go to the checker with their line."""
    out: list[ReviewSpec] = []
    seen: dict[str, int] = {}
    for path, item in check.items(root, "reviews"):
        check.keys(item, path, _KEYS)
        spec = _review(check, item, path, roles=roles, emails=emails)
        if spec is None:
            continue
        if spec.id in seen:
            check.fail(
                item.lines["id"],
                f"{path}.id",
                f"{spec.id} is listed twice (first at line {seen[spec.id]})",
            )
            continue
        seen[spec.id] = item.line
        out.append(spec)
    return out


def _review(
    check: Checker, item: LineMap, path: str, *, roles: set[str], emails: set[str]
) -> ReviewSpec | None:
    errors = len(check.errors)
    review_id = check.text(item, "id", path)
    if review_id is not None and not _ID.fullmatch(review_id):
        check.fail(
            item.lines["id"],
            f"{path}.id",
            f"{shown(review_id)} is not a review id: "
            "use lower-case letters, digits, - _ . (at most 60)",
        )
    name = check.text(item, "name", path)
    scope = _word(check, item, path, "roles", None)
    role_ids: tuple[str, ...] | None = None
    if scope != "all":
        role_ids = _names(check, item, path, "roles", roles, "roles", required=True)
    kind = _word(check, item, path, "assignments", SCOPES, default=SCOPES[0])
    reviewers: str | tuple[str, ...] | None = _word(check, item, path, "reviewers", None)
    if reviewers is None or not isinstance(item.get("reviewers"), str):
        reviewers = (
            _names(check, item, path, "reviewers", emails, "principals", lower=True) or "approvers"
        )
    elif reviewers not in REVIEWER_KINDS:
        check.fail(
            item.lines["reviewers"],
            f"{path}.reviewers",
            f"must be approvers, admins, self or a list of emails, not {shown(reviewers)}",
        )
    recurrence = _word(check, item, path, "recurrence", tuple(RECURRENCES), default="once")
    start = _start(check, item, path)
    duration = _duration(check, item, path)
    on_no = _word(check, item, path, "on_no_response", ON_NO_RESPONSE, default=ON_NO_RESPONSE[0])
    flags = {
        key: _flag(check, item, path, key, default)
        for key, default in (("auto_apply", True), ("require_reason", False))
    }
    if (
        len(check.errors) > errors
        or review_id is None
        or name is None
        or start is None
        or duration is None
    ):
        return None
    return ReviewSpec(
        id=review_id,
        name=name,
        roles=role_ids,
        assignments=str(kind),
        reviewers=reviewers,
        recurrence=str(recurrence),
        start=start,
        duration=duration,
        on_no_response=str(on_no),
        **flags,
    )


def _word(
    check: Checker,
    item: LineMap,
    path: str,
    key: str,
    allowed: tuple[str, ...] | None,
    default: str | None = None,
) -> str | None:
    value = item.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        if allowed is not None:
            check.fail(item.lines[key], f"{path}.{key}", f"must be one of {', '.join(allowed)}")
        return None
    word = value.strip().lower()
    if allowed is not None and word not in allowed:
        check.fail(
            item.lines[key],
            f"{path}.{key}",
            f"must be one of {', '.join(allowed)}, not {shown(value)}",
        )
        return None
    return word


def _names(
    check: Checker,
    item: LineMap,
    path: str,
    key: str,
    known: set[str],
    where: str,
    *,
    required: bool = False,
    lower: bool = False,
) -> tuple[str, ...]:
    value, line = item.get(key), item.lines.get(key, item.line)
    if value is None:
        if required:
            check.fail(line, path, f"{key} is required (a list, or all)")
        return ()
    if not isinstance(value, LineList) or not value:
        check.fail(
            line,
            f"{path}.{key}",
            "must be a non-empty list" + (" or all" if key == "roles" else ""),
        )
        return ()
    out: list[str] = []
    for index, raw in enumerate(value):
        name = raw.strip().lower() if lower and isinstance(raw, str) else raw
        if not isinstance(name, str) or name not in known:
            check.fail(
                value.lines[index],
                f"{path}.{key}[{index}]",
                f"{shown(raw)} is not listed under {where}",
            )
        elif name not in out:
            out.append(name)
    return tuple(out)


def _start(check: Checker, item: LineMap, path: str) -> date | None:
    value = item.get("start")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        pass
    if value is None:
        check.fail(item.line, path, "start is required (the first instance's day, e.g. 2027-01-04)")
    else:
        check.fail(
            item.lines["start"],
            f"{path}.start",
            f"{shown(value)} is not a date; use e.g. 2027-01-04",
        )
    return None


def _duration(check: Checker, item: LineMap, path: str) -> Any:
    value = item.get("duration")
    if value is None:
        check.fail(item.line, path, "duration is required, e.g. 14d")
        return None
    try:
        return parse_duration(str(value))
    except DurationError as err:
        check.fail(item.lines["duration"], f"{path}.duration", str(err))
        return None


def _flag(check: Checker, item: LineMap, path: str, key: str, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        check.fail(item.lines[key], f"{path}.{key}", f"must be true or false, not {shown(value)}")
        return default
    return value


# --- planning and carrying out -----------------------------------------------------------------


async def plan_reviews(
    s: AsyncSession, specs: list[ReviewSpec], draft: Any, *, prune: bool
) -> None:
    """Add the review changes to the draft (a handlers.policy.plan.PlanDraft)."""
    existing = {d.id: d for d in await s.scalars(select(ReviewDefinition))}
    for spec in specs:
        current = existing.get(spec.id)
        wanted = spec.to_mapping()
        if current is None or not current.active:
            draft.add("create", "review", spec.id, f"{spec.id} ({spec.name})", **wanted)
        elif current.spec != wanted:
            diff = {
                k: [current.spec.get(k), v] for k, v in wanted.items() if current.spec.get(k) != v
            }
            shown_diff = "; ".join(f"{k} {old} -> {new}" for k, (old, new) in diff.items())
            draft.add("update", "review", spec.id, f"{spec.id}: {shown_diff}", **diff)
        else:
            continue
        draft.work.reviews.append(spec)
    if prune:
        listed = {spec.id for spec in specs}
        for gone in sorted(set(existing) - listed):
            if existing[gone].active:
                draft.add("remove", "review", gone, gone)
                draft.work.retired_reviews.append(gone)


async def carry_reviews(s: AsyncSession, draft: Any) -> None:
    now = draft.now
    for spec in draft.work.reviews:
        row = await s.get(ReviewDefinition, spec.id)
        if row is None:
            row = ReviewDefinition(id=spec.id, created_at=now)
            s.add(row)
        row.name, row.spec, row.active, row.updated_at = spec.name, spec.to_mapping(), True, now
        await s.flush()
        await schedule_next(s, spec=spec, now=now, replace=True)
    for review_id in draft.work.retired_reviews:
        await s.execute(
            update(ReviewDefinition)
            .where(ReviewDefinition.id == review_id)
            .values(active=False, updated_at=now)
        )
        await retire_definition(s, review_id=review_id, now=now)


async def export_reviews(s: AsyncSession) -> list[dict[str, Any]]:
    rows = await s.scalars(
        select(ReviewDefinition)
        .where(ReviewDefinition.active.is_(True))
        .order_by(ReviewDefinition.id)
    )
    return [ReviewSpec.from_mapping(r.spec).to_mapping() for r in rows]
