"""People from the directory: the policy's `directory:` sources, read on a schedule.

Each source (an Entra group, the Slack workspace) is read through a `PeopleSource` the
composition root builds from its readers; the engine never talks to Graph or Slack itself.
The sync reads every source first, outside any transaction, and writes nothing unless all of
them answered: a source that failed must not look like everyone leaving. Then it upserts
principals by email in batches (handlers.directory_sync_apply), each batch one transaction
with its audit events.

Identity binding holds here as in chat: the sync fills in a Slack or Teams id nobody holds,
and never replaces one; a conflict is refused, audited `principal.link_refused`, and the
admins are told.

Someone no source lists any more is not deleted: the principal, its bindings and history
stay, and it is marked as having left, which ends what the directory gave it (eligibility
through a group: handlers.group_eligibility). Assignments an admin or the policy made to that
person by email are theirs to end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select

from handlers.clock import Clock
from handlers.directory_sync_apply import SyncReport, apply_people, mark_left
from handlers.grants.provider import Person
from storage.models import DirectorySource
from storage.uow import UnitOfWork

__all__ = [
    "DirectoryReaders",
    "DirectoryUnavailable",
    "PeopleSource",
    "SyncReport",
    "sync_directory",
]

logger = logging.getLogger(__name__)


class PeopleSource(Protocol):
    """Everyone one directory source lists now (an Entra group's members, a workspace's
    users), with their email; people without one are left out by the reader."""

    async def people(self) -> list[Person]: ...


# (kind, ref) of a `directory:` source -> its reader, or None when this installation has no
# reader for that kind (e.g. no Azure credentials).
DirectoryReaders = Callable[[str, str], PeopleSource | None]


class DirectoryUnavailable(Exception):
    """A source could not be read: this sync changes nothing."""


@dataclass
class Merged:
    """One person as all sources together describe them."""

    email: str
    name: str
    slack_id: str | None = None
    teams_id: str | None = None
    sources: list[str] = field(default_factory=list)


async def sync_directory(uow: UnitOfWork, clock: Clock, *, readers: DirectoryReaders) -> SyncReport:
    """Read every source, then bring the principals in line with them. Raises
    DirectoryUnavailable (nothing changed) when a source cannot be read."""
    async with uow.read() as s:
        sources = [
            (row.kind, row.ref)
            for row in await s.scalars(select(DirectorySource).order_by(DirectorySource.id))
        ]
    if not sources:
        return SyncReport()
    people = await _read_all(sources, readers)
    report = await apply_people(uow, clock, people=people)
    if not people:
        # Every source answered, and all of them were empty: far likelier a wrong group id
        # or a reader's bug than the whole company leaving; do not end anyone's access.
        logger.warning("directory sync: every source is empty; nobody is marked as left")
        return report
    report.left = await mark_left(uow, clock, present=set(people))
    logger.info("directory sync: %s", report.summary())
    return report


async def _read_all(sources: list[tuple[str, str]], readers: DirectoryReaders) -> dict[str, Merged]:
    merged: dict[str, Merged] = {}
    for kind, ref in sources:
        reader = readers(kind, ref)
        if reader is None:
            raise DirectoryUnavailable(f"no reader for directory source {kind}: {ref}")
        try:
            found = await reader.people()
        except Exception as err:  # whatever the reader raised, nothing may change
            raise DirectoryUnavailable(f"{kind} {ref}: {type(err).__name__}: {err}") from err
        for person in found:
            _merge(merged, person, f"{kind}:{ref}")
    return merged


def _merge(merged: dict[str, Merged], person: Person, source: str) -> None:
    email = (person.email or "").strip().lower()
    if "@" not in email or len(email) > 320:
        return
    entry = merged.setdefault(email, Merged(email=email, name=""))
    entry.name = entry.name or (person.name or "").strip()[:200] or email
    entry.slack_id = entry.slack_id or person.slack_id or None
    entry.teams_id = entry.teams_id or person.teams_id or None
    if source not in entry.sources:
        entry.sources.append(source)
