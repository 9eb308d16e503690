"""Outbox delivery to Teams: proactive cards through stored conversation references, and
in-place updates of every posted card."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from bot.outbox import Delivery, Recipient, Undeliverable
from bot.teams.adapter import PimCloudAdapter
from bot.teams.bot import card_activity
from cards import teams as cards
from cards import text as text_cards
from handlers.identity import conversation_of
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


class TeamsTransport:
    name = "teams"

    def __init__(self, adapter: PimCloudAdapter, uow: UnitOfWork, app_id: str) -> None:
        self.adapter, self.uow, self.app_id = adapter, uow, app_id

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
            raw = await conversation_of(self.uow, platform="teams",
                                        principal_id=delivery.recipient.id)
        if raw is None:
            raise Undeliverable("no Teams conversation with this person or channel yet")
        card = cards.notification_card(delivery.note)
        activity = card_activity(card, text_cards.render(delivery.note))
        sent: dict[str, str] = {}

        async def post(turn_context: TurnContext) -> None:
            response = await turn_context.send_activity(activity)
            sent["id"] = response.id if response else ""

        await self.adapter.continue_conversation(
            ConversationReference().deserialize(raw), post, bot_app_id=self.app_id)
        return {"reference": raw, "activity_id": sent.get("id", "")}

    async def update(self, delivery: Delivery) -> None:
        card = cards.notification_card(delivery.note)
        for posted in delivery.posted:
            activity = card_activity(card, text_cards.render(delivery.note))
            activity.id = posted["activity_id"]

            async def redraw(turn_context: TurnContext, activity: Any = activity) -> None:
                await turn_context.update_activity(activity)

            await self.adapter.continue_conversation(
                ConversationReference().deserialize(posted["reference"]), redraw,
                bot_app_id=self.app_id)
