"""Outbox delivery to Teams: proactive cards through stored conversation references, and
in-place updates of every posted card. Sends run concurrently (each in its own proactive
turn, nothing shared between them); the outbox keeps one person's messages in order."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from bot.outbox import Delivery, Recipient, RetryLater, Undeliverable
from bot.teams.adapter import PimCloudAdapter
from bot.teams.bot import card_activity
from cards import teams as cards
from cards import text as text_cards
from cards import views as v
from handlers.clock import Clock, SystemClock
from handlers.identity import conversation_of
from handlers.posted_cards import answer_card_state
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


class TeamsTransport:
    name = "teams"

    def __init__(
        self, adapter: PimCloudAdapter, uow: UnitOfWork, app_id: str, clock: Clock | None = None
    ) -> None:
        self.adapter, self.uow, self.app_id = adapter, uow, app_id
        self.clock = clock or SystemClock()

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        if channel is not None:
            return "teams" in channel
        # A person is reachable once they have talked to the bot (or installed it).
        return recipient is not None and bool(recipient.teams_id)

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        if delivery.channel is not None:
            raw = await conversation_of(self.uow, platform="teams", key=delivery.channel["teams"])
        else:
            assert delivery.recipient is not None
            raw = await conversation_of(
                self.uow, platform="teams", principal_id=delivery.recipient.id
            )
        if raw is None:
            raise Undeliverable("no Teams conversation with this person or channel yet")
        if (
            delivery.kind == v.SUBMITTED
            and delivery.recipient is not None
            and delivery.request_id is not None
        ):
            state = await answer_card_state(
                self.uow,
                request_id=delivery.request_id,
                transport=self.name,
                recipient_id=delivery.recipient.id,
                now=self.clock.now(),
            )
            if state == "answered":
                return None  # their chat answer is this card, and is redrawn in place
            if state == "soon":  # the turn that answered may not have noted it yet
                raise RetryLater(
                    1.0, "the requester's answer card may still be noted", sent_nothing=True
                )

        card = cards.notification_card(delivery.note)
        activity = card_activity(card, text_cards.render(delivery.note))
        sent: dict[str, str] = {}

        async def post(turn_context: TurnContext) -> None:
            response = await turn_context.send_activity(activity)
            sent["id"] = response.id if response else ""

        await self._proactive(raw, post, "send")
        return {"reference": raw, "activity_id": sent.get("id", "")}

    async def update(self, delivery: Delivery) -> None:
        card = cards.notification_card(delivery.note)
        failure: Exception | None = None
        for posted in delivery.posted:
            activity = card_activity(card, text_cards.render(delivery.note))
            activity.id = posted["activity_id"]

            async def redraw(turn_context: TurnContext, activity: Any = activity) -> None:
                await turn_context.update_activity(activity)

            # One copy that cannot be redrawn must not keep the others from it.
            try:
                await self._proactive(posted["reference"], redraw, "update")
            except Undeliverable as err:  # that copy is gone; nothing left to redraw there
                logger.info("Teams card %s not redrawn: %s", posted["activity_id"], err)
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure  # the whole update is retried; redrawing a card twice is harmless

    async def _proactive(self, raw: dict[str, Any], logic: Any, what: str) -> None:
        """Run `logic` in the stored conversation and raise what went wrong. botbuilder hands
        an exception inside a proactive turn to on_turn_error, which only logs it, so the
        outbox would take a failed message for a sent one and never retry it."""
        failed: list[Exception] = []

        async def guarded(turn_context: TurnContext) -> None:
            try:
                await logic(turn_context)
            except Exception as err:
                failed.append(err)

        await self.adapter.continue_conversation(
            ConversationReference().deserialize(raw), guarded, bot_app_id=self.app_id
        )
        if failed:
            raise _classified(failed[0], what) from failed[0]


def _classified(err: Exception, what: str) -> Exception:
    """The connector's answer as the outbox understands it: 429 -> RetryLater, 403/404 (bot
    removed from the chat, conversation or activity gone) -> Undeliverable, else as is."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if status == 429:
        raw = (getattr(response, "headers", None) or {}).get("Retry-After") or "1"
        try:
            seconds = max(float(raw), 1.0)
        except ValueError:
            seconds = 1.0
        return RetryLater(seconds, f"Teams rate limit on {what}", sent_nothing=True)
    if status in (403, 404):
        return Undeliverable(f"Teams {what}: HTTP {status}")
    return err
