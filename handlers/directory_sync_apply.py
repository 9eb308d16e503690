"""Writing a directory sync: principals upserted by email, a batch per transaction.

A batch reads its principals and the holders of the ids it brings in a few statements, then
writes new people, new names, filled-in ids and who was seen, with one audit event per change
(audited in one append per batch). A batch is small enough that SQLite's write lock is free
again within milliseconds for a chat command waiting on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.clock import Clock
from handlers.identity import refuse_link
from handlers.records import SYSTEM_ACTOR, Audited, audit_many
from storage.models import DirectoryPerson, Principal
from storage.uow import UnitOfWork

if TYPE_CHECKING:
    from handlers.directory_sync import Merged

BATCH = 500
ACTOR = f"{SYSTEM_ACTOR}:directory"
CREATED, RENAMED, LEFT, RETURNED = (
    "directory.principal.created",
    "directory.principal.renamed",
    "directory.principal.left",
    "directory.principal.returned",
)
_COLUMNS: tuple[Literal["slack_id", "teams_id"], ...] = ("slack_id", "teams_id")


@dataclass
class SyncReport:
    created: int = 0
    renamed: int = 0
    linked: int = 0
    refused: int = 0
    returned: int = 0
    left: int = 0

    def summary(self) -> str:
        return (
            f"{self.created} new, {self.renamed} renamed, {self.linked} ids filled in, "
            f"{self.refused} refused, {self.returned} back, {self.left} left"
        )


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def apply_people(uow: UnitOfWork, clock: Clock, *, people: dict[str, Merged]) -> SyncReport:
    report = SyncReport()
    for chunk in _chunks(sorted(people)):
        async with uow.transaction() as s:
            events = await _batch(
                s, now=clock.now(), people=[people[e] for e in chunk], report=report
            )
            await audit_many(s, at=clock.now(), events=events)
    return report


async def _batch(
    s: AsyncSession, *, now: datetime, people: list[Merged], report: SyncReport
) -> list[Audited]:
    events: list[Audited] = []
    emails = [p.email for p in people]
    existing = {
        p.email.lower(): p
        for p in await s.scalars(select(Principal).where(func.lower(Principal.email).in_(emails)))
    }
    new = [p for p in people if p.email not in existing]
    if new:
        await s.execute(
            insert(Principal),
            [
                {
                    "email": p.email,
                    "display_name": p.name,
                    "slack_id": None,
                    "teams_id": None,
                    "admin": False,
                    "from_policy": False,
                    "created_at": now,
                }
                for p in new
            ],
        )
        events += [
            Audited(ACTOR, CREATED, p.email, {"name": p.name, "sources": p.sources}) for p in new
        ]
        report.created += len(new)
        existing.update(
            (p.email.lower(), p)
            for p in await s.scalars(
                select(Principal).where(func.lower(Principal.email).in_([p.email for p in new]))
            )
        )
    fresh = {p.email for p in new}
    for person in people:
        principal = existing[person.email]
        if (
            person.email not in fresh
            and not principal.from_policy
            and person.name
            and principal.display_name != person.name
        ):
            # The policy file owns the names it lists; the directory owns the rest.
            events.append(
                Audited(
                    ACTOR, RENAMED, principal.email, {"name": [principal.display_name, person.name]}
                )
            )
            principal.display_name = person.name
            report.renamed += 1
    for column in _COLUMNS:
        events += await _fill_ids(
            s, now=now, column=column, people=people, principals=existing, report=report
        )
    events += await _seen(s, now=now, people=people, principals=existing, report=report)
    return events


async def _fill_ids(
    s: AsyncSession,
    *,
    now: datetime,
    column: Literal["slack_id", "teams_id"],
    people: list[Merged],
    principals: dict[str, Principal],
    report: SyncReport,
) -> list[Audited]:
    """Fill in ids nobody holds; refuse (and tell the admins) any that would rebind."""
    wanted = {getattr(p, column): p for p in people if getattr(p, column)}
    holders = (
        {
            getattr(h, column): h
            for h in await s.scalars(
                select(Principal).where(getattr(Principal, column).in_(list(wanted)))
            )
        }
        if wanted
        else {}
    )
    platform: Literal["slack", "teams"] = "slack" if column == "slack_id" else "teams"
    events: list[Audited] = []
    for user_id, person in wanted.items():
        principal, holder = principals[person.email], holders.get(user_id)
        bound = getattr(principal, column)
        if bound == user_id:
            continue
        if bound is not None or (holder is not None and holder.id != principal.id):
            await refuse_link(
                s,
                now=now,
                person=principal,
                platform=platform,
                user_id=user_id,
                bound=bound,
                holder=holder,
            )
            report.refused += 1
            continue
        setattr(principal, column, user_id)
        events.append(
            Audited(ACTOR, f"principal.{column}_linked", principal.email, {column: user_id})
        )
        report.linked += 1
    await s.flush()
    return events


async def _seen(
    s: AsyncSession,
    *,
    now: datetime,
    people: list[Merged],
    principals: dict[str, Principal],
    report: SyncReport,
) -> list[Audited]:
    ids = {principals[p.email].id: p for p in people}
    known = {
        row.principal_id: row
        for row in await s.execute(
            select(
                DirectoryPerson.principal_id, DirectoryPerson.left_at, DirectoryPerson.sources
            ).where(DirectoryPerson.principal_id.in_(list(ids)))
        )
    }
    fresh = [pid for pid in ids if pid not in known]
    if fresh:
        await s.execute(
            insert(DirectoryPerson),
            [
                {"principal_id": pid, "sources": ids[pid].sources, "seen_at": now, "left_at": None}
                for pid in fresh
            ],
        )
    changed = [
        pid
        for pid, row in known.items()
        if row.left_at is not None or list(row.sources or ()) != ids[pid].sources
    ]
    if changed:
        await s.execute(
            update(DirectoryPerson),
            [
                {"principal_id": pid, "sources": ids[pid].sources, "left_at": None}
                for pid in changed
            ],
        )
    if known:  # one statement for the many who are simply still there
        await s.execute(
            update(DirectoryPerson)
            .where(DirectoryPerson.principal_id.in_(list(known)))
            .values(seen_at=now)
            .execution_options(synchronize_session=False)
        )
    back = [pid for pid, row in known.items() if row.left_at is not None]
    report.returned += len(back)
    return [
        Audited(ACTOR, RETURNED, principals[ids[pid].email].email, {"sources": ids[pid].sources})
        for pid in back
    ]


async def mark_left(uow: UnitOfWork, clock: Clock, *, present: set[str]) -> int:
    """Mark everyone the directory had listed and no longer lists; returns how many."""
    async with uow.read() as s:
        listed = list(
            await s.execute(
                select(DirectoryPerson.principal_id, func.lower(Principal.email))
                .join(Principal, Principal.id == DirectoryPerson.principal_id)
                .where(DirectoryPerson.left_at.is_(None))
            )
        )
    gone = [(pid, email) for pid, email in listed if email not in present]
    for chunk in _chunks(gone):
        async with uow.transaction() as s:
            now = clock.now()
            await s.execute(
                update(DirectoryPerson)
                .where(
                    DirectoryPerson.principal_id.in_([pid for pid, _ in chunk]),
                    DirectoryPerson.left_at.is_(None),
                )
                .values(left_at=now)
                .execution_options(synchronize_session=False)
            )
            await audit_many(
                s,
                at=now,
                events=[
                    Audited(ACTOR, LEFT, email, {"ends": "eligibility through groups"})
                    for _, email in chunk
                ],
            )
    return len(gone)
