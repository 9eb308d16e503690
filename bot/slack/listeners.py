"""Every Slack listener, and the table that registers them.

A listener reads the payload, makes ONE engine call within the chat budget, and answers only
after that call committed: in the ack body (slash commands, modals) or, for buttons, through
the response_url before the ack. Refusals are raised and answered by refusals.on_error; the
caller and the chat dependencies come from the refusals.resolve_actor middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Chat
from bot.slack.payloads import Malformed, metadata
from bot.slack.refusals import ACTOR, CHAT, DEADLINE, private, told_by_response_url
from cards import slack as cards
from cards import views as v
from cards.text import render as render_text
from cards.views import REVIEW_WORDS, Reply
from handlers import commands as c
from handlers.activation import cancel_request, deactivate
from handlers.approval import decide
from handlers.busy import chat_budget
from handlers.chat import run_command
from handlers.errors import NotSetUp
from handlers.extend import last_justification
from handlers.forms import submit_activation_form
from handlers.grammar import CommandError, parse_command
from handlers.queries import activation_form, home
from handlers.reviews.decide import decide_item
from vocab.states import ReviewDecision


def _chat(context: AsyncBoltContext) -> tuple[Chat, str]:
    return context[CHAT], context[ACTOR]


async def pim(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    chat, actor = _chat(context)
    try:
        cmd = parse_command(command.get("text") or "")
    except CommandError as err:
        await ack(private(Reply(text=err.reason, ok=False, usage=err.usage)))
        return
    if isinstance(cmd, c.Activate) and cmd.role is None:
        async with chat_budget(context[DEADLINE]):
            form = await activation_form(chat.uow, actor=actor, groups=chat.groups)
        await client.views_open(trigger_id=command["trigger_id"], view=cards.activation_modal(form))
        await ack()
        return
    async with chat_budget(context[DEADLINE]):
        view = await run_command(chat.uow, chat.clock, commands=chat.commands, actor=actor, cmd=cmd)
    await ack(private(view))
    chat.poke()


async def _button_answer(
    ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], view: object
) -> None:
    answer = private(view)
    if await told_by_response_url(body, respond, answer):
        await ack()
    else:
        await ack(answer)


def _decision(approve: bool) -> Callable[..., Any]:
    async def on_click(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        chat, actor = _chat(context)
        request_id = body["actions"][0]["value"]
        async with chat_budget(context[DEADLINE]):
            req = await decide(
                chat.uow,
                chat.clock,
                actor=actor,
                request_id=request_id,
                approve=approve,
                check_only=True,
            )
            ask_reason = not approve or req.needs_approver_justification
            if not ask_reason:
                await decide(chat.uow, chat.clock, actor=actor, request_id=request_id, approve=True)
        if ask_reason:
            await client.views_open(
                trigger_id=body["trigger_id"], view=cards.decision_modal(req, approve=approve)
            )
        await ack()
        chat.poke()

    on_click.__name__ = "approve" if approve else "deny"
    return on_click


async def decision_submitted(
    ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext
) -> None:
    chat, actor = _chat(context)
    meta = metadata(view)
    async with chat_budget(context[DEADLINE]):
        await decide(
            chat.uow,
            chat.clock,
            actor=actor,
            request_id=str(meta.get("request")),
            approve=bool(meta.get("approve")),
            justification=_value(view, cards.REASON_BLOCK, cards.REASON_ACTION),
        )
    await ack()
    chat.poke()


def _review_click(action: str) -> Callable[..., Any]:
    """Approve / Deny / Don't know on a review item: a reason is asked for in a modal when
    the review requires one, and always for Deny."""
    decision = cards.DECISION_OF[action]

    async def on_click(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        chat, actor = _chat(context)
        item_id = _item_id(body["actions"][0]["value"])
        async with chat_budget(context[DEADLINE]):
            card = await decide_item(
                chat.uow,
                chat.clock,
                actor=actor,
                item_id=item_id,
                decision=decision,
                check_only=True,
            )
            ask_reason = card.require_reason or decision == ReviewDecision.DENY
            if not ask_reason:
                card = await decide_item(
                    chat.uow, chat.clock, actor=actor, item_id=item_id, decision=decision
                )
        if ask_reason:
            title = next(
                (
                    f"{i.person.name} · {i.role.name} ({i.kind})"
                    for i in card.items
                    if i.id == item_id
                ),
                f"item {item_id}",
            )
            await client.views_open(
                trigger_id=body["trigger_id"],
                view=cards.review_modal(
                    item_id, decision, title=title, require_reason=card.require_reason
                ),
            )
            await ack()
        else:
            await _button_answer(
                ack,
                respond,
                body,
                Reply(
                    text=f"Recorded: item {item_id} {REVIEW_WORDS[decision].lower()}. "
                    f"{card.name}: {card.progress_line()}."
                ),
            )
        chat.poke()

    on_click.__name__ = action
    return on_click


async def review_submitted(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    chat, actor = _chat(context)
    meta = metadata(view)
    try:
        decision = ReviewDecision(str(meta.get("decision")))
    except ValueError:
        raise Malformed("a review modal without a decision") from None
    async with chat_budget(context[DEADLINE]):
        await decide_item(
            chat.uow,
            chat.clock,
            actor=actor,
            item_id=_item_id(meta.get("item")),
            decision=decision,
            reason=_value(view, cards.REVIEW_REASON_BLOCK, cards.REVIEW_REASON_ACTION),
        )
    await ack()
    chat.poke()


def _item_id(raw: object) -> int:
    text = str(raw)
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise Malformed("a review item id that is not a number")
    return int(text)


async def _cancel(chat: Chat, actor: str, request_id: str) -> str:
    req = await cancel_request(chat.uow, chat.clock, actor=actor, request_id=request_id)
    return f"Request {req.id} is canceled."


async def _deactivate(chat: Chat, actor: str, role: str) -> str:
    return await deactivate(chat.uow, chat.clock, actor=actor, role=role)


def _answered_click(work: Callable[[Chat, str, str], Awaitable[str]]) -> Callable[..., Any]:
    """A button whose use case answers with one line: run it on the button's value."""

    async def on_click(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        chat, actor = _chat(context)
        async with chat_budget(context[DEADLINE]):
            text = await work(chat, actor, body["actions"][0]["value"])
        await _button_answer(ack, respond, body, Reply(text=text))
        chat.poke()

    on_click.__name__ = work.__name__.lstrip("_")
    return on_click


async def open_form(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    chat, actor = _chat(context)
    role = body["actions"][0].get("value")
    async with chat_budget(context[DEADLINE]):
        form = await activation_form(chat.uow, actor=actor, groups=chat.groups)
        # "Request again" after access ended: the last justification, ready to send again.
        why = await last_justification(chat.uow, actor=actor, role=role) if role else None
    await client.views_open(
        trigger_id=body["trigger_id"],
        view=cards.activation_modal(form, selected_role=role, justification=why),
    )
    await ack()


async def _extend(chat: Chat, actor: str, role: str) -> str:
    view = await run_command(
        chat.uow, chat.clock, commands=chat.commands, actor=actor, cmd=c.Extend(role)
    )
    return render_text(view)


async def _renew(chat: Chat, actor: str, role: str) -> str:
    view = await run_command(
        chat.uow, chat.clock, commands=chat.commands, actor=actor, cmd=c.Renew(role)
    )
    return render_text(view)


async def activation_submitted(
    ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext
) -> None:
    chat, actor = _chat(context)
    async with chat_budget(context[DEADLINE]):
        outcome = await submit_activation_form(
            chat.uow,
            chat.clock,
            actor=actor,
            role=_value(view, cards.ROLE_BLOCK, cards.ROLE_ACTION),
            duration=_value(view, cards.DURATION_BLOCK, cards.DURATION_ACTION),
            justification=_value(view, cards.JUSTIFICATION_BLOCK, cards.JUSTIFICATION_ACTION),
            ticket=_value(view, cards.TICKET_BLOCK, cards.TICKET_ACTION),
            groups=chat.groups,
        )
    if outcome.errors:
        await ack(**cards.modal_errors(outcome.errors))  # block ids are the field names
        return
    await ack()
    chat.poke()


async def home_opened(
    event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    if event.get("tab", "home") != "home":
        return
    chat, actor = _chat(context)
    if actor is None:
        view = cards.home_view(*_empty_home())
    else:
        async with chat_budget(context[DEADLINE]):
            view = cards.home_view(*await home(chat.uow, actor=actor, groups=chat.groups))
    await client.views_publish(user_id=event["user"], view=view)


# (Bolt method, what it matches, listener). To add one, add a row.
LISTENERS: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ("command", "/pim", pim),
    ("action", v.APPROVE, _decision(True)),
    ("action", v.DENY, _decision(False)),
    ("action", v.CANCEL, _answered_click(_cancel)),
    ("action", v.DEACTIVATE, _answered_click(_deactivate)),
    ("action", v.ACTIVATE, open_form),
    ("action", v.REQUEST_AGAIN, open_form),
    ("action", v.EXTEND, _answered_click(_extend)),
    ("action", v.RENEW, _answered_click(_renew)),
    ("view", cards.DECISION_MODAL, decision_submitted),
    ("view", cards.ACTIVATION_MODAL, activation_submitted),
    *(("action", action, _review_click(action)) for action in v.REVIEW_VERBS),
    ("view", cards.REVIEW_MODAL, review_submitted),
    ("event", "app_home_opened", home_opened),
)


def register(app: AsyncApp) -> None:
    for method, matches, listener in LISTENERS:
        getattr(app, method)(matches)(listener)


def _value(view: dict[str, Any], block: str, action: str) -> str | None:
    field = view.get("state", {}).get("values", {}).get(block, {}).get(action, {})
    if not isinstance(field, dict):
        return None
    if "selected_option" in field:
        option = field.get("selected_option") or {}
        return option.get("value") if isinstance(option, dict) else None
    value = field.get("value")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _empty_home() -> tuple[v.RolesView, v.RequestListView, v.RequestListView]:
    nobody = v.Person(email="", name="")
    return (
        v.RolesView(person=nobody, roles=()),
        v.RequestListView(
            title="My requests", requests=(), for_approver=False, empty_text=NotSetUp().message
        ),
        v.RequestListView(
            title="Approve requests",
            requests=(),
            for_approver=True,
            empty_text="Nothing is waiting for you.",
        ),
    )
