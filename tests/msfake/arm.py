"""A fake Azure Resource Manager: Microsoft.Authorization role assignment schedule requests
(PUT at any scope) and role assignments (GET at a scope), with real state.

As in Azure, a request's name is a GUID the caller picks, a name cannot be used twice, an
AdminAssign for an assignment that exists answers 409 RoleAssignmentExists, an AdminRemove for
one that does not answers 400 RoleAssignmentDoesNotExist, an AdminUpdate moves a live
assignment's expiration (RoleAssignmentDoesNotExist when it has ended), and an assignment with
an expiration ends by itself.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .base import CALL, HttpsFake, error
from .graph import parse_time
from .identity import FakeIdentity

AUTH = "/providers/microsoft.authorization/"
_REQUEST = re.compile(
    r"^(.*)/providers/microsoft\.authorization/"
    r"roleassignmentschedulerequests/([^/]+)$",
    re.I,
)
_LIST = re.compile(r"^(.*)/providers/microsoft\.authorization/roleassignments$", re.I)
_ROLE_ID = re.compile(r"/providers/microsoft\.authorization/roledefinitions/([0-9a-f-]{36})$", re.I)


def role_guid(role_definition_id: str) -> str | None:
    found = _ROLE_ID.search(role_definition_id)
    return found.group(1).lower() if found else None


class FakeARM(HttpsFake):
    name = "arm"

    def __init__(self, *, identity: FakeIdentity, page_size: int = 100, **kw: Any) -> None:
        super().__init__(**kw)
        self.identity = identity
        self.page_size = page_size
        self.require_expiration = True
        self.assignments: list[dict[str, Any]] = []
        self.request_names: set[str] = set()
        self.requests: list[dict[str, Any]] = []  # accepted request properties

    def assign_directly(self, principal: str, role: str, scope: str) -> None:
        """A permanent assignment made outside pim-bot."""
        self.assignments.append(
            {
                "name": str(uuid.uuid4()),
                "scope": scope,
                "role": role.lower(),
                "principalId": principal,
                "end": None,
            }
        )

    def holders(self, role: str, scope: str) -> set[str]:
        return {
            a["principalId"]
            for a in self._live()
            if a["role"] == role.lower() and a["scope"].lower() == scope.lower()
        }

    def end_of(self, principal: str, role: str, scope: str) -> datetime | None:
        """The expiration Azure holds for this live assignment (KeyError: there is none)."""
        for a in self._live():
            if (a["principalId"], a["role"], a["scope"].lower()) == (
                principal,
                role.lower(),
                scope.lower(),
            ):
                return a["end"]  # type: ignore[no-any-return]
        raise KeyError(f"{principal} holds no assignment of {role} at {scope}")

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._dispatch)

    def _live(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [a for a in self.assignments if a["end"] is None or a["end"] > now]

    async def _dispatch(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.identity.audience_of(token) != self.root:
            return error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if not request.query.get("api-version"):
            return error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required.",
            )
        path = request.path
        found = _REQUEST.match(path)
        if found and request.method == "PUT":
            return self._put_request(
                found.group(1), found.group(2), (request[CALL].body or {}).get("properties") or {}
            )
        found = _LIST.match(path)
        if found and request.method == "GET":
            return self._list(request, found.group(1))
        return error(404, "NotFound", f"No route for {request.method} {path}.")

    def _put_request(self, scope: str, name: str, props: dict[str, Any]) -> web.Response:
        kind = props.get("requestType")
        if kind not in ("AdminAssign", "AdminUpdate", "AdminRemove"):
            return error(400, "InvalidRequestType", "requestType is not supported.")
        role = role_guid(str(props.get("roleDefinitionId", "")))
        if role is None or not props.get("principalId"):
            return error(400, "InvalidRoleDefinitionId", "The role definition ID is not valid.")
        if name.lower() in self.request_names:
            return error(
                409,
                "RoleAssignmentRequestExists",
                f"A role assignment request with Id: {name} already exists.",
            )
        match = [
            a
            for a in self._live()
            if a["principalId"] == props["principalId"]
            and a["role"] == role
            and a["scope"].lower() == scope.lower()
        ]
        expiration = (props.get("scheduleInfo") or {}).get("expiration") or {}
        end = parse_time(expiration.get("endDateTime"))
        if (
            kind != "AdminRemove"
            and self.require_expiration
            and (expiration.get("type") != "AfterDateTime" or end is None)
        ):
            return error(
                400,
                "RoleAssignmentRequestPolicyValidationFailed",
                'The following policy rules failed: ["ExpirationRule"]',
            )
        if kind == "AdminUpdate":
            if not match:
                return error(
                    400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                )
            for row in match:
                row["end"] = end
            status = "Provisioned"
        elif kind == "AdminAssign":
            if match:
                return error(409, "RoleAssignmentExists", "The Role assignment already exists.")
            self.assignments.append(
                {
                    "name": str(uuid.uuid4()),
                    "scope": scope,
                    "role": role,
                    "principalId": props["principalId"],
                    "end": end,
                }
            )
            status = "Provisioned"
        else:
            if not match:
                return error(
                    400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                )
            for row in match:
                self.assignments.remove(row)
            status = "Revoked"
        self.request_names.add(name.lower())
        self.requests.append(props)
        return web.json_response(
            {
                "id": f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/"
                f"{name}",
                "name": name,
                "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
                "properties": {**props, "scope": scope, "status": status},
            },
            status=201,
        )

    def _list(self, request: web.Request, scope: str) -> web.Response:
        at_scope = request.query.get("$filter", "") == "atScope()"

        def visible(row_scope: str) -> bool:
            mine, theirs = scope.lower().rstrip("/"), row_scope.lower().rstrip("/")
            above = mine == theirs or mine.startswith(theirs + "/")
            return above if at_scope else above or theirs.startswith(mine + "/")

        rows = [
            {
                "id": f"{a['scope']}/providers/Microsoft.Authorization/roleAssignments/{a['name']}",
                "name": a["name"],
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "scope": a["scope"],
                    "principalId": a["principalId"],
                    "principalType": "User",
                    "roleDefinitionId": _definition(a["scope"], a["role"]),
                },
            }
            for a in self._live()
            if visible(a["scope"])
        ]
        start = int(request.query.get("$skiptoken") or 0)
        body: dict[str, Any] = {"value": rows[start : start + self.page_size]}
        if start + self.page_size < len(rows):
            query = {**request.query, "$skiptoken": str(start + self.page_size)}
            body["nextLink"] = f"{self.root}{request.path}?{urlencode(query)}"
        return web.json_response(body)


def _definition(scope: str, role: str) -> str:
    sub = re.match(r"^(/subscriptions/[^/]+)", scope, re.I)
    base = sub.group(1) if sub else ""
    return f"{base}/providers/Microsoft.Authorization/roleDefinitions/{role}"
