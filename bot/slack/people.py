"""Matching a Slack user to a principal: by slack_id, else by the email Slack knows."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.clock import Clock
from handlers.identity import email_for, link_by_email
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


async def identify(
    uow: UnitOfWork, clock: Clock, client: AsyncWebClient, user_id: str
) -> str | None:
    email = await email_for(uow, platform="slack", user_id=user_id)
    if email is not None:
        return email
    try:
        resp = await client.users_info(user=user_id)
    except SlackApiError as err:
        logger.info("users.info %s failed: %s", user_id, err.response.get("error"))
        return None
    slack_email = (resp.get("user") or {}).get("profile", {}).get("email")
    if not slack_email:
        return None  # the app lacks users:read.email, or the user has no email
    return await link_by_email(uow, clock, platform="slack", user_id=user_id, email=slack_email)

