"""A local fake of the Bot Framework connector service (Teams `serviceUrl`) for transport tests.

    async with FakeConnector() as fake:      # aiohttp on 127.0.0.1, ephemeral port
        client = ConnectorClient(MicrosoftAppCredentials.empty(), base_url=fake.service_url)
        await client.conversations.send_to_conversation("a:1", Activity(type="message", text="hi"))
        [call] = await fake.wait_for("send")

Every request is recorded as a `Call`, failed ones included. Kinds: "send" (POST
…/activities), "reply" (POST …/activities/{id}; botbuilder sends every in-turn and proactive
message this way), "update" (PUT), "delete", "create" (POST /v3/conversations), "members",
"member", "pagedmembers", "unknown" (any other path: 404). The pseudo-kind "post" matches
"send" and "reply". Like Teams, update/delete of an activity the fake never saw answers 404;
a reply to an unknown activity id is accepted (proactive turns reply to a made-up id).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# How long wait_for waits by default. A wait ends as soon as what it waits for arrives, so a
# generous bound costs a passing test nothing; it only keeps a loaded CI machine (pytest -n 4
# on 2 cores) from failing a test whose messages are merely late.
PATIENCE = 30.0
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
_ROUTES = [  # (method, path, kind)
    ("POST", "/v3/conversations", "create"),
    ("POST", "/v3/conversations/{cid}/activities", "send"),
    ("POST", "/v3/conversations/{cid}/activities/{aid}", "reply"),
    ("PUT", "/v3/conversations/{cid}/activities/{aid}", "update"),
    ("DELETE", "/v3/conversations/{cid}/activities/{aid}", "delete"),
    ("GET", "/v3/conversations/{cid}/members", "members"),
    ("GET", "/v3/conversations/{cid}/members/{mid}", "member"),
    ("GET", "/v3/conversations/{cid}/pagedmembers", "pagedmembers"),
]


@dataclass
class Call:
    method: str  # HTTP method
    path: str  # decoded path, e.g. "/v3/conversations/a:1/activities"
    conversation_id: str | None  # for "create": the id the fake answered
    activity_id: str | None  # URL activity id; for send/reply/create: the new id answered
    body: Any  # decoded JSON request body (Activity / ConversationParameters), or None
    headers: dict[str, str]  # keys lower-case; no "authorization" in anonymous mode
    at: float  # time.monotonic() when it arrived
    kind: str = "unknown"
    status: int = 200  # HTTP status the fake answered
    response: Any = None  # JSON body the fake answered
    query: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def card_of(call_or_activity: Call | dict[str, Any]) -> dict[str, Any] | None:
    """The first Adaptive Card (attachment content) of a call's activity, or None."""
    body = call_or_activity.body if isinstance(call_or_activity, Call) else call_or_activity
    if isinstance(body, dict) and isinstance(body.get("activity"), dict):  # "create" params
        body = body["activity"]
    for attachment in (body or {}).get("attachments") or []:
        if attachment.get("contentType") == ADAPTIVE:
            return attachment.get("content")
    return None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeConnector:
    card_of = staticmethod(card_of)

    def __init__(self) -> None:
        self.members: list[dict[str, Any]] = []
        self.uninstalled: set[str] = set()  # aad ids / 29: ids whose "create" answers 403
        self.activities: dict[tuple[str, str], dict[str, Any]] = {}  # (conv, id) -> now
        self.conversations: dict[str, dict[str, Any]] = {}  # created id -> parameters
        self._by_member: dict[str, str] = {}  # member id -> created conversation id
        self._calls: list[Call] = []
        self._failures: dict[str, deque[tuple[int, int | None]]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.service_url = ""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        for method, path, kind in _ROUTES:
            app.router.add_route(method, path, self._handler(kind))
        app.router.add_route("*", "/{tail:.*}", self._handler("unknown"))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.service_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self.service_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeConnector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration -----------------------------------------------------------------------
    def add_member(
        self,
        aad_object_id: str,
        name: str,
        email: str,
        *,
        id: str | None = None,
        user_principal_name: str | None = None,
        tenant_id: str = "tenant-1",
        installed: bool = True,
    ) -> dict[str, Any]:
        """A user of the tenant, as Teams answers GET …/members[/{id}] (a TeamsChannelAccount).
        installed=False: creating a 1:1 conversation with them answers 403, like Teams."""
        given, _, surname = name.partition(" ")
        member = {
            "id": id or f"29:{aad_object_id}",
            "name": name,
            "aadObjectId": aad_object_id,
            "givenName": given,
            "surname": surname,
            "email": email,
            "userPrincipalName": user_principal_name or email,
            "tenantId": tenant_id,
            "userRole": "user",
        }
        self.members.append(member)
        if not installed:
            self.uninstalled.update({member["id"], aad_object_id})
        return member

    def fail_next(self, kind: str, *, status: int = 500, retry_after: int | None = None) -> None:
        """Queue one failure for the next call of `kind` ("post" = send or reply). 429 sends
        `Retry-After` (default 1). botbuilder's client (msrest + urllib3 2.x Retry) retries
        GET/PUT/DELETE on 408 and 5xx (not 501/505) by itself, never POST, never 429."""
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures[kind].append((status, retry_after))

    # -- inspection --------------------------------------------------------------------------
    def calls(self, kind: str | None = None) -> list[Call]:
        kinds = {"post": ("send", "reply")}.get(kind or "", (kind,))
        return [c for c in self._calls if kind is None or c.kind in kinds]

    def clear(self) -> None:
        """Forget recorded calls and queued failures (members and activities stay)."""
        self._calls.clear()
        self._failures.clear()

    async def wait_for(
        self,
        kind: str,
        *,
        count: int = 1,
        timeout: float = PATIENCE,  # noqa: ASYNC109
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Poll until at least `count` calls of `kind` matching `where` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(kind) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = "\n".join(f"  {c.kind} {c.method} {c.path} {c.status}" for c in self._calls)
                raise AssertionError(
                    f"waited {timeout}s for {count}x {kind}, "
                    f"got {len(found)}; calls seen:\n{seen or '  (none)'}"
                )
            await asyncio.sleep(0.01)

    def sent_to(self, conversation_id: str) -> list[Call]:
        """Accepted send/reply calls (messages posted) to that conversation, in order."""
        return [c for c in self.calls("post") if c.ok and c.conversation_id == conversation_id]

    def activity(self, conversation_id: str, activity_id: str) -> dict[str, Any]:
        """The activity as it stands now, after updates (KeyError if unknown or deleted)."""
        return self.activities[(conversation_id, activity_id)]

    # -- HTTP --------------------------------------------------------------------------------
    def _handler(self, kind: str):
        async def handle(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else None
            info = request.match_info
            call = Call(
                request.method,
                request.path,
                info.get("cid"),
                info.get("aid"),
                body,
                {k.lower(): v for k, v in request.headers.items()},
                time.monotonic(),
                kind,
                query=dict(request.query),
            )
            self._calls.append(call)
            queue = self._failures.get(kind) or (
                self._failures.get("post") if kind in ("send", "reply") else None
            )
            if queue:
                status, retry_after = queue.popleft()
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
                return self._answer(
                    call, _error("ServiceError", "programmed failure"), status, headers
                )
            status, answer = getattr(self, "_on_" + kind)(call, info.get("mid"))
            return self._answer(call, answer, status)

        return handle

    @staticmethod
    def _answer(call: Call, body: Any, status: int = 200, headers: dict | None = None):
        call.status, call.response = status, body
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def _post(self, call: Call, conversation_id: str, activity: dict[str, Any]) -> str:
        new_id = str(1700000000000 + next(self._ids))
        stored = {**copy.deepcopy(activity), "id": new_id}
        stored["conversation"] = {**(stored.get("conversation") or {}), "id": conversation_id}
        self.activities[(conversation_id, new_id)] = stored
        call.conversation_id, call.activity_id = conversation_id, new_id
        return new_id

    def _on_send(self, call: Call, _: Any) -> tuple[int, Any]:
        if not isinstance(call.body, dict) or not call.body.get("type"):
            return 400, _error("BadArgument", "Activity type is required")
        return 201, {"id": self._post(call, call.conversation_id or "", call.body)}

    _on_reply = _on_send

    def _on_update(self, call: Call, _: Any) -> tuple[int, Any]:
        key = (call.conversation_id or "", call.activity_id or "")
        if key not in self.activities:
            return 404, _error("ActivityNotFoundInConversation", "Unknown activity")
        self.activities[key] = {**copy.deepcopy(call.body), "id": key[1]}
        return 200, {"id": key[1]}

    def _on_delete(self, call: Call, _: Any) -> tuple[int, Any]:
        key = (call.conversation_id or "", call.activity_id or "")
        if self.activities.pop(key, None) is None:
            return 404, _error("ActivityNotFoundInConversation", "Unknown activity")
        return 200, None

    def _on_create(self, call: Call, _: Any) -> tuple[int, Any]:
        params = call.body if isinstance(call.body, dict) else {}
        members = params.get("members") or []
        if len(members) != 1 or params.get("isGroup"):
            return 400, _error("BadArgument", "The fake creates 1:1 conversations only")
        who = members[0].get("id") or members[0].get("aadObjectId") or ""
        if who in self.uninstalled:
            return 403, _error("Forbidden", "Bot is not installed in user's personal scope")
        found = self._member(who)
        key = found["id"] if found else who
        if key not in self._by_member:  # Teams answers the same 1:1 conversation every time
            self._by_member[key] = f"a:new-conv-{len(self._by_member) + 1}"
        conversation_id = self._by_member[key]
        self.conversations[conversation_id] = params
        call.conversation_id = conversation_id
        answer = {"id": conversation_id, "serviceUrl": self.service_url}
        if isinstance(params.get("activity"), dict):
            answer["activityId"] = self._post(call, conversation_id, params["activity"])
        return 201, answer

    def _member(self, member_id: str) -> dict[str, Any] | None:
        wanted = member_id.lower()
        for m in self.members:
            if wanted in (
                m["id"].lower(),
                m["aadObjectId"].lower(),
                m["userPrincipalName"].lower(),
            ):
                return m
        return None

    def _on_members(self, call: Call, _: Any) -> tuple[int, Any]:
        return 200, copy.deepcopy(self.members)

    def _on_member(self, call: Call, member_id: str) -> tuple[int, Any]:
        found = self._member(member_id or "")
        if found is None:
            return 404, _error("MemberNotFoundInConversation", "Member not found")
        return 200, copy.deepcopy(found)

    def _on_pagedmembers(self, call: Call, _: Any) -> tuple[int, Any]:
        size = int(call.query.get("pageSize") or 200)
        start = int(call.query.get("continuationToken") or 0)
        page = copy.deepcopy(self.members[start : start + size])
        more = start + size < len(self.members)
        return 200, {"members": page, "continuationToken": str(start + size) if more else None}

    def _on_unknown(self, call: Call, _: Any) -> tuple[int, Any]:
        return 404, _error("NotFound", f"The fake has no route {call.method} {call.path}")
