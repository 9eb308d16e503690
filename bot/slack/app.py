"""Building the Bolt app and putting it on the server (or on Socket Mode)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.runtime import Chat
from bot.slack.guards import SlackGuards
from bot.slack.listeners import register
from bot.slack.payloads import Malformed, check, refuse
from bot.slack.refusals import on_error, resolve_actor
from bot.slack.transport import SlackTransport

logger = logging.getLogger(__name__)

_OAUTH_ENV = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
# Bolt also reads SLACK_BOT_TOKEN itself and, given our client too, warns at every start that
# "token will be unused": the client already carries that token.
_HIDDEN_ENV = (*_OAUTH_ENV, "SLACK_BOT_TOKEN")


@dataclass
class Slack:
    app: AsyncApp
    transport: SlackTransport
    socket_mode: AsyncSocketModeHandler | None = None


def slack_missing(settings: Settings) -> str | None:
    """Why Slack cannot start, or None when it can."""
    if not settings.slack_bot_token:
        return "SLACK_BOT_TOKEN is not set"
    if not (settings.slack_signing_secret or settings.slack_app_token):
        return "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set"
    return None


@contextmanager
def _without_oauth_env() -> Iterator[None]:
    # Both set, Bolt silently switches to OAuth (multi-workspace) mode and ignores our token.
    saved = {k: os.environ.pop(k) for k in _HIDDEN_ENV if k in os.environ}
    if all(k in saved for k in _OAUTH_ENV):
        logger.warning(
            "SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are ignored: pim-bot is a "
            "single-workspace app using SLACK_BOT_TOKEN"
        )
    try:
        yield
    finally:
        os.environ.update(saved)


def build_slack(settings: Settings, chat: Chat) -> Slack:
    assert settings.slack_bot_token
    base_url = settings.slack_api_url or AsyncWebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"  # slack_sdk joins method names straight onto it
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=base_url)
    with _without_oauth_env():
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret or "socket-mode-only",
            # In HTTP mode a request must be signed; Socket Mode has no signatures to check.
            request_verification_enabled=bool(settings.slack_signing_secret),
            # Commit before you answer: the listener runs before the HTTP response, which
            # carries the answer. An ack sent first would promise what a crash can lose.
            process_before_response=True,
        )
    # Our middleware, in this order, after Bolt's own (signature, url_verification). Checks
    # that refuse a request outright (other workspace, replay) go before resolve_actor, which
    # looks people up and may link them: the guards run it once a request passed them.
    # (The payload's shape is checked before Bolt sees it: see _bolt_request.)
    SlackGuards(
        uow=chat.uow,
        clock=chat.clock,
        team_id=settings.slack_team_id,
        then=resolve_actor(chat),
        budget=chat.budget,
    ).register(app)
    app.error(on_error)
    register(app)
    socket = (
        AsyncSocketModeHandler(app, settings.slack_app_token) if settings.slack_app_token else None
    )
    return Slack(
        app=app,
        transport=SlackTransport(client, chat.delivery_uow, chat.clock, groups=chat.groups),
        socket_mode=socket,
    )


async def log_workspace(settings: Settings, app: AsyncApp) -> None:
    """Say at start which workspace is served, and warn when SLACK_TEAM_ID is not the bot
    token's team (every request would then be refused)."""
    try:
        auth = await app.client.auth_test()
    except Exception as err:  # Bolt tries auth.test again at the first request
        logger.warning("Slack auth.test failed at start: %s", err)
        return
    team = auth.get("team_id")
    if settings.slack_team_id and team and settings.slack_team_id != team:
        logger.error(
            "SLACK_TEAM_ID is %s but the bot token belongs to team %s: requests from "
            "%s are refused",
            settings.slack_team_id,
            team,
            team,
        )
    logger.info(
        "Slack: serving workspace %s (%s) only", settings.slack_team_id or team, auth.get("team")
    )


def mount(web_app: web.Application, app: AsyncApp) -> None:
    async def events(request: web.Request) -> web.Response:
        try:
            bolt_request = await _bolt_request(request)
        except Malformed as err:
            refuse(err)
            return web.Response(status=400, text=err.reason)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    web_app.router.add_post("/slack/events", events)


async def _bolt_request(request: web.Request) -> AsyncBoltRequest:
    """The Bolt request, or Malformed where Bolt would fail on it with an HTTP 500."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    if timestamp is not None and not timestamp.isdigit():
        raise Malformed(f"timestamp {timestamp[:20]!r} is not a number")
    try:
        bolt_request = await to_bolt_request(request)
    except (ValueError, AttributeError, TypeError, KeyError, IndexError) as err:
        # Bolt parses the body and reads ids from it while building the request, trusting
        # that it is Slack's JSON object; nothing else runs here.
        raise Malformed(f"the body is not a Slack payload ({type(err).__name__})") from None
    bolt_request = _repair_slash_command(bolt_request)
    check(bolt_request.body)
    return bolt_request


def _repair_slash_command(req: AsyncBoltRequest) -> AsyncBoltRequest:
    """slack_bolt (1.30) takes any form body containing the text "payload" for an interaction
    payload, so `/pim activate x fix payload service` parsed as nothing and Slack showed the
    user "dispatch_failed". Parse such a slash command as the plain form it is."""
    if req.body or not req.raw_body or req.raw_body.lstrip().startswith("{"):
        return req
    form = dict(parse_qsl(req.raw_body, keep_blank_values=True))
    if "command" in form and "payload" not in form:
        req.body = form
        req.context = build_async_context(AsyncBoltContext({}), form)
    return req
