"""The Teams bot: personal-chat commands and Action.Execute verbs, each one engine call."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from botbuilder.core import ActivityHandler, CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, InvokeResponse

from bot.teams.people import identify, remember
from cards import teams as cards
from cards import text as text_cards
from cards import views as v
from cards.views import Reply
from handlers import commands as c
from handlers.activation import cancel_request, deactivate, request_activation
from handlers.approval import decide
from handlers.chat import run_command
from handlers.clock import Clock
from handlers.errors import PimError
from handlers.forms import field_of, read_activation_form
from handlers.grammar import CommandError, parse_command
from handlers.queries import activation_form
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

_MENTION = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
NOT_SET_UP = ("You are not set up in pim-bot yet. Ask a pim-bot admin to add you to the "
              "policy.")


def card_activity(card: dict[str, Any], fallback: str) -> Activity:
    activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
    activity.summary = fallback[:200]
    return activity


def _card_response(card: dict[str, Any]) -> InvokeResponse:
    return InvokeResponse(status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": card})


def _message_response(text: str) -> InvokeResponse:
    return InvokeResponse(status=200, body={
        "statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text})


@dataclass(frozen=True)
class TeamsDeps:
    uow: UnitOfWork
    clock: Clock
    poke: Callable[[], None]


Verb = Callable[[str, dict[str, Any]], Awaitable[InvokeResponse]]


class PimTeamsBot(ActivityHandler):
    def __init__(self, deps: TeamsDeps) -> None:
        self.deps = deps
        self.uow, self.clock = deps.uow, deps.clock
        # One table from verb to handler, shared with cards.teams through cards.views' ids.
        self.verbs: dict[str, Verb] = {
            v.APPROVE: lambda who, data: self._decide(who, data, approve=True),
            v.DENY: lambda who, data: self._decide(who, data, approve=False),
            v.CANCEL: self._cancel,
            v.DEACTIVATE: self._deactivate,
            v.ACTIVATE: self._open_form,
            v.REQUEST_AGAIN: self._open_form,
            cards.SUBMIT_ACTIVATION: self._submit_activation,
        }

    async def on_turn(self, turn_context: TurnContext) -> None:
        await remember(self.uow, self.clock, turn_context)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        who = await identify(self.uow, self.clock, turn_context)
        if who is None:
            await turn_context.send_activity(NOT_SET_UP)
            return
        text = _MENTION.sub("", turn_context.activity.text or "").strip()
        try:
            cmd = parse_command(text)
        except CommandError as err:
            await self._reply(turn_context, Reply(text=err.reason, ok=False, usage=err.usage))
            return
        if isinstance(cmd, c.Activate) and cmd.role is None:
            form = await activation_form(self.uow, actor=who)
            await turn_context.send_activity(
                card_activity(cards.activation_form(form), "Activate a role"))
            return
        await self._reply(turn_context, await run_command(self.uow, self.clock, actor=who,
                                                          cmd=cmd))
        self.deps.poke()

    async def _reply(self, turn_context: TurnContext, view: object) -> None:
        await turn_context.send_activity(
            card_activity(cards.reply_card(view), text_cards.render(view)))

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        # The reference was saved in on_turn; greet so people know what to type.
        if turn_context.activity.action in (None, "add"):
            await turn_context.send_activity("Hi, I am pim-bot. Type `help` to see what I do.")

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        action = (activity.value or {}).get("action") or {}
        verb = self.verbs.get(action.get("verb") or "")
        if verb is None:
            return _message_response("This button is not known to pim-bot.")
        who = await identify(self.uow, self.clock, turn_context)
        if who is None:
            return _message_response(NOT_SET_UP)
        data = action.get("data") or {}
        if not isinstance(data, dict):
            data = {}
        response = await verb(who, data)
        self.deps.poke()
        return response

    async def _decide(self, who: str, data: dict[str, Any], *, approve: bool) -> InvokeResponse:
        try:
            view = await decide(self.uow, self.clock, actor=who,
                                request_id=str(data.get("request", "")), approve=approve,
                                justification=data.get(cards.REASON_INPUT))
        except PimError as err:
            return _message_response(err.message)
        return _card_response(cards.notification_card(
            v.Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line())))

    async def _cancel(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        try:
            view = await cancel_request(self.uow, self.clock, actor=who,
                                        request_id=str(data.get("request", "")))
        except PimError as err:
            return _message_response(err.message)
        return _card_response(cards.notification_card(
            v.Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line())))

    async def _deactivate(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        try:
            text = await deactivate(self.uow, self.clock, actor=who,
                                    role=str(data.get("role", "")))
        except PimError as err:
            return _message_response(err.message)
        return _message_response(text)

    async def _open_form(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        form = await activation_form(self.uow, actor=who)
        return _card_response(cards.activation_form(form, selected_role=data.get("role")))

    async def _submit_activation(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        values = {k: str(data.get(k) or "") for k in (
            cards.ROLE_INPUT, cards.DURATION_INPUT, cards.JUSTIFICATION_INPUT,
            cards.TICKET_INPUT)}
        errors, ask = read_activation_form(
            role=values[cards.ROLE_INPUT], duration=values[cards.DURATION_INPUT],
            justification=values[cards.JUSTIFICATION_INPUT], ticket=values[cards.TICKET_INPUT])
        view = None
        if ask is not None:
            try:
                view = await request_activation(self.uow, self.clock, actor=who, ask=ask)
            except PimError as err:
                errors = {field_of(err): err.message}  # input ids are the field names
        if view is None:
            form = await activation_form(self.uow, actor=who)
            return _card_response(cards.activation_form(
                form, selected_role=values[cards.ROLE_INPUT] or None, errors=errors,
                values=values))
        kind = v.SUBMITTED if view.pending else v.ACTIVATED
        return _card_response(cards.notification_card(v.Notification(
            kind=kind, request=view, role=view.role,
            headline=(f"Request {view.id} for {view.role.name} is waiting for approval."
                      if view.pending else f"{view.role.name}: request {view.id} is {view.status}."),
        )))
