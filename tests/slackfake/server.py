"""A local fake of the Slack Web API for transport tests (aiohttp, 127.0.0.1, ephemeral port).

    async with FakeSlackAPI() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        await client.chat_postMessage(channel="U0BOB", text="hi")
        [call] = await fake.wait_for("chat.postMessage")

Every request is recorded as a `Call`, failed ones included. Like Slack, a message posted to a
user id `U…` lands in the DM channel `D…` (same suffix), and `chat.update` must name that
channel and an existing ts, or it fails with `channel_not_found` / `message_not_found`.
Message metadata (`metadata={"event_type": …, "event_payload": {…}}`) is kept with the message
and returned by `conversations.history` when asked with `include_all_metadata`, as Slack does.
Posting limits (429 + Retry-After beyond about one message per second per channel) are off
unless asked for: see `tests/slackfake/limits.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .limits import PostLimits

# How long wait_for waits by default. A wait ends as soon as what it waits for arrives, so a
# generous bound costs a passing test nothing; it only keeps a loaded CI machine (pytest -n 4
# on 2 cores) from failing a test whose messages are merely late.
PATIENCE = 30.0
BOT = {"user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "team": "Contoso"}
# What slack-manifest.yml asks for; Slack names a token's scopes in X-OAuth-Scopes.
MANIFEST_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "usergroups:write",
)


@dataclass
class Call:
    method: str  # "chat.postMessage", … or "response_url"
    args: dict[str, Any]  # query + form/JSON body; JSON-looking form fields decoded
    headers: dict[str, str]  # keys lower-case: call.headers["authorization"]
    at: float  # time.monotonic() when it arrived
    status: int = 200  # HTTP status the fake answered
    response: dict[str, Any] = field(default_factory=dict)  # body the fake answered
    path: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.response.get("ok") is True


def dm_id(user_or_channel: str) -> str:
    """The DM channel id the fake gives a user id (U…/W… -> D…); other ids are unchanged."""
    if user_or_channel[:1] in ("U", "W"):
        return "D" + user_or_channel[1:]
    return user_or_channel


def _decode(value: Any) -> Any:
    """Form fields carrying JSON (blocks, view, attachments…) come back as objects."""
    try:
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
    except ValueError:
        return value


class FakeSlackAPI:
    def __init__(
        self,
        *,
        token: str | None = None,
        post_rate: float | None = None,
        post_burst: float | None = None,
        workspace_rate: float | None = None,
        workspace_burst: float | None = None,
    ) -> None:
        self.token = token  # when set, any other bearer token answers invalid_auth
        self.limits = PostLimits(
            post_rate=post_rate,
            post_burst=post_burst,
            workspace_rate=workspace_rate,
            workspace_burst=workspace_burst,
        )
        # Called with each accepted chat.postMessage before its answer goes out (a test's way
        # to kill a client between "Slack has it" and "the client knows").
        self.on_posted: Callable[[Call], Any] | None = None
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}  # user group id (S…) -> its users' ids
        self.users_page = 200  # users.list page size at most (Slack allows up to 1000)
        # The bot token's scopes, sent as X-OAuth-Scopes on every answer as Slack does.
        self.scopes: list[str] = list(MANIFEST_SCOPES)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> message
        self._calls: list[Call] = []
        self._failures: dict[str, deque[tuple[int, str, int | None]]] = defaultdict(deque)
        self._hangs: dict[str, deque[float]] = defaultdict(deque)
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.root = ""  # "http://127.0.0.1:PORT"

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.root}/api/"

    def response_url(self, token: str = "abc") -> str:
        return f"{self.root}/response/{token}"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{token}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlackAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration -----------------------------------------------------------------------
    def add_user(
        self,
        id: str,
        email: str,
        name: str,
        *,
        username: str | None = None,
        team_id: str = BOT["team_id"],
    ) -> dict:
        """A user users.info / users.lookupByEmail know. Another `team_id` is someone from a
        workspace connected through Slack Connect."""
        username = username or email.split("@")[0]
        profile = {"email": email, "real_name": name, "display_name": username}
        self.users[id] = {
            "id": id,
            "team_id": team_id,
            "name": username,
            "real_name": name,
            "deleted": False,
            "is_bot": False,
            "profile": profile,
        }
        return self.users[id]

    def add_usergroup(self, id: str, users: list[str] | tuple[str, ...] = ()) -> None:
        """A user group (S…) usergroups.users.list / usergroups.users.update know."""
        self.usergroups[id] = list(users)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Queue one failure for the next call to `method` (calls queue up in order).

        status=429 answers HTTP 429, `Retry-After` (default 1) and error "ratelimited";
        status=200 with error=... answers {"ok": false, "error": error}."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if error is None:
            error = {200: None, 429: "ratelimited"}.get(status, "fatal_error")
            if error is None:
                raise ValueError("fail_next with status 200 needs an error")
        self._failures[method].append((status, error, retry_after))

    def hang_next(self, method: str, *, seconds: float = 1.0) -> None:
        """Sit on the next call to `method` for `seconds` before answering (a client with a
        shorter timeout gives up first). Keep it short: shutting the fake down waits for it."""
        self._hangs[method].append(seconds)

    # -- inspection --------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        return [c for c in self._calls if method is None or c.method == method]

    def clear(self) -> None:
        """Forget recorded calls and queued failures (users and posted messages stay)."""
        self._calls.clear()
        self._failures.clear()

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        timeout: float = PATIENCE,  # noqa: ASYNC109
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Poll until at least `count` calls to `method` matching `where` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = "\n".join(f"  {c.method} {c.status} {c.args}" for c in self._calls)
                raise AssertionError(
                    f"waited {timeout}s for {count}x {method}, "
                    f"got {len(found)}; calls seen:\n{seen or '  (none)'}"
                )
            await asyncio.sleep(0.01)

    def messages_to(self, user_or_channel: str) -> list[Call]:
        """Accepted chat.postMessage calls to that channel, or to the user / their DM."""
        target = dm_id(user_or_channel)
        return [
            c
            for c in self.calls("chat.postMessage")
            if c.ok and dm_id(str(c.args.get("channel", ""))) == target
        ]

    def updates_of(self, channel: str, ts: str) -> list[Call]:
        """Accepted chat.update calls for the message (channel, ts)."""
        return [
            c
            for c in self.calls("chat.update")
            if c.ok and c.args.get("channel") == dm_id(channel) and c.args.get("ts") == ts
        ]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as it stands now, after any updates."""
        return self.messages[(dm_id(channel), ts)]

    # -- HTTP --------------------------------------------------------------------------------
    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = json.loads(await request.text() or "{}")
            args.update(body if isinstance(body, dict) else {"_json": body})
        elif request.method == "POST" and request.can_read_body:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        return {k: _decode(v) for k, v in args.items()}

    def _record(self, method: str, request: web.Request, args: dict) -> Call:
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = Call(method, args, headers, time.monotonic(), path=request.path)
        self._calls.append(call)
        return call

    def _answer(self, call: Call, body: dict, status: int = 200, headers: dict | None = None):
        call.status, call.response = status, body
        headers = {**(headers or {}), "X-OAuth-Scopes": ",".join(self.scopes)}
        return web.json_response(body, status=status, headers=headers)

    def _failure(self, call: Call) -> web.Response | None:
        queue = self._failures.get(call.method)
        if not queue:
            return None
        status, error, retry_after = queue.popleft()
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return self._answer(call, {"ok": False, "error": error}, status, headers)

    async def _response_url(self, request: web.Request) -> web.Response:
        call = self._record("response_url", request, await self._args(request))
        return self._failure(call) or self._answer(call, {"ok": True})

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = self._record(method, request, await self._args(request))
        if self._hangs.get(method):
            await asyncio.sleep(self._hangs[method].popleft())
        failure = self._failure(call)
        if failure is not None:
            return failure
        auth = request.headers.get("Authorization", "")
        token = (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else call.args.get("token")
        )
        if not token:
            return self._answer(call, {"ok": False, "error": "not_authed"})
        if self.token is not None and token != self.token:
            return self._answer(call, {"ok": False, "error": "invalid_auth"})
        if method == "chat.postMessage" and call.args.get("channel"):
            retry_after = self.limits.retry_after(dm_id(str(call.args["channel"])))
            if retry_after is not None:
                return self._answer(
                    call,
                    {"ok": False, "error": "ratelimited"},
                    429,
                    {"Retry-After": str(retry_after)},
                )
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        body = handler(call.args) if handler else {"ok": False, "error": "unknown_method"}
        response = self._answer(call, body)
        if method == "chat.postMessage" and call.ok and self.on_posted is not None:
            done = self.on_posted(call)
            if asyncio.iscoroutine(done):
                await done
        return response

    def rate_limited(self, method: str = "chat.postMessage") -> int:
        """How many calls to `method` were answered 429."""
        return sum(1 for c in self.calls(method) if c.status == 429)

    # -- methods (each takes the args and returns the response body) --------------------------
    def _next_ts(self) -> str:
        self._seq += 1
        micros = 1700000000_000000 + 100 * self._seq
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _api_auth_test(self, a: dict) -> dict:
        return {"ok": True, **BOT, "user": "pim-bot", "url": "https://contoso.slack.com/"}

    def _api_chat_postMessage(self, a: dict) -> dict:
        if not a.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not (a.get("text") or a.get("blocks") or a.get("attachments")):
            return {"ok": False, "error": "no_text"}
        channel, ts = dm_id(a["channel"]), self._next_ts()
        message = {
            "type": "message",
            "user": BOT["user_id"],
            "bot_id": BOT["bot_id"],
            "ts": ts,
            "text": a.get("text", ""),
            "blocks": a.get("blocks", []),
        }
        if a.get("thread_ts"):
            message["thread_ts"] = a["thread_ts"]
        if "metadata" in a:
            metadata = a["metadata"]
            if not (
                isinstance(metadata, dict)
                and isinstance(metadata.get("event_type"), str)
                and isinstance(metadata.get("event_payload"), dict)
            ):
                return {"ok": False, "error": "invalid_metadata_format"}
            message["metadata"] = metadata
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": dict(message)}

    def _api_chat_update(self, a: dict) -> dict:
        channel, ts = str(a.get("channel", "")), str(a.get("ts", ""))
        if channel[:1] not in ("C", "D", "G"):
            return {"ok": False, "error": "channel_not_found"}
        message = self.messages.get((channel, ts))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.update({k: a[k] for k in ("text", "blocks") if k in a})
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": dict(message),
        }

    def _api_chat_postEphemeral(self, a: dict) -> dict:
        if not a.get("channel") or not a.get("user"):
            return {
                "ok": False,
                "error": "channel_not_found" if a.get("user") else "user_not_found",
            }
        return {"ok": True, "message_ts": self._next_ts()}

    def _api_conversations_open(self, a: dict) -> dict:
        users = str(a.get("users", "")).split(",")
        if not users[0]:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": dm_id(users[0]) if len(users) == 1 else "G1"}}

    def _api_conversations_history(self, a: dict) -> dict:
        """Newest first, `limit` a page (default 100), `cursor` to page on; metadata only with
        include_all_metadata."""
        channel = str(a.get("channel", ""))
        if channel[:1] not in ("C", "D", "G"):
            return {"ok": False, "error": "channel_not_found"}
        with_metadata = str(a.get("include_all_metadata", "")).lower() in ("1", "true")
        found = sorted(
            ((ts, m) for (c, ts), m in self.messages.items() if c == channel),
            key=lambda item: float(item[0]),
            reverse=True,
        )
        start, limit = int(a.get("cursor") or 0), int(a.get("limit") or 100)
        page = [
            m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
            for _, m in found[start : start + limit]
        ]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": [dict(m) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _view(self, a: dict, view_id: str | None = None) -> dict:
        view = a.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        self._seq += 1
        view_id = view_id or f"V{self._seq:04d}"
        return {"ok": True, "view": {**view, "id": view_id, "hash": f"h{self._seq}"}}

    def _api_views_open(self, a: dict) -> dict:
        return self._view(a) if a.get("trigger_id") else {"ok": False, "error": "invalid_arguments"}

    _api_views_push = _api_views_open

    def _api_views_update(self, a: dict) -> dict:
        if not (a.get("view_id") or a.get("external_id")):
            return {"ok": False, "error": "not_found"}
        return self._view(a, a.get("view_id"))

    def _api_views_publish(self, a: dict) -> dict:
        return self._view(a) if a.get("user_id") else {"ok": False, "error": "invalid_arguments"}

    def _api_users_lookupByEmail(self, a: dict) -> dict:
        email = str(a.get("email", "")).lower()
        for user in self.users.values():
            if user["profile"]["email"].lower() == email:
                return {"ok": True, "user": user}
        return {"ok": False, "error": "users_not_found"}

    def _api_users_info(self, a: dict) -> dict:
        user = self.users.get(str(a.get("user", "")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _api_users_list(self, a: dict) -> dict:
        """Everyone, bots and deactivated accounts included (as Slack does), `limit` a page
        (capped at users_page), `cursor` to page on."""
        start = int(a.get("cursor") or 0)
        limit = min(int(a.get("limit") or self.users_page), self.users_page)
        members = list(self.users.values())
        more = start + limit < len(members)
        return {
            "ok": True,
            "members": [dict(u) for u in members[start : start + limit]],
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _api_usergroups_users_list(self, a: dict) -> dict:
        group = self.usergroups.get(str(a.get("usergroup", "")))
        if group is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(group)}

    def _api_usergroups_users_update(self, a: dict) -> dict:
        """Replaces the whole list, as Slack does. An empty `users=` is refused; the literal
        `[]` empties the group (what Slack accepts for "no members")."""
        group_id = str(a.get("usergroup", ""))
        if group_id not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        raw = a.get("users", "")
        if raw == "" or raw is None:
            return {"ok": False, "error": "invalid_arguments"}
        users = [] if raw == [] or raw == "[]" else [u for u in str(raw).split(",") if u]
        if any(u not in self.users for u in users) and self.users:
            return {"ok": False, "error": "invalid_users"}
        self.usergroups[group_id] = list(dict.fromkeys(users))
        return {
            "ok": True,
            "usergroup": {
                "id": group_id,
                "users": list(self.usergroups[group_id]),
                "user_count": len(self.usergroups[group_id]),
            },
        }
