"""Azure RBAC roles at a scope, through PIM for Azure resources: Azure Resource Manager's
Microsoft.Authorization/roleAssignmentScheduleRequests.

Each request is a PUT whose name is a GUID derived from the grant and the action (and, for an
extension, the new end), so a retry, a crash or a second replica sends the same request again
instead of a new one. An extension is an AdminUpdate with the new expiration. Needs an Azure
role at the scope that may write role assignments: Role Based Access Control Administrator
(least privileged; constrain it with conditions to the roles pim-bot hands out) or User Access
Administrator.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import quote

from bot.providers.graph import ApiError, GraphClient
from bot.providers.schedule import justification, principal_of, schedule_info
from handlers.grants.provider import GrantJob, ProviderError, Target

logger = logging.getLogger(__name__)

API_VERSION = "2020-10-01"
LIST_API_VERSION = "2022-04-01"
AUTHORIZATION = "/providers/Microsoft.Authorization"
# A fixed namespace: the same grant and action always name the same ARM request.
REQUEST_NAMESPACE = uuid.UUID("6b3f4f0e-4a57-4d0f-a3a4-5c6e0f5a9d21")
DONE = {
    "grant": frozenset({"RoleAssignmentExists"}),
    "extend": frozenset(),
    "revoke": frozenset({"RoleAssignmentDoesNotExist"}),
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SUBSCRIPTION = re.compile(r"^/subscriptions/[^/]+", re.I)


def request_name(job: GrantJob, action: str | None = None) -> str:
    """One name per grant and action; an extension's names also carry the new end, since one
    grant may be extended many times."""
    key = f"{job.grant_id}:{action or job.action}"
    if job.action == "extend":
        key += f":{job.end.isoformat() if job.end else 'none'}"
    return str(uuid.uuid5(REQUEST_NAMESPACE, key))


def scope_of(target: Target) -> str:
    scope = (target.scope or "").rstrip("/")
    if not scope.startswith("/"):
        raise ProviderError(
            "an azure_role target needs an ARM scope such as "
            "/subscriptions/<id>/resourceGroups/<name>",
            permanent=True,
        )
    return scope


def role_definition_id(target: Target) -> str:
    """The full ARM id of the role definition: given as such, or built from a bare GUID at the
    scope's subscription (or at the scope itself, for a management group)."""
    ref = target.ref.strip()
    if ref.startswith("/"):
        return ref
    if not _GUID.match(ref):
        raise ProviderError(
            f"azure_role {ref!r} is neither a role definition GUID nor an ARM id", permanent=True
        )
    scope = scope_of(target)
    subscription = _SUBSCRIPTION.match(scope)
    base = subscription.group(0) if subscription else scope
    return f"{base}{AUTHORIZATION}/roleDefinitions/{ref.lower()}"


def _guid_of(role_id: str) -> str:
    return role_id.rstrip("/").rsplit("/", 1)[-1].lower()


class AzureRoleProvider:
    def __init__(self, arm: GraphClient) -> None:
        self.arm = arm

    async def close(self) -> None:
        await self.arm.close()  # shared with the other Microsoft providers; closes once

    async def grant(self, job: GrantJob) -> None:
        await self._request(
            job, {"requestType": "AdminAssign", "scheduleInfo": schedule_info(job, arm=True)}
        )

    async def extend(self, job: GrantJob) -> None:
        """AdminUpdate of the assignment with the new expiration; AdminAssign when Azure had
        already ended it at the old end. A request name accepted before (a retry) is done."""
        schedule = schedule_info(job, arm=True)
        props = self._props(job, {"requestType": "AdminUpdate", "scheduleInfo": schedule})
        try:
            await self._put(job.target, request_name(job), props)
            return
        except ApiError as err:
            if err.code == "RoleAssignmentRequestExists":
                return
            if err.code != "RoleAssignmentDoesNotExist":
                raise
        logger.info("grant %s: gone at its old end; assigning again", job.grant_id)
        props["requestType"] = "AdminAssign"
        try:
            await self._put(job.target, request_name(job, "extend-assign"), props)
        except ApiError as err:
            if err.code not in ("RoleAssignmentRequestExists", "RoleAssignmentExists"):
                raise

    async def revoke(self, job: GrantJob) -> None:
        await self._request(job, {"requestType": "AdminRemove"})

    def _props(self, job: GrantJob, props: dict[str, Any]) -> dict[str, Any]:
        return props | {
            "principalId": principal_of(job),
            "roleDefinitionId": role_definition_id(job.target),
            "justification": justification(job),
        }

    async def _request(self, job: GrantJob, props: dict[str, Any]) -> None:
        props = self._props(job, props)
        try:
            await self._put(job.target, request_name(job), props)
        except ApiError as err:
            if err.code in DONE[job.action]:
                logger.info("grant %s: %s was already in effect", job.grant_id, job.action)
                return
            if err.code != "RoleAssignmentRequestExists":
                raise
            await self._again(job, props)

    async def _again(self, job: GrantJob, props: dict[str, Any]) -> None:
        """Our request of this name was accepted before. Usually that is this very grant or
        revoke, already done; but if the access changed since (reconciliation restoring a
        grant that someone removed), send the request again under a fresh name."""
        held = props["principalId"] in (await self.members(job.target) or frozenset())
        if held == (job.action == "grant"):
            return
        try:
            await self._put(job.target, str(uuid.uuid4()), props)
        except ApiError as err:
            if err.code not in DONE[job.action]:
                raise

    async def _put(self, target: Target, name: str, props: dict[str, Any]) -> None:
        path = (
            f"{quote(scope_of(target), safe='/')}{AUTHORIZATION}"
            f"/roleAssignmentScheduleRequests/{name}"
        )
        await self.arm.request(
            "PUT", path, json={"properties": props}, params={"api-version": API_VERSION}
        )

    async def members(self, target: Target) -> frozenset[str] | None:
        """Principals holding the role assigned at exactly this scope (assignments inherited
        from above are someone else's to reconcile)."""
        scope, role = scope_of(target), _guid_of(role_definition_id(target))
        path = f"{quote(scope, safe='/')}{AUTHORIZATION}/roleAssignments"
        held = set()
        params = {"api-version": LIST_API_VERSION, "$filter": "atScope()"}
        async for row in self.arm.items(path, params=params):
            props = row.get("properties") or {}
            if (
                str(props.get("scope", "")).rstrip("/").lower() == scope.lower()
                and _guid_of(str(props.get("roleDefinitionId", ""))) == role
                and props.get("principalId")
            ):
                held.add(str(props["principalId"]))
        return frozenset(held)
