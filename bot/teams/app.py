"""Putting the Teams bot on the server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from bot.config import Settings
from bot.runtime import Chat
from bot.teams.adapter import PimCloudAdapter, make_adapter
from bot.teams.bot import PimTeamsBot
from bot.teams.guards import TenantGate
from bot.teams.transport import TeamsTransport

logger = logging.getLogger(__name__)


@dataclass
class Teams:
    adapter: PimCloudAdapter
    bot: PimTeamsBot
    transport: TeamsTransport
    gate: TenantGate  # what the adapter runs: the bot, behind the tenant check


def build_teams(settings: Settings, chat: Chat) -> Teams:
    adapter = make_adapter(settings)
    bot = PimTeamsBot(chat)

    async def on_error(turn_context: object, error: Exception) -> None:
        # Typed refusals are answered inside the bot; reaching here is a bug.
        logger.error("Teams turn failed: %s", error, exc_info=error)

    adapter.on_turn_error = on_error
    return Teams(
        adapter=adapter,
        bot=bot,
        transport=TeamsTransport(
            adapter, chat.delivery_uow, settings.microsoft_app_id or "", clock=chat.clock
        ),
        gate=TenantGate.from_settings(settings, bot=bot),
    )


def mount(web_app: web.Application, teams: Teams) -> None:
    async def messages(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await teams.adapter.process(request, teams.gate)
        return response

    web_app.router.add_post("/api/messages", messages)
