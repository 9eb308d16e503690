"""Which provider serves each grant target kind, from the settings: the engine only ever sees
this mapping (handlers.grants.provider.Provider). A kind without a provider here is not
worked on; its grant rows wait, and `pim-bot grants` shows them pending."""

from __future__ import annotations

import logging

from bot.config import Settings
from handlers.grants.provider import Provider

logger = logging.getLogger(__name__)


def providers_from(settings: Settings) -> dict[str, Provider]:
    """Entra roles, PIM for Groups and Azure roles with an Azure identity; Slack user groups
    with SLACK_BOT_TOKEN; webhooks with PIM_WEBHOOK_SECRET (bot.providers.wiring says which
    variables turn each on)."""
    # Imported here: aiohttp, azure-identity and slack_sdk load only in processes that call
    # providers (serve, console), not in every CLI command.
    from bot.providers.wiring import microsoft_apis, microsoft_providers, slack_providers

    providers: dict[str, Provider] = {
        **microsoft_providers(microsoft_apis()),
        **slack_providers(token=settings.slack_bot_token, api_url=settings.slack_api_url),
    }
    if settings.webhook_secret:
        from bot.providers.webhook import WebhookProvider

        providers["webhook"] = WebhookProvider(secret=settings.webhook_secret)
    logger.info("grant providers: %s", ", ".join(sorted(providers)) or "none")
    return providers
