"""A fake Microsoft Graph with real state: directory role assignments made through
roleAssignmentScheduleRequests (listed as roleAssignments and as active
roleAssignmentScheduleInstances, which include assignments made outside PIM), PIM for Groups
assignments, users and group members.

Like Entra, an assignment with an expiration ends by itself at its endDateTime (it drops out
of every listing), and by default Entra's role settings refuse a permanent active assignment
(`require_expiration`). Answers for an assignment that already exists, or a removal of one
that does not, are Graph's own: 400 RoleAssignmentExists / RoleAssignmentDoesNotExist.
`adminUpdate` moves a live assignment's expiration (RoleAssignmentDoesNotExist when it has
ended); any other action is refused.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .base import CALL, HttpsFake, error
from .identity import FakeIdentity

ROLE_REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
ROLE_ASSIGNMENTS = "/v1.0/roleManagement/directory/roleAssignments"
ROLE_INSTANCES = "/v1.0/roleManagement/directory/roleAssignmentScheduleInstances"
GROUP_REQUESTS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
GROUP_INSTANCES = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleInstances"
_FILTER = re.compile(r"(\w+) eq '([^']*)'")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def filters(request: web.Request) -> dict[str, str]:
    return dict(_FILTER.findall(request.query.get("$filter", "")))


class FakeGraph(HttpsFake):
    name = "graph"

    def __init__(self, *, identity: FakeIdentity, page_size: int = 100, **kw: Any) -> None:
        super().__init__(**kw)
        self.identity = identity
        self.page_size = page_size
        self.require_expiration = True
        self.users: dict[str, dict[str, Any]] = {}
        self.group_members: dict[str, list[str]] = {}  # plain members, outside PIM
        self.role_assignments: list[dict[str, Any]] = []
        self.group_assignments: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # every accepted schedule request body

    # -- state for tests ---------------------------------------------------------------------
    def add_user(
        self, id: str, *, mail: str | None, name: str, upn: str | None = None
    ) -> dict[str, Any]:
        self.users[id] = {
            "id": id,
            "displayName": name,
            "mail": mail,
            "userPrincipalName": upn or mail or f"{id}@contoso.onmicrosoft.com",
        }
        return self.users[id]

    def add_group_member(self, group_id: str, user_id: str) -> None:
        self.group_members.setdefault(group_id, []).append(user_id)

    def assign_role_directly(self, principal: str, role: str, scope: str = "/") -> None:
        """A permanent assignment made outside pim-bot (the portal, another tool)."""
        self.role_assignments.append(
            self._row(principal, end=None, roleDefinitionId=role, directoryScopeId=scope)
        )

    def role_holders(self, role: str, scope: str = "/") -> set[str]:
        return {
            a["principalId"]
            for a in self._live(self.role_assignments)
            if a["roleDefinitionId"] == role and a["directoryScopeId"] == scope
        }

    def role_end(self, principal: str, role: str, scope: str = "/") -> datetime | None:
        """The expiration Entra holds for this live assignment (KeyError: there is none)."""
        (row,) = [
            a
            for a in self._live(self.role_assignments)
            if (a["principalId"], a["roleDefinitionId"], a["directoryScopeId"])
            == (principal, role, scope)
        ] or [None]
        if row is None:
            raise KeyError(f"{principal} holds no assignment of {role} at {scope}")
        return row["end"]

    def group_end(self, principal: str, group: str, access: str = "member") -> datetime | None:
        (row,) = [
            a
            for a in self._live(self.group_assignments)
            if (a["principalId"], a["groupId"], a["accessId"]) == (principal, group, access)
        ] or [None]
        if row is None:
            raise KeyError(f"{principal} holds no {access} assignment of {group}")
        return row["end"]

    def group_holders(self, group: str, access: str = "member") -> set[str]:
        return {
            a["principalId"]
            for a in self._live(self.group_assignments)
            if a["groupId"] == group and a["accessId"] == access
        }

    # -- routes ------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post(ROLE_REQUESTS, self._role_request)
        app.router.add_get(ROLE_ASSIGNMENTS, self._role_assignments)
        app.router.add_get(ROLE_INSTANCES, self._role_assignments)  # active instances
        app.router.add_post(GROUP_REQUESTS, self._group_request)
        app.router.add_get(GROUP_INSTANCES, self._group_instances)
        app.router.add_get("/v1.0/groups/{id}/members", self._members)
        app.router.add_get("/v1.0/groups/{id}/members/microsoft.graph.user", self._members)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.identity.audience_of(token) != self.root:
            return error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        return None

    @staticmethod
    def _live(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [r for r in rows if r["end"] is None or r["end"] > now]

    @staticmethod
    def _row(principal: str, *, end: datetime | None, **keys: str) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "principalId": principal, "end": end, **keys}

    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        start = int(request.query.get("$skiptoken") or 0)
        size = min(int(request.query.get("$top") or self.page_size), self.page_size)
        body: dict[str, Any] = {"value": rows[start : start + size]}
        if start + size < len(rows):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(start + size)
            body["@odata.nextLink"] = f"{self.root}{request.path}?{urlencode(query)}"
        return web.json_response(body)

    def _schedule_error(self, body: dict[str, Any], keys: tuple[str, ...]) -> web.Response | None:
        if body.get("action") not in ("adminAssign", "adminUpdate", "adminRemove"):
            return error(400, "InvalidScheduleRequest", "The action is not supported.")
        missing = [k for k in ("principalId", *keys) if not body.get(k)]
        if missing:
            return error(400, "Request_BadRequest", f"Missing property: {missing[0]}.")
        if self.users and body["principalId"] not in self.users:
            return error(
                404, "Request_ResourceNotFound", f"Resource '{body['principalId']}' does not exist."
            )
        if body["action"] in ("adminAssign", "adminUpdate"):
            if body["action"] == "adminUpdate" and not body.get("scheduleInfo"):
                return error(400, "Request_BadRequest", "Missing property: scheduleInfo.")
            expiration = (body.get("scheduleInfo") or {}).get("expiration") or {}
            end = parse_time(expiration.get("endDateTime"))
            if expiration.get("type") == "afterDateTime" and end is None:
                return error(400, "InvalidExpiration", "endDateTime is required.")
            if self.require_expiration and expiration.get("type") != "afterDateTime":
                return error(
                    400,
                    "RoleAssignmentRequestPolicyValidationFailed",
                    'The following policy rules failed: ["ExpirationRule"]',
                )
        return None

    def _apply(
        self, rows: list[dict[str, Any]], body: dict[str, Any], keys: dict[str, str]
    ) -> web.Response:
        """Add or remove the assignment `keys` names, as the request's action says."""
        match = [
            r
            for r in self._live(rows)
            if r["principalId"] == body["principalId"] and all(r[k] == v for k, v in keys.items())
        ]
        if body["action"] == "adminAssign":
            if match:
                return error(400, "RoleAssignmentExists", "The Role assignment already exists.")
            end = parse_time(
                ((body.get("scheduleInfo") or {}).get("expiration") or {}).get("endDateTime")
            )
            rows.append(self._row(body["principalId"], end=end, **keys))
            status = "Provisioned"
        elif body["action"] == "adminUpdate":
            if not match:  # ended (at its expiration) or never made
                return error(
                    400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                )
            for row in match:
                row["end"] = parse_time(body["scheduleInfo"]["expiration"].get("endDateTime"))
            status = "Provisioned"
        else:
            if not match:
                return error(
                    400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                )
            for row in match:
                rows.remove(row)
            status = "Revoked"
        self.requests.append(body)
        return web.json_response({"id": str(uuid.uuid4()), "status": status, **body}, status=201)

    async def _role_request(self, request: web.Request) -> web.Response:
        body = request[CALL].body or {}
        refusal = self._unauthorized(request) or self._schedule_error(
            body, ("roleDefinitionId", "directoryScopeId")
        )
        if refusal is not None:
            return refusal
        return self._apply(
            self.role_assignments,
            body,
            {
                "roleDefinitionId": body["roleDefinitionId"],
                "directoryScopeId": body["directoryScopeId"],
            },
        )

    async def _group_request(self, request: web.Request) -> web.Response:
        body = request[CALL].body or {}
        refusal = self._unauthorized(request) or self._schedule_error(body, ("groupId", "accessId"))
        if refusal is not None:
            return refusal
        if body["accessId"] not in ("member", "owner"):
            return error(400, "InvalidAccessId", "accessId must be member or owner.")
        return self._apply(
            self.group_assignments, body, {"groupId": body["groupId"], "accessId": body["accessId"]}
        )

    async def _role_assignments(self, request: web.Request) -> web.Response:
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        wanted = filters(request)
        rows = [
            {k: v for k, v in r.items() if k != "end"}
            for r in self._live(self.role_assignments)
            if all(r.get(k) == v for k, v in wanted.items())
        ]
        return self._page(request, rows)

    async def _group_instances(self, request: web.Request) -> web.Response:
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        rows = [
            {
                "id": r["id"],
                "groupId": r["groupId"],
                "principalId": r["principalId"],
                "accessId": r["accessId"],
                "memberType": "direct",
                "assignmentType": "assigned",
                "endDateTime": r["end"].isoformat() if r["end"] else None,
            }
            for r in self._live(self.group_assignments)
        ]
        # Members added outside PIM show up as permanent direct assignments.
        rows += [
            {
                "id": f"{g}_{u}",
                "groupId": g,
                "principalId": u,
                "accessId": "member",
                "memberType": "direct",
                "assignmentType": "assigned",
                "endDateTime": None,
            }
            for g, users in self.group_members.items()
            for u in users
        ]
        wanted = filters(request)
        return self._page(
            request, [r for r in rows if all(r.get(k) == v for k, v in wanted.items())]
        )

    async def _members(self, request: web.Request) -> web.Response:
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        group = request.match_info["id"]
        ids = self.group_members.get(group, []) + sorted(self.group_holders(group))
        rows = [
            {"@odata.type": "#microsoft.graph.user", **self.users[i]}
            for i in dict.fromkeys(ids)
            if i in self.users
        ]
        select = request.query.get("$select")
        if select:
            keep = {"id", "@odata.type", *select.split(",")}
            rows = [{k: v for k, v in r.items() if k in keep} for r in rows]
        return self._page(request, rows)
