"""Eligibility through an Entra group: members are eligible while they are members.

Membership is asked at request time (and when a person lists their roles), through a
`MembershipSource` the composition root builds from the directory readers, and remembered for
a short while (TTL, bounded size): a person who leaves the group loses the role within a
minute, and a burst of `/pim roles` costs one lookup per group, not one per command. A
lookup that fails counts as "not a member": when the directory cannot say, nobody gains
access. Someone the directory sync has seen leave is not eligible through any group, whatever
a cached answer says (handlers.directory_sync).

The lookups happen before the use case's transaction, never inside it: a slow directory must
not hold the database's write lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cachetools import TTLCache
from sqlalchemy import Connection, bindparam, func, or_, select

from handlers.grants.provider import Person
from storage.models import DirectoryPerson, GroupAssignment, Principal, Role
from storage.uow import UnitOfWork

__all__ = ["GroupMembership", "GroupWindow", "MembershipSource"]

logger = logging.getLogger(__name__)

TTL_SECONDS = 60.0
MAX_ENTRIES = 10_000


class MembershipSource(Protocol):
    """Is this person a (transitive) member of this Entra group right now?"""

    async def is_member(self, group_id: str, person: Person) -> bool: ...


@dataclass(frozen=True, slots=True)
class GroupWindow:
    """An eligibility a person holds through a group they are a member of."""

    group_id: str
    role_id: str
    start_at: datetime
    end_at: datetime | None


_ME = (
    select(
        Principal.email,
        Principal.display_name,
        Principal.slack_id,
        Principal.teams_id,
        DirectoryPerson.left_at,
    )
    .outerjoin(DirectoryPerson, DirectoryPerson.principal_id == Principal.id)
    .where(func.lower(Principal.email) == bindparam("email"))
)
_ASSIGNED = select(
    GroupAssignment.group_id,
    GroupAssignment.role_id,
    GroupAssignment.start_at,
    GroupAssignment.end_at,
).order_by(GroupAssignment.id)


class GroupMembership:
    """A MembershipSource with a short memory, and the engine's questions about groups."""

    def __init__(
        self,
        source: MembershipSource,
        *,
        ttl: float = TTL_SECONDS,
        maxsize: int = MAX_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._cache: TTLCache[tuple[str, str], bool] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=timer
        )

    async def is_member(self, group_id: str, person: Person) -> bool:
        key = (group_id, person.email.lower())
        known = self._cache.get(key)
        if known is not None:
            return known
        try:
            answer = bool(await self.source.is_member(group_id, person))
        except Exception:  # the directory is away: nobody gains access meanwhile
            logger.warning(
                "membership of %s in group %s could not be checked",
                person.email,
                group_id,
                exc_info=True,
            )
            return False  # not remembered: the next request asks again
        self._cache[key] = answer
        return answer

    async def windows(
        self, uow: UnitOfWork, *, actor: str, role: str | None = None
    ) -> list[GroupWindow]:
        """The group eligibilities `actor` holds now, for the role named `role` (its id or
        name, as a person types it) or for every role."""
        found = await uow.run_read(lambda conn: _candidates(conn, actor, role))
        if found is None:
            return []
        person, rows = found
        members = {g: await self.is_member(g, person) for g in sorted({r.group_id for r in rows})}
        return [r for r in rows if members[r.group_id]]


def _candidates(
    conn: Connection, actor: str, role: str | None
) -> tuple[Person, list[GroupWindow]] | None:
    me = conn.execute(_ME, {"email": actor.strip().lower()}).first()
    if me is None or me.left_at is not None:
        return None
    stmt = _ASSIGNED
    if role is not None:
        wanted = role.strip().strip("\"'").strip().lower()
        stmt = stmt.join(Role, Role.id == GroupAssignment.role_id).where(
            or_(func.lower(Role.id) == wanted, func.lower(Role.display_name) == wanted)
        )
    rows = [GroupWindow(*row) for row in conn.execute(stmt)]
    if not rows:
        return None
    return Person(
        email=me.email, name=me.display_name, slack_id=me.slack_id, teams_id=me.teams_id
    ), rows
