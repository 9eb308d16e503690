"""PIM for Groups: membership or ownership of an Entra group, through
privilegedAccess/group/assignmentScheduleRequests.

Needs the Graph application permission PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup
(reading instances back is included). The group must be onboarded to PIM for Groups, and a
role-assignable group also needs pim-bot to hold Privileged Role Administrator.
"""

from __future__ import annotations

from typing import Any

from bot.providers.entra_role import GraphScheduleProvider
from bot.providers.schedule import odata_quote
from handlers.grants.provider import GrantJob, ProviderError, Target

REQUESTS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
INSTANCES = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleInstances"
ACCESS = ("member", "owner")


def access_of(target: Target) -> str:
    access = target.access or "member"
    if access not in ACCESS:
        raise ProviderError(f"group access must be member or owner, not {access!r}", permanent=True)
    return access


class EntraGroupProvider(GraphScheduleProvider):
    requests = REQUESTS

    def assigned(self, job: GrantJob) -> dict[str, Any]:
        return {"accessId": access_of(job.target), "groupId": job.target.ref}

    async def members(self, target: Target) -> frozenset[str] | None:
        """Who is a member (or owner) now: PIM's active instances, which also list members
        added directly to the group as permanent ones."""
        access = access_of(target)
        held = set()
        params = {"$filter": f"groupId eq {odata_quote(target.ref)}"}
        async for row in self.graph.items(INSTANCES, params=params):
            if row.get("accessId") == access and row.get("principalId"):
                held.add(str(row["principalId"]))
        return frozenset(held)
