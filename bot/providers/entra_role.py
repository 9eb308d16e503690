"""Microsoft Entra directory roles through PIM: roleAssignmentScheduleRequests.

A grant is an `adminAssign` of an active assignment whose expiration is the activation's end;
an extension (the activation's end moved) is an `adminUpdate` of that assignment with the new
expiration, or a fresh `adminAssign` when Entra had already ended it at the old end; a revoke
is an `adminRemove`. (`adminUpdate`, "change existing role assignments", rather than
`adminExtend`, which Graph describes as for *expiring* assignments: a renewed admin assignment
may be months from its end.) Needs the Graph application permission
RoleAssignmentSchedule.ReadWrite.Directory (the least privileged one; it also reads the
assignment schedule instances that `members()` lists). RoleManagement.ReadWrite.Directory
works too but allows far more.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.providers.graph import ApiError, GraphClient
from bot.providers.schedule import justification, odata_quote, principal_of, schedule_info
from handlers.grants.provider import GrantAction, GrantJob, Target
from vocab.states import Action

logger = logging.getLogger(__name__)

REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
INSTANCES = "/v1.0/roleManagement/directory/roleAssignmentScheduleInstances"
# Graph's answers that mean the grant or revoke had already happened (a retry, a crash after
# Graph acted but before we recorded it, another replica): done, not failed.
DONE = {
    "grant": frozenset({"RoleAssignmentExists"}),
    "extend": frozenset(),  # an update applied twice just sets the same end again
    "revoke": frozenset({"RoleAssignmentDoesNotExist"}),
}
ADMIN_UPDATE = "adminUpdate"  # Graph's action; pim-bot's own requests never use it


class GraphScheduleProvider:
    """Grant and revoke as Graph schedule requests (`adminAssign` with the activation's end as
    its expiration, `adminRemove`); a subclass names the endpoint and what is assigned."""

    requests = REQUESTS

    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    async def close(self) -> None:
        await self.graph.close()  # shared with the other Microsoft providers; closes once

    async def grant(self, job: GrantJob) -> None:
        await self._request(
            job, {"action": Action.ADMIN_ASSIGN.value, "scheduleInfo": schedule_info(job)}
        )

    async def extend(self, job: GrantJob) -> None:
        schedule = schedule_info(job)
        try:
            await self._request(job, {"action": ADMIN_UPDATE, "scheduleInfo": schedule})
        except ApiError as err:
            if err.code != "RoleAssignmentDoesNotExist":
                raise
            # Entra ended it at the old end before the new one reached it: assign it again.
            logger.info("grant %s: gone at its old end; assigning again", job.grant_id)
            await self._request(
                job, {"action": Action.ADMIN_ASSIGN.value, "scheduleInfo": schedule}, done="grant"
            )

    async def revoke(self, job: GrantJob) -> None:
        await self._request(job, {"action": Action.ADMIN_REMOVE.value})

    def assigned(self, job: GrantJob) -> dict[str, Any]:
        raise NotImplementedError

    async def _request(
        self, job: GrantJob, body: dict[str, Any], *, done: GrantAction | None = None
    ) -> None:
        body |= {
            "principalId": principal_of(job),
            **self.assigned(job),
            "justification": justification(job),
        }
        await send_schedule_request(self.graph, self.requests, body, job, done=done)


class EntraRoleProvider(GraphScheduleProvider):
    def assigned(self, job: GrantJob) -> dict[str, Any]:
        return {"roleDefinitionId": job.target.ref, "directoryScopeId": job.target.scope or "/"}

    async def members(self, target: Target) -> frozenset[str] | None:
        """Everyone holding the role at the scope now: PIM's active instances list assignments
        made outside PIM too (as permanent ones)."""
        scope = target.scope or "/"
        held = set()
        params = {"$filter": f"roleDefinitionId eq {odata_quote(target.ref)}"}
        async for row in self.graph.items(INSTANCES, params=params):
            if (row.get("directoryScopeId") or "/") == scope and row.get("principalId"):
                held.add(str(row["principalId"]))
        return frozenset(held)


async def send_schedule_request(
    graph: GraphClient,
    path: str,
    body: dict[str, Any],
    job: GrantJob,
    *,
    done: GrantAction | None = None,
) -> None:
    """POST a PIM schedule request; "already so" answers (for `done`, by default the job's
    action) count as success."""
    try:
        await graph.request("POST", path, json=body)
    except ApiError as err:
        if err.code not in DONE[done or job.action]:
            raise
        logger.info("grant %s: %s was already in effect (%s)", job.grant_id, job.action, err.code)
