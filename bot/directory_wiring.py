"""The directory, wired from the settings: readers for the policy's `directory:` sources and
the Entra group membership that group eligibility asks (handlers.directory_sync,
handlers.group_eligibility). The engine sees only their protocols.

Entra needs azure-identity's AZURE_* variables (Graph application permission
GroupMember.Read.All); the Slack workspace needs the bot token (users:read, users:read.email).
A source whose credentials are missing has no reader, so its sync refuses, saying which.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from handlers.directory_sync import PeopleSource
from handlers.grants.provider import Person
from handlers.group_eligibility import TTL_SECONDS

if TYPE_CHECKING:
    from bot.providers.graph import MicrosoftApis

logger = logging.getLogger(__name__)


class Microsoft:
    """The Graph clients, made at first use: aiohttp wants a running loop."""

    def __init__(self) -> None:
        self.apis: MicrosoftApis | None = None

    def get(self) -> MicrosoftApis:
        if self.apis is None:
            # Imported here: aiohttp and azure-identity load only in a process that calls
            # Graph, not in every CLI command (Runtime builds this for all of them).
            from bot.providers.graph import MicrosoftApis

            self.apis = MicrosoftApis.from_env()
        return self.apis

    async def close(self) -> None:
        if self.apis is not None:
            await self.apis.close()
            self.apis = None


class EntraGroupSource:
    def __init__(self, microsoft: Microsoft, group_id: str) -> None:
        self.microsoft, self.group_id = microsoft, group_id

    async def people(self) -> list[Person]:
        from bot.providers.directory import entra_group_people

        return await entra_group_people(graph=self.microsoft.get().graph, group_id=self.group_id)


class EntraMembership:
    """Group membership from the group's member list, kept for a short while per group, so a
    burst of requests lists each group once."""

    def __init__(
        self,
        people: Callable[[str], PeopleSource],
        *,
        ttl: float = TTL_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.people = people
        self._groups: TTLCache[str, frozenset[str]] = TTLCache(maxsize=256, ttl=ttl, timer=timer)

    async def is_member(self, group_id: str, person: Person) -> bool:
        members = self._groups.get(group_id)
        if members is None:
            found = await self.people(group_id).people()
            members = frozenset(
                {p.teams_id for p in found if p.teams_id} | {p.email.lower() for p in found}
            )
            self._groups[group_id] = members
        return bool(person.teams_id and person.teams_id in members) or (
            person.email.lower() in members
        )


# As bot.providers.wiring reads them; not imported from there, whose Slack half would bring
# the Slack SDK into every process that builds a Runtime (Teams too).
AZURE_IDENTITY = ("AZURE_CLIENT_ID", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


def has_azure_credentials() -> bool:
    return any((os.environ.get(name) or "").strip() for name in AZURE_IDENTITY)


def directory_readers(
    microsoft: Microsoft, *, slack: PeopleSource | None
) -> Callable[[str, str], PeopleSource | None]:
    """`slack`: the workspace's reader, which whoever starts Slack builds
    (bot.slack.workspace_source), so the root does not import the Slack SDK."""

    def reader(kind: str, ref: str) -> PeopleSource | None:
        if kind == "entra_group" and has_azure_credentials():
            return EntraGroupSource(microsoft, ref)
        if kind == "slack":
            return slack
        return None

    return reader
