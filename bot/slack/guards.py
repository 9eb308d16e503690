"""Bolt middleware that runs before every listener: only the installed workspace, and every
signed request at most once.

Workspace. pim-bot serves one workspace: SLACK_TEAM_ID, else the team of the bot token (the
`auth.test` Bolt makes before the first request). A payload that names another team anywhere
(the team it came through, or the user's own team, which differs for a Slack Connect user in a
shared approval channel) is refused here, before any lookup, so nothing is ever linked to it.

Replays. Slack signs `v0:timestamp:body`, and Bolt refuses timestamps more than 5 minutes off,
so the signature names one delivery for at most that long. The first replica to insert it into
`seen_requests` runs the request; anyone sending the same bytes again gets HTTP 409. Slack
itself never resends a signature: its Events API retries (X-Slack-Retry-Num) are signed anew,
so an event is also keyed by its `event_id`, and a retry of an event already received is
acknowledged with 200 (so Slack stops retrying) without running it again. Slash commands and
interactions are never retried by Slack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import Connection

from handlers.busy import CHAT_BUDGET_SECONDS, chat_budget, chat_deadline
from handlers.clock import Clock
from storage.replay import first_sightings_now, purge_seen_now
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

Next = Callable[[], Awaitable[None]]

OTHER_WORKSPACE = (
    "pim-bot only serves the workspace it is installed in. Ask an admin of "
    "that workspace if you need privileged access there."
)
ALREADY_RECEIVED = "This request was already received; it was not run again."
# Bolt accepts a timestamp up to 5 minutes either side of now; a minute more for clock skew
# between replicas.
_SIGNATURE_LIFE = timedelta(minutes=6)
_EVENT_LIFE = timedelta(hours=1)  # Slack retries an event for about 5 minutes
_PURGE_EVERY = 60.0  # seconds, per process

# The workspace of the request being handled, for the email lookup in bot.slack.people: an
# App Home event names no team for its user, only users.info does. Each request runs in its
# own task, and the value is the same for every request of an app.
_installed_team: ContextVar[str | None] = ContextVar("installed_team", default=None)


def installed_team() -> str | None:
    return _installed_team.get()


class SlackGuards:
    """`then`: the middleware to run once a request passed (bot.slack.refusals.resolve_actor),
    called from here with its arguments rather than registered on its own."""

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        clock: Clock,
        team_id: str | None,
        then: Callable[..., Awaitable[None]] | None = None,
        budget: float = CHAT_BUDGET_SECONDS,
    ) -> None:
        self.team_id, self.then = team_id, then
        self.budget = budget  # the transport's chat budget (Chat.budget), as listeners have
        self.seen = SeenBatches(uow=uow, clock=clock)

    def register(self, app: AsyncApp) -> None:
        # One middleware, not two: Bolt works out each middleware's arguments per request.
        app.middleware(self.check)

    async def check(
        self,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        context: AsyncBoltContext,
        body: dict[str, Any],
        next: Next,
    ) -> BoltResponse:
        # The workspace first: refusing a stranger costs no database write.
        expected = self.team_id or (
            context.authorize_result.team_id if context.authorize_result else None
        )
        teams = _team_ids(body)
        if expected is None or not teams or not teams <= {expected}:
            logger.info(
                "Slack request from team(s) %s refused: pim-bot serves %s",
                sorted(teams) or "none",
                expected,
            )
            return await _refuse(body, context)
        _installed_team.set(expected)
        if (seen := await self._seen_before(req, body)) is not None:
            return seen
        if self.then is None:
            await next()
        else:
            await self.then(context=context, body=body, client=context.client, next=next)
        return resp

    async def _seen_before(
        self, req: AsyncBoltRequest, body: dict[str, Any]
    ) -> BoltResponse | None:
        """The answer to a request already received, or None to run it."""
        keys = _keys(req, body)
        if not keys:  # Socket Mode: no signature, and not an event
            return None
        now = self.seen.clock.now()
        # A locked or unreachable database answers "busy, nothing changed" like any command.
        async with chat_budget(chat_deadline(self.budget)):
            # One after the other: an event's two keys are rare, and gather() would make a
            # task (a turn of the loop) for the one key of every other request.
            fresh = [await self.seen.first(key, expires_at(now)) for _, key, expires_at in keys]
        for (kind, key, _), first in zip(keys, fresh, strict=True):
            if not first:
                return _seen(kind, key)
        return None


class SeenBatches:
    """Group commit for sightings: the ones that arrive while a transaction is in flight go
    into the next one together, so a burst costs a few commits, not one each (on SQLite every
    commit takes the one write lock)."""

    def __init__(self, *, uow: UnitOfWork, clock: Clock) -> None:
        self.uow, self.clock = uow, clock
        self._queue: list[tuple[str, datetime, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Future[None] | None = None
        self._next_purge = 0.0

    async def first(self, key: str, expires_at: datetime) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((key, expires_at, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await answer

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                fresh = await self._insert({key: at for key, at, _ in reversed(batch)})
            except Exception as err:  # every waiter gets the failure, as if it ran alone
                for *_, answer in batch:
                    if not answer.done():
                        answer.set_exception(err)
                continue
            for key, _, answer in batch:
                if not answer.done():
                    answer.set_result(key in fresh)
                fresh.discard(key)  # the same request twice in one batch: only one runs

    async def _insert(self, keys: dict[str, datetime]) -> set[str]:
        # A light write: the work a sighting lets through commits durably after it, and
        # that commit carries the sighting to the disk with it.
        return await self.uow.run_light_write(self._writer(keys))

    def _writer(self, keys: dict[str, datetime]) -> Callable[[Connection], set[str]]:
        now = self.clock.now()

        def insert(conn: Connection) -> set[str]:
            if time.monotonic() >= self._next_purge:  # decided here: fn runs once begun
                self._next_purge = time.monotonic() + _PURGE_EVERY
                purge_seen_now(conn, now=now)
            return first_sightings_now(conn, keys=keys, now=now)

        return insert


def _keys(
    req: AsyncBoltRequest, body: dict[str, Any]
) -> list[tuple[str, str, Callable[[datetime], datetime]]]:
    keys: list[tuple[str, str, Callable[[datetime], datetime]]] = []
    signature = _header(req, "x-slack-signature")
    stamp = _header(req, "x-slack-request-timestamp")
    if signature and stamp and stamp.isdigit():
        sent = datetime.fromtimestamp(int(stamp), UTC)
        keys.append(("signature", signature[:100], lambda now: max(now, sent) + _SIGNATURE_LIFE))
    event_id = body.get("event_id")
    if body.get("type") == "event_callback" and isinstance(event_id, str) and event_id:
        keys.append(("event", f"event:{event_id}"[:100], lambda now: now + _EVENT_LIFE))
    return keys


def _seen(kind: str, key: str) -> BoltResponse:
    if kind == "event":  # Slack's own retry: it was received; say so, and stop the retries
        logger.info("Slack retried %s: already received, not run again", key)
        return BoltResponse(status=200, body="")
    logger.warning("replayed Slack request refused (signature seen before)")
    return BoltResponse(
        status=409,
        body=ALREADY_RECEIVED,
        headers={"content-type": "text/plain; charset=utf-8", "x-slack-no-retry": "1"},
    )


async def _refuse(body: dict[str, Any], context: AsyncBoltContext) -> BoltResponse:
    private: dict[str, Any] = {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": OTHER_WORKSPACE,
    }
    if "command" in body:  # a slash command shows the HTTP answer to its sender only
        return BoltResponse(
            status=200, body=json.dumps(private), headers={"content-type": "application/json"}
        )
    if body.get("response_url") and context.respond is not None:  # a click: answer privately
        await context.respond(**private)
        return BoltResponse(status=200, body="")
    return BoltResponse(
        status=403,
        body=OTHER_WORKSPACE,
        headers={"content-type": "text/plain; charset=utf-8", "x-slack-no-retry": "1"},
    )


def _team_ids(body: dict[str, Any]) -> set[str]:
    """Every workspace a payload names, wherever Slack puts it (commands, interactions, views,
    events). Enterprise ids (E…) are not workspaces and are left out."""
    found: list[Any] = [body.get("team_id"), body.get("user_team_id")]
    for name, fields in (
        ("team", ("id",)),
        ("user", ("team_id",)),
        ("view", ("team_id", "app_installed_team_id")),
        ("event", ("team", "user_team")),
    ):
        part = body.get(name)
        if isinstance(part, dict):
            found += [part.get(f) for f in fields]
    for grant in body.get("authorizations") or ():
        if isinstance(grant, dict):
            found.append(grant.get("team_id"))
    return {t for t in found if isinstance(t, str) and t and not t.startswith("E")}


def _header(req: AsyncBoltRequest, name: str) -> str | None:
    values = req.headers.get(name) or ()
    return values[0] if values else None
