"""Every Slack listener, registered in one place. Each one acks, turns the payload into one
engine call, and renders the result with cards.slack. Rules live in handlers, not here."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.people import identify, not_set_up
from cards import slack as cards
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
from handlers.queries import activation_form, home
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackDeps:
    uow: UnitOfWork
    clock: Clock
    poke: Callable[[], None]


def _private(view: object) -> dict[str, Any]:
    return {**cards.reply_message(view), "response_type": "ephemeral",
            "replace_original": False}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    uow, clock = deps.uow, deps.clock

    async def who(client: AsyncWebClient, user_id: str, respond: AsyncRespond | None) -> str | None:
        email = await identify(uow, clock, client, user_id)
        if email is None and respond is not None:
            await respond(**_private(not_set_up()))
        return email

    @app.command("/pim")
    async def pim(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                  client: AsyncWebClient) -> None:
        await ack()
        email = await who(client, command["user_id"], respond)
        if email is None:
            return
        try:
            cmd = parse_command(command.get("text") or "")
        except CommandError as err:
            await respond(**_private(Reply(text=err.reason, ok=False, usage=err.usage)))
            return
        if isinstance(cmd, c.Activate) and cmd.role is None:
            form = await activation_form(uow, actor=email)
            await client.views_open(trigger_id=command["trigger_id"],
                                    view=cards.activation_modal(form))
            return
        view = await run_command(uow, clock, actor=email, cmd=cmd)
        await respond(**_private(view))
        deps.poke()

    async def on_decision(approve: bool, ack: AsyncAck, body: dict[str, Any],
                          respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        email = await who(client, body["user"]["id"], respond)
        if email is None:
            return
        request_id = body["actions"][0]["value"]
        try:
            req = await decide(uow, clock, actor=email, request_id=request_id, approve=approve,
                               check_only=True)
            if not approve or req.needs_approver_justification:
                await client.views_open(trigger_id=body["trigger_id"],
                                        view=cards.decision_modal(req, approve=approve))
                return
            await decide(uow, clock, actor=email, request_id=request_id, approve=True)
        except PimError as err:
            await respond(**_private(Reply(text=err.message, ok=False)))
        deps.poke()

    @app.action(v.APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                      client: AsyncWebClient) -> None:
        await on_decision(True, ack, body, respond, client)

    @app.action(v.DENY)
    async def deny(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                   client: AsyncWebClient) -> None:
        await on_decision(False, ack, body, respond, client)

    @app.view(cards.DECISION_MODAL)
    async def decision_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                                 client: AsyncWebClient) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        reason = _value(view, cards.REASON_BLOCK, cards.REASON_ACTION)
        email = await identify(uow, clock, client, body["user"]["id"])
        if email is None:
            await ack(response_action="errors",
                      errors={cards.REASON_BLOCK: not_set_up().text})
            return
        try:
            await decide(uow, clock, actor=email, request_id=str(meta.get("request")),
                         approve=bool(meta.get("approve")), justification=reason)
        except PimError as err:
            await ack(**cards.modal_errors({cards.REASON_BLOCK: err.message}))
            return
        await ack()
        deps.poke()

    @app.action(v.CANCEL)
    async def cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                     client: AsyncWebClient) -> None:
        await ack()
        email = await who(client, body["user"]["id"], respond)
        if email is None:
            return
        try:
            req = await cancel_request(uow, clock, actor=email,
                                       request_id=body["actions"][0]["value"])
            await respond(**_private(Reply(text=f"Request {req.id} is canceled.")))
        except PimError as err:
            await respond(**_private(Reply(text=err.message, ok=False)))
        deps.poke()

    async def open_form(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                        client: AsyncWebClient) -> None:
        await ack()
        email = await who(client, body["user"]["id"], respond)
        if email is None:
            return
        form = await activation_form(uow, actor=email)
        await client.views_open(trigger_id=body["trigger_id"], view=cards.activation_modal(
            form, selected_role=body["actions"][0].get("value")))

    app.action(v.ACTIVATE)(open_form)
    app.action(v.REQUEST_AGAIN)(open_form)

    @app.action(v.DEACTIVATE)
    async def on_deactivate(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                            client: AsyncWebClient) -> None:
        await ack()
        email = await who(client, body["user"]["id"], respond)
        if email is None:
            return
        try:
            text = await deactivate(uow, clock, actor=email, role=body["actions"][0]["value"])
            await respond(**_private(Reply(text=text)))
        except PimError as err:
            await respond(**_private(Reply(text=err.message, ok=False)))
        deps.poke()

    @app.view(cards.ACTIVATION_MODAL)
    async def activation_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                                   client: AsyncWebClient) -> None:
        email = await identify(uow, clock, client, body["user"]["id"])
        if email is None:
            await ack(**cards.modal_errors({cards.ROLE_BLOCK: not_set_up().text}))
            return
        errors, ask = read_activation_form(
            role=_value(view, cards.ROLE_BLOCK, cards.ROLE_ACTION),
            duration=_value(view, cards.DURATION_BLOCK, cards.DURATION_ACTION),
            justification=_value(view, cards.JUSTIFICATION_BLOCK, cards.JUSTIFICATION_ACTION),
            ticket=_value(view, cards.TICKET_BLOCK, cards.TICKET_ACTION),
        )
        if ask is not None:
            try:
                await request_activation(uow, clock, actor=email, ask=ask)
            except PimError as err:
                errors = {field_of(err): err.message}  # block ids are the field names
        if errors:
            await ack(**cards.modal_errors(errors))
            return
        await ack()
        deps.poke()

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        email = await identify(uow, clock, client, event["user"])
        if email is None:
            view = cards.home_view(*_empty_home())
        else:
            view = cards.home_view(*await home(uow, actor=email))
        await client.views_publish(user_id=event["user"], view=view)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Typed refusals never get here; this is a bug, so keep the details in the log.
        logger.error("Slack listener failed: %s", error, exc_info=error)


def _value(view: dict[str, Any], block: str, action: str) -> str | None:
    field = view.get("state", {}).get("values", {}).get(block, {}).get(action, {})
    if "selected_option" in field:
        option = field.get("selected_option") or {}
        return option.get("value")
    value = field.get("value")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _empty_home() -> tuple[v.RolesView, v.RequestListView, v.RequestListView]:
    nobody = v.Person(email="", name="")
    return (v.RolesView(person=nobody, roles=()),
            v.RequestListView(title="My requests", requests=(), for_approver=False,
                              empty_text=not_set_up().text),
            v.RequestListView(title="Approve requests", requests=(), for_approver=True,
                              empty_text="Nothing is waiting for you."))
