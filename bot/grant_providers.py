"""Which provider serves each grant target kind, from the settings: the engine only ever sees
this mapping (handlers.grants.provider.Provider). A kind without a provider here is not
worked on; its grant rows wait, and `pim-bot grants` shows them pending."""

from __future__ import annotations

import logging

from bot.config import Settings
from handlers.grants.provider import Provider

logger = logging.getLogger(__name__)


def providers_from(settings: Settings) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    if settings.webhook_secret:
        # aiohttp's client loads only when a provider needs it (the CLI stays quick).
        from bot.providers.webhook import WebhookProvider

        providers["webhook"] = WebhookProvider(secret=settings.webhook_secret)
    return providers


async def close_providers(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        close = getattr(provider, "close", None)
        if close is not None:
            await close()
