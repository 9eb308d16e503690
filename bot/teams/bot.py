"""The Teams bot: personal-chat commands and Action.Execute verbs, each one engine call.

Both kinds of turn go through `_engine`, the one place where the caller is identified, the
chat time budget applies, and a typed engine error becomes the answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from botbuilder.core import ActivityHandler, CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, InvokeResponse

from bot.logs import set_actor
from bot.runtime import Chat
from bot.teams.people import identify, reference_of, remember
from cards import teams as cards
from cards import text as text_cards
from cards import views as v
from cards.views import Reply
from handlers import commands as c
from handlers.activation import cancel_request, deactivate
from handlers.approval import decide
from handlers.busy import chat_budget, chat_deadline
from handlers.chat import activation_headline, run_command
from handlers.errors import Busy, JustificationRequired, NotSetUp, PimError
from handlers.extend import last_justification
from handlers.forms import submit_activation_form
from handlers.grammar import CommandError, parse_command
from handlers.posted_cards import remember_answer_card
from handlers.queries import activation_form, approvals_as_shown, request_details
from handlers.reviews.decide import decide_item
from vocab.states import ReviewDecision

logger = logging.getLogger(__name__)

_MENTION = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
NOT_SET_UP = NotSetUp().message
# turn_state keys: when this turn must be done with the database; whether it found it busy
_DEADLINE, _BUSY = "pim_deadline", "pim_busy"
_TRACK = "pim_track"  # (request id, requester): this turn's answer is the request's card
T = TypeVar("T")
_REVIEW_VERBS = {
    v.REVIEW_APPROVE: ReviewDecision.APPROVE,
    v.REVIEW_DENY: ReviewDecision.DENY,
    v.REVIEW_DONT_KNOW: ReviewDecision.DONT_KNOW,
}


def card_activity(card: dict[str, Any], fallback: str) -> Activity:
    activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
    activity.summary = fallback[:200]
    return activity


def _card_response(card: dict[str, Any]) -> InvokeResponse:
    return InvokeResponse(status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": card})


def _message_response(text: str) -> InvokeResponse:
    return InvokeResponse(
        status=200,
        body={
            "statusCode": 200,
            "type": "application/vnd.microsoft.activity.message",
            "value": text,
        },
    )


def _reply_activity(view: object) -> Activity:
    return card_activity(cards.reply_card(view), text_cards.render(view))


def _submitted(view: v.RequestView) -> v.Notification:
    """The requester's one card for a request: waiting (with Cancel), later its outcome."""
    return v.Notification(
        kind=v.SUBMITTED if view.pending else v.ACTIVATED,
        request=view,
        role=view.role,
        headline=activation_headline(view),
    )


def _update_card(view: v.RequestView) -> InvokeResponse:
    return _card_response(
        cards.notification_card(
            v.Notification(kind=v.REQUEST_UPDATE, request=view, headline=view.outcome_line())
        )
    )


Verb = Callable[[str, dict[str, Any]], Awaitable[InvokeResponse]]


