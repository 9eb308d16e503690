"""PIM for Groups: membership or ownership of an Entra group, through
privilegedAccess/group/assignmentScheduleRequests.

Needs the Graph application permission PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup
(reading instances back is included). The group must be onboarded to PIM for Groups, and a
role-assignable group also needs pim-bot to hold Privileged Role Administrator.
"""

from __future__ import annotations

from typing import Any

from bot.providers.entra_role import send_schedule_request
from bot.providers.graph import GraphClient
from bot.providers.schedule import justification, odata_quote, principal_of, schedule_info
from handlers.grants.provider import GrantJob, ProviderError, Target
from vocab.states import Action

REQUESTS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
INSTANCES = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleInstances"
ACCESS = ("member", "owner")


def access_of(target: Target) -> str:
    access = target.access or "member"
    if access not in ACCESS:
        raise ProviderError(f"group access must be member or owner, not {access!r}",
                            permanent=True)
    return access


class EntraGroupProvider:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def close(self) -> None:
        await self.graph.close()  # shared with the other Microsoft providers; closes once

    async def grant(self, job: GrantJob) -> None:
        await self._request(job, {"action": Action.ADMIN_ASSIGN.value, "scheduleInfo": schedule_info(job)})

    async def revoke(self, job: GrantJob) -> None:
        await self._request(job, {"action": Action.ADMIN_REMOVE.value})

    async def _request(self, job: GrantJob, body: dict[str, Any]) -> None:
        body |= {"accessId": access_of(job.target), "principalId": principal_of(job),
                 "groupId": job.target.ref, "justification": justification(job)}
        await send_schedule_request(self.graph, REQUESTS, body, job)

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
