"""People from the Slack workspace (users.list), for directory sync. Needs users:read and
users:read.email."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.grants.provider import Person

logger = logging.getLogger(__name__)
PAGE = 200  # Slack recommends no more than 200 a page
MAX_WAIT, MAX_RATE_LIMITS = 60.0, 10


async def workspace_people(*, client: AsyncWebClient, team_id: str | None = None) -> list[Person]:
    """Every active human member with an email: bots, apps, Slackbot and deactivated accounts
    are left out, and so are members of other workspaces (Slack Connect) when `team_id` is
    given. Pages through users.list, waiting out 429s (Retry-After)."""
    people: list[Person] = []
    cursor, limited = "", 0
    while True:
        try:
            resp = await client.users_list(limit=PAGE, cursor=cursor or None)
        except SlackApiError as err:
            if err.response.status_code != 429 or limited >= MAX_RATE_LIMITS:
                raise
            limited += 1
            wait = float(err.response.headers.get("Retry-After") or 1)
            await asyncio.sleep(min(wait, MAX_WAIT))
            continue
        for user in resp.get("members") or []:
            person = _person(user, team_id)
            if person is not None:
                people.append(person)
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            return people


def _person(user: dict, team_id: str | None) -> Person | None:
    if (
        user.get("deleted")
        or user.get("is_bot")
        or user.get("is_app_user")
        or user.get("id") == "USLACKBOT"
    ):
        return None
    if team_id and user.get("team_id") and user["team_id"] != team_id:
        return None
    profile = user.get("profile") or {}
    email = (profile.get("email") or "").strip().lower()
    if not email:
        return None
    name = user.get("real_name") or profile.get("real_name") or user.get("name") or email
    return Person(email=email, name=name, slack_id=str(user["id"]))
