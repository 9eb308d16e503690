"""What to say when a typed role name matches no role: the closest name, and the roles this
person can use (never every role of the installation: they cannot ask for those)."""

from __future__ import annotations

from difflib import get_close_matches

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Role, Schedule
from vocab.states import ScheduleState

_LISTED = 20


async def unknown_role_message(session: AsyncSession, wanted: str, *, usable_by: int | None) -> str:
    stmt = select(Role.id, Role.display_name).order_by(Role.id)
    if usable_by is not None:
        stmt = stmt.where(
            Role.id.in_(
                select(Schedule.role_id).where(
                    Schedule.principal_id == usable_by, Schedule.state == ScheduleState.ACTIVE
                )
            )
        )
    known = [(row.id, row.display_name) for row in await session.execute(stmt.limit(500))]
    head = f"No role called '{wanted}'."
    if guess := closest(wanted, known):
        return f"{head} Did you mean {guess}?"
    ids = [rid for rid, _ in known[:_LISTED]]
    if usable_by is None:
        return f"{head} Roles: {', '.join(ids) if ids else 'none yet'}."
    return (
        f"{head} Your roles: {', '.join(ids)}."
        if ids
        else f"{head} You have no roles yet; an admin can make you eligible."
    )


def closest(wanted: str, known: list[tuple[str, str]]) -> str | None:
    """The one role id that `wanted` starts or nearly spells (by id or display name)."""
    low = wanted.lower()
    starts = {
        rid for rid, name in known if rid.lower().startswith(low) or name.lower().startswith(low)
    }
    if len(starts) == 1:
        return starts.pop()
    if starts:
        return None  # ambiguous: the list says more than one guess would
    names = {name.lower(): rid for rid, name in known} | {rid.lower(): rid for rid, _ in known}
    found = get_close_matches(low, list(names), n=1, cutoff=0.75)
    return names[found[0]] if found else None
