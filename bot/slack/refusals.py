"""Who is asking, and the one place where a refusal becomes what the person sees.

`resolve_actor` (middleware) puts the chat dependencies, the caller's email and the time
budget in the Bolt context, refusing people pim-bot does not know. `on_error` turns a typed
engine error (and a malformed request) into the answer; everything else is a bug and is
logged with its traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import set_actor
from bot.runtime import Chat
from bot.slack.payloads import Malformed, refuse
from bot.slack.people import identify
from cards import slack as cards
from cards.views import Reply
from handlers.busy import chat_budget, chat_deadline
from handlers.errors import NotSetUp, PimError

logger = logging.getLogger(__name__)

CHAT, ACTOR, DEADLINE = "pim_chat", "pim_actor", "pim_deadline"
Middleware = Callable[..., Awaitable[None]]

# Where a refusal shows in each modal (block ids); other refusals answer privately.
_MODAL_FIELD = {
    cards.ACTIVATION_MODAL: cards.ROLE_BLOCK,
    cards.DECISION_MODAL: cards.REASON_BLOCK,
    cards.REVIEW_MODAL: cards.REVIEW_REASON_BLOCK,
}


def private(view: object) -> dict[str, Any]:
    """An answer only the caller sees, as an ack body or a response_url post."""
    return {**cards.reply_message(view), "response_type": "ephemeral", "replace_original": False}


def resolve_actor(chat: Chat) -> Middleware:
    async def middleware(
        context: AsyncBoltContext,
        body: dict[str, Any],
        client: AsyncWebClient,
        next: Callable[[], Awaitable[None]],
    ) -> None:
        context[CHAT] = chat
        context[DEADLINE] = chat_deadline(chat.budget)
        user_id = context.user_id
        email = None
        if user_id:
            async with chat_budget(context[DEADLINE]):
                email = await identify(chat.uow, chat.clock, client, user_id)
        # App Home still opens for strangers (it says they are not set up); nothing else does.
        if email is None and body.get("type") != "event_callback":
            raise NotSetUp()
        context[ACTOR] = email
        set_actor(email)
        await next()

    return middleware


async def on_error(error: Exception, body: Any, respond: AsyncRespond) -> BoltResponse:
    """Bolt's global error handler, for listeners and middleware alike."""
    if isinstance(error, Malformed):
        refuse(error)
        return BoltResponse(status=400, body=error.reason)
    if not isinstance(error, PimError):
        logger.error("Slack listener failed: %s", error, exc_info=error)
        error = PimError(
            f"Something went wrong ({type(error).__name__}); pim-bot's log has the details."
        )
    return await _refusal(error, body if isinstance(body, dict) else {}, respond)


async def _refusal(err: PimError, body: dict[str, Any], respond: AsyncRespond) -> BoltResponse:
    kind = body.get("type")
    if kind == "view_submission":
        block = _MODAL_FIELD.get(str((body.get("view") or {}).get("callback_id")))
        if block is None:
            return BoltResponse(status=200, body="")
        return _json(cards.modal_errors({block: err.message}))
    if kind == "event_callback":
        logger.info("Slack event not handled: %s", err.message)
        return BoltResponse(status=200, body="")
    answer = private(Reply(text=err.message, ok=False))
    if await told_by_response_url(body, respond, answer):
        return BoltResponse(status=200, body="")
    return _json(answer)


async def told_by_response_url(
    body: dict[str, Any], respond: AsyncRespond | None, answer: dict[str, Any]
) -> bool:
    """Answer a button click. Slack shows nothing that a button's ack body says, so the
    answer goes to the response_url (after the commit, before the ack). Slash commands (and
    clicks without a response_url) answer in the ack body: False."""
    if body.get("type") != "block_actions" or not body.get("response_url") or respond is None:
        return False
    await respond(**answer)
    return True


def _json(body: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=200, body=body, headers={"content-type": "application/json;charset=utf-8"}
    )