class PimTeamsBot(ActivityHandler):
    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        # One table from verb to handler, shared with cards.teams through cards.views' ids.
        self.verbs: dict[str, Verb] = {
            v.APPROVE: lambda who, data: self._decide(who, data, approve=True),
            v.DENY: lambda who, data: self._decide(who, data, approve=False),
            v.CANCEL: self._cancel,
            v.DEACTIVATE: self._deactivate,
            v.ACTIVATE: self._open_form,
            v.REQUEST_AGAIN: self._request_again,
            v.EXTEND: self._extend,
            v.RENEW: self._renew,
            cards.SUBMIT_ACTIVATION: self._submit_activation,
            **{verb: self._review(decision) for verb, decision in _REVIEW_VERBS.items()},
        }

    async def on_turn(self, turn_context: TurnContext) -> None:
        deadline = turn_context.turn_state[_DEADLINE] = chat_deadline(self.chat.budget)
        try:
            async with chat_budget(deadline):
                await remember(self.chat.uow, self.chat.clock, turn_context)
        except Busy:
            # Saved again next turn. Waiting on the database twice would overrun the turn:
            # this turn's engine call answers "busy" at once.
            turn_context.turn_state[_BUSY] = True
        await super().on_turn(turn_context)

    async def _engine(
        self,
        turn_context: TurnContext,
        work: Callable[[str], Awaitable[T]],
        refuse: Callable[[str], T],
    ) -> T:
        """Identify the caller and run `work` for them within the chat budget; a refusal
        (not set up, busy, any typed engine error) is answered with `refuse(message)`."""
        try:
            async with chat_budget(turn_context.turn_state.get(_DEADLINE)):
                if turn_context.turn_state.get(_BUSY):
                    raise Busy()
                who = await identify(self.chat.uow, self.chat.clock, turn_context)
                if who is None:
                    raise NotSetUp()
                set_actor(who)
                answer = await work(who)
        except PimError as err:
            return refuse(err.message)
        self.chat.poke()
        return answer

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        text = _MENTION.sub("", turn_context.activity.text or "").strip()
        answer = await self._engine(
            turn_context,
            lambda who: self._command(turn_context, who, text),
            refuse=MessageFactory.text,
        )
        sent = await turn_context.send_activity(answer)
        if (tracked := turn_context.turn_state.get(_TRACK)) and sent is not None:
            await self._remember_card(turn_context, tracked, sent.id)

    async def _remember_card(
        self, turn_context: TurnContext, tracked: tuple[str, str], activity_id: str
    ) -> None:
        """The answer is the request's card: redraw it in place after the decision."""
        request_id, who = tracked
        await remember_answer_card(
            self.chat.uow,
            self.chat.clock,
            request_id=request_id,
            transport="teams",
            email=who,
            ref={"reference": reference_of(turn_context), "activity_id": activity_id},
        )

    async def _command(self, turn_context: TurnContext, who: str, text: str) -> Activity:
        try:
            cmd = parse_command(text)
        except CommandError as err:
            return _reply_activity(Reply(text=err.reason, ok=False, usage=err.usage))
        if isinstance(cmd, c.Activate) and cmd.role is None:
            form = await activation_form(self.chat.uow, actor=who, groups=self.chat.groups)
            return card_activity(cards.activation_form(form), "Activate a role")
        view = await run_command(
            self.chat.uow, self.chat.clock, commands=self.chat.commands, actor=who, cmd=cmd
        )
        if (
            isinstance(view, Reply)
            and view.ok
            and view.request is not None
            and view.request.pending
            and view.request.requester.email == who
        ):
            turn_context.turn_state[_TRACK] = (view.request.id, who)
            return card_activity(
                cards.notification_card(_submitted(view.request)), text_cards.render(view)
            )
        return _reply_activity(view)

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        # The reference was saved in on_turn; greet so people know what to type.
        if turn_context.activity.action in (None, "add"):
            await turn_context.send_activity("Hi, I am pim-bot. Type `help` to see what I do.")

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        value: dict[str, Any] = activity.value if isinstance(activity.value, dict) else {}
        action: dict[str, Any] = value["action"] if isinstance(value.get("action"), dict) else {}
        verb = self.verbs.get(str(action.get("verb") or ""))
        if verb is None:
            return _message_response("This button is not known to pim-bot.")
        data: dict[str, Any] = action["data"] if isinstance(action.get("data"), dict) else {}
        who: list[str] = []

        def run(me: str) -> Awaitable[InvokeResponse]:
            who.append(me)  # who the engine identified, for _remember_card below
            return verb(me, data)

        answer = await self._engine(turn_context, run, refuse=_message_response)
        # A submitted form turned into the request's card, in place: remember where it is.
        if (
            who
            and action.get("verb") == cards.SUBMIT_ACTIVATION
            and activity.reply_to_id
            and (request_id := _cancel_target(answer))
        ):
            await self._remember_card(turn_context, (request_id, who[0]), activity.reply_to_id)
        return answer

    async def _decide(self, who: str, data: dict[str, Any], *, approve: bool) -> InvokeResponse:
        request_id = _text(data, "request")
        shown = [i for i in _text(data, cards.SHOWN_INPUT).split(",") if i]
        try:
            view = await decide(
                self.chat.uow,
                self.chat.clock,
                actor=who,
                request_id=request_id,
                approve=approve,
                justification=_text(data, cards.REASON_INPUT) or None,
            )
        except JustificationRequired as err:
            # Asked on the card it came from, not in text-command syntax.
            why = err.message.split(":")[0].rstrip(".")
            error = f"{why}. Give a reason in the box above, then click again."
            if shown:
                return _card_response(
                    cards.request_list_card(
                        await approvals_as_shown(self.chat.uow, actor=who, request_ids=shown),
                        error=error,
                    )
                )
            req = await request_details(self.chat.uow, request_id=request_id)
            return _card_response(cards.approval_card(req, _asks(req), error=error))
        if shown:  # from the approvals list: redraw that row, keep the others
            return _card_response(
                cards.request_list_card(
                    await approvals_as_shown(self.chat.uow, actor=who, request_ids=shown)
                )
            )
        return _update_card(view)

    def _review(self, decision: ReviewDecision) -> Verb:
        async def review(who: str, data: dict[str, Any]) -> InvokeResponse:
            item = _text(data, "item")
            if not item.isascii() or not item.isdigit() or len(item) > 12:
                return _message_response("This review button is not known to pim-bot.")
            card = await decide_item(
                self.chat.uow,
                self.chat.clock,
                actor=who,
                item_id=int(item),
                decision=decision,
                reason=_text(data, cards.review_reason_input(item)) or None,
            )
            return _card_response(
                cards.notification_card(
                    v.Notification(kind=v.REVIEW_UPDATE, headline=card.progress_line(), review=card)
                )
            )

        return review

    async def _cancel(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        return _update_card(
            await cancel_request(
                self.chat.uow, self.chat.clock, actor=who, request_id=_text(data, "request")
            )
        )

    async def _deactivate(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        return _message_response(
            await deactivate(self.chat.uow, self.chat.clock, actor=who, role=_text(data, "role"))
        )

    async def _open_form(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        form = await activation_form(self.chat.uow, actor=who, groups=self.chat.groups)
        return _card_response(
            cards.activation_form(form, selected_role=_text(data, "role") or None)
        )

    async def _request_again(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        """After access ended: the form, with the role and its last justification."""
        role = _text(data, "role")
        form = await activation_form(self.chat.uow, actor=who)
        why = await last_justification(self.chat.uow, actor=who, role=role) if role else None
        return _card_response(
            cards.activation_form(
                form,
                selected_role=role or None,
                values={cards.JUSTIFICATION_INPUT: why} if why else None,
            )
        )

    async def _extend(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        view = await run_command(
            self.chat.uow,
            self.chat.clock,
            commands=self.chat.commands,
            actor=who,
            cmd=c.Extend(_text(data, "role")),
        )
        return _message_response(text_cards.render(view))

    async def _renew(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        view = await run_command(
            self.chat.uow,
            self.chat.clock,
            commands=self.chat.commands,
            actor=who,
            cmd=c.Renew(_text(data, "role")),
        )
        return _message_response(text_cards.render(view))

    async def _submit_activation(self, who: str, data: dict[str, Any]) -> InvokeResponse:
        values = {
            k: _text(data, k)
            for k in (
                cards.ROLE_INPUT,
                cards.DURATION_INPUT,
                cards.JUSTIFICATION_INPUT,
                cards.TICKET_INPUT,
            )
        }
        outcome = await submit_activation_form(
            self.chat.uow,
            self.chat.clock,
            actor=who,
            role=values[cards.ROLE_INPUT],
            duration=values[cards.DURATION_INPUT],
            justification=values[cards.JUSTIFICATION_INPUT],
            ticket=values[cards.TICKET_INPUT],
            groups=self.chat.groups,
        )
        view = outcome.request
        if view is None:
            form = await activation_form(self.chat.uow, actor=who, groups=self.chat.groups)
            return _card_response(
                cards.activation_form(
                    form,
                    selected_role=values[cards.ROLE_INPUT] or None,
                    errors=outcome.errors,
                    values=values,
                )
            )
        return _card_response(cards.notification_card(_submitted(view)))


def _asks(req: v.RequestView) -> str:
    return (
        f"{req.requester.name} asks for {req.role.name} for "
        f"{v.compact_duration(req.duration_seconds)}."
    )


def _cancel_target(answer: InvokeResponse) -> str | None:
    """The request a card's Cancel button is for (a submitted request's card), if any."""
    body: dict[str, Any] = answer.body if isinstance(answer.body, dict) else {}
    card: dict[str, Any] = body["value"] if isinstance(body.get("value"), dict) else {}
    for action in card.get("actions") or []:
        if isinstance(action, dict) and action.get("verb") == v.CANCEL:
            return str((action.get("data") or {}).get("request") or "") or None
    return None


def _text(data: dict[str, Any], key: str) -> str:
    """A card input as text: Teams sends what the card held, which may be anything."""
    value = data.get(key)
    return value if isinstance(value, str) else "" if value is None else str(value)
