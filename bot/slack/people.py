"""Matching a Slack user to a principal: by slack_id, else by the email Slack knows."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.guards import installed_team
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
    user = resp.get("user") or {}
    team, home = installed_team(), user.get("team_id")
    if user.get("is_stranger") or (team and home and home != team):
        # A Slack Connect user: the email is vouched for by their own workspace, not ours.
        logger.info("not linking %s by email: a user of team %s, not %s", user_id, home, team)
        return None
    slack_email = user.get("profile", {}).get("email")
    if not slack_email:
        return None  # the app lacks users:read.email, or the user has no email
    return await link_by_email(uow, clock, platform="slack", user_id=user_id, email=slack_email)
